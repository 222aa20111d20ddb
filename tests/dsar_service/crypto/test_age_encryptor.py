"""AgeEncryptor output is standard age: the `age` CLI and pyrage decrypt it, for every recipient kind."""

import os
import random
import re
from collections.abc import Callable

import pytest
from age_identities import Identity

from dsar_service.crypto import CHUNK_SIZE, AgeEncryptor, encrypt, parse_recipient

Decryptor = Callable[[bytes, Identity], bytes]


def _header_length(ciphertext: bytes) -> int:
    match = re.search(rb"\n--- [A-Za-z0-9+/]{43}\n", ciphertext)
    assert match is not None
    return match.end()


def _expected_payload_length(size: int) -> int:
    chunks = max(1, -(-size // CHUNK_SIZE))
    return 16 + size + 16 * chunks  # nonce, plaintext, one Poly1305 tag per chunk


@pytest.mark.parametrize(
    "size",
    [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * 1024 * 1024 + 17],
)
def test_decrypts_with_age_and_pyrage(size: int, identities: dict[str, Identity], decryptors: list[Decryptor]) -> None:
    plaintext = os.urandom(size)
    ciphertext = encrypt(plaintext, [parse_recipient(identities["age"].recipient)])

    # Chunking per spec: a full last chunk is not followed by an empty one; empty input is one empty chunk.
    assert len(ciphertext) - _header_length(ciphertext) == _expected_payload_length(size)
    for decrypt in decryptors:
        assert decrypt(ciphertext, identities["age"]) == plaintext


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_ssh_recipients(kind: str, identities: dict[str, Identity], decryptors: list[Decryptor]) -> None:
    plaintext = os.urandom(CHUNK_SIZE + 1)
    ciphertext = encrypt(plaintext, [parse_recipient(identities[kind].recipient)])

    assert f"\n-> ssh-{kind} ".encode() in ciphertext[: _header_length(ciphertext)]
    for decrypt in decryptors:
        assert decrypt(ciphertext, identities[kind]) == plaintext


def test_every_recipient_decrypts(identities: dict[str, Identity], decryptors: list[Decryptor]) -> None:
    plaintext = os.urandom(200_000)
    recipients = [parse_recipient(identity.recipient) for identity in identities.values()]
    ciphertext = encrypt(plaintext, recipients)

    assert ciphertext[: _header_length(ciphertext)].count(b"\n-> ") == 3
    for identity in identities.values():
        for decrypt in decryptors:
            assert decrypt(ciphertext, identity) == plaintext


def test_streamed_in_uneven_pieces_lags_input_by_at_most_one_chunk(
    identities: dict[str, Identity], decryptors: list[Decryptor]
) -> None:
    rng = random.Random(7)
    plaintext = rng.randbytes(4 * 1024 * 1024 + 3)
    encryptor = AgeEncryptor([parse_recipient(identities["age"].recipient)])
    pieces: list[bytes] = []
    fed = 0
    while fed < len(plaintext):
        step = rng.choice([1, 7, 1000, CHUNK_SIZE - 1, CHUNK_SIZE, 3 * CHUNK_SIZE + 5])
        pieces.append(encryptor.update(plaintext[fed : fed + step]))
        fed = min(fed + step, len(plaintext))
        # Whole chunks are handed back as soon as more input shows they are not the last:
        # at most one chunk (plus a few bytes) is held, whatever the input size.
        sealed_chunks = (fed - 1) // CHUNK_SIZE
        payload_out = sum(map(len, pieces)) - _header_length(pieces[0]) - 16
        assert payload_out == sealed_chunks * (CHUNK_SIZE + 16)
    pieces.append(encryptor.finish())

    ciphertext = b"".join(pieces)
    for decrypt in decryptors:
        assert decrypt(ciphertext, identities["age"]) == plaintext


def test_header_comes_with_the_first_update(identities: dict[str, Identity]) -> None:
    encryptor = AgeEncryptor([parse_recipient(identities["age"].recipient)])
    first = encryptor.update(b"")
    assert first.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert len(first) == _header_length(first) + 16  # header and payload nonce, no chunk yet
    assert encryptor.update(b"x" * 10) == b""


def test_each_encryption_uses_fresh_keys(identities: dict[str, Identity]) -> None:
    recipients = [parse_recipient(identities["age"].recipient)]
    assert encrypt(b"same", recipients) != encrypt(b"same", recipients)


def test_no_use_after_finish(identities: dict[str, Identity]) -> None:
    encryptor = AgeEncryptor([parse_recipient(identities["age"].recipient)])
    encryptor.finish()
    with pytest.raises(RuntimeError):
        encryptor.update(b"late")
    with pytest.raises(RuntimeError):
        encryptor.finish()


def test_requires_a_recipient() -> None:
    with pytest.raises(ValueError, match="at least one recipient"):
        AgeEncryptor([])
