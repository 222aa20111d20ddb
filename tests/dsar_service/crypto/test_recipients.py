"""parse_recipient accepts the three age recipient kinds and refuses anything else with a clear,
key-free reason."""

import base64
import hashlib
import struct

import pytest
from age_identities import Identity
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519

from dsar_service.crypto import RecipientError, parse_recipient
from dsar_service.crypto._bech32 import encode
from dsar_service.crypto._ssh import ed25519_to_x25519
from dsar_service.crypto.recipients import SshEd25519Recipient, SshRsaRecipient, X25519Recipient


def _ssh_line(key_type: str, *fields: bytes) -> str:
    blob = b"".join(struct.pack(">I", len(f)) + f for f in (key_type.encode(), *fields))
    return f"{key_type} {base64.b64encode(blob).decode()}"


def _openssh(key: ed25519.Ed25519PublicKey | rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> str:
    return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def test_age_recipient_round_trips(identities: dict[str, Identity]) -> None:
    text = identities["age"].recipient
    recipient = parse_recipient(f"  {text}\n")
    assert isinstance(recipient, X25519Recipient)
    assert str(recipient) == text
    assert parse_recipient(text.upper()) == recipient  # bech32 allows all-upper-case
    assert text not in repr(recipient)


def test_ssh_recipients_with_comments(identities: dict[str, Identity]) -> None:
    ed = parse_recipient(identities["ed25519"].recipient + "\n")
    rs = parse_recipient(identities["rsa"].recipient)
    assert isinstance(ed, SshEd25519Recipient)
    assert isinstance(rs, SshRsaRecipient)
    assert ed.kind == "ssh-ed25519" and rs.kind == "ssh-rsa"
    # The stanza tag is taken over the SSH wire key, without the comment.
    wire = base64.b64decode(identities["ed25519"].recipient.split()[1])
    assert ed.wire == wire
    assert ed.wrap(bytes(16)).args[0] == base64.b64encode(hashlib.sha256(wire).digest()[:4]).decode().rstrip("=")


def test_ed25519_to_x25519_matches_the_secret_key_derivation() -> None:
    # The X25519 key an age ssh-ed25519 identity decrypts with is the clamped SHA-512 of the seed;
    # its public key must be the birational map of the Ed25519 public key.
    for _ in range(20):
        signing = ed25519.Ed25519PrivateKey.generate()
        seed = signing.private_bytes_raw()
        scalar = x25519.X25519PrivateKey.from_private_bytes(hashlib.sha512(seed).digest()[:32])
        converted = ed25519_to_x25519(signing.public_key().public_bytes_raw())
        assert converted == scalar.public_key().public_bytes_raw()


def _bad_cases() -> list[tuple[str, str]]:
    age_key = encode("age", x25519.X25519PrivateKey.generate().public_key().public_bytes_raw())
    flipped = age_key[:-1] + ("q" if age_key[-1] != "q" else "p")
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    ecdsa = ec.generate_private_key(ec.SECP256R1()).public_key()
    ed_blob = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    return [
        ("", "empty"),
        ("hello world", "not a recognised public key"),
        (flipped, "checksum"),
        (age_key[:-10], "checksum"),
        (age_key[:10] + age_key[10:].upper(), "mixes upper and lower case"),
        (age_key.replace("1", "1b", 1)[:-1] + "x", "outside the bech32 alphabet"),
        (encode("age", bytes(range(31))), "31 bytes, expected 32"),
        (encode("age", bytes(range(33))), "33 bytes, expected 32"),
        (encode("age1pq", bytes(range(32))), "plugin and post-quantum"),
        (encode("age", bytes(32)), "low-order"),
        (encode("bc", bytes(range(32))), "not a recognised public key"),
        ("AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ", "secret key"),
        (_openssh(small_rsa), "1024 bits: at least 2048"),
        (_openssh(ecdsa), "unsupported SSH key type ecdsa-sha2-nistp256"),
        (_ssh_line("ssh-dss", b"\x01" * 20), "unsupported SSH key type ssh-dss"),
        (_ssh_line("ssh-ed25519", bytes(31)), "malformed ssh-ed25519"),
        (_ssh_line("ssh-ed25519", (2).to_bytes(32, "little")), "not a usable curve point"),
        (_ssh_line("ssh-ed25519", (1).to_bytes(32, "little")), "not a usable curve point"),
        ("ssh-rsa " + _ssh_line("ssh-ed25519", ed_blob).split()[1], "malformed ssh-rsa"),
        ("ssh-ed25519 bm90IGEga2V5", "malformed ssh-ed25519"),
        ("ssh-ed25519", "base64 key is missing"),
        ("-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----", "PEM"),
    ]


@pytest.mark.parametrize(("text", "reason"), _bad_cases())
def test_bad_recipients_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(RecipientError) as caught:
        parse_recipient(text)
    assert reason in caught.value.reason
    assert isinstance(caught.value, ValueError)
    # The reason names the key's type at most, never the key material.
    for word in text.split()[1:] if text.startswith(("ssh-", "ecdsa-")) else text.split():
        if len(word) > 16:
            assert word not in str(caught.value)
