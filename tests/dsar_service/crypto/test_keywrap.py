"""keywrap: secrets sealed under the master key open only with that key and that context."""

import hashlib
import hmac
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dsar_service.crypto import UnwrapError, context, keyed_digest, keywrap, open_at_rest, seal_at_rest, unwrap, wrap

MASTER = bytes(range(32))
SECRET = os.urandom(32)  # a request's X25519 private key


def test_round_trip() -> None:
    ctx = context("request-key", "req-A")
    wrapped = wrap(MASTER, SECRET, ctx)
    assert unwrap(MASTER, wrapped, ctx) == SECRET
    assert len(wrapped) == 1 + 12 + len(SECRET) + 16
    assert SECRET not in wrapped


def test_bound_to_request_and_purpose() -> None:
    wrapped = wrap(MASTER, SECRET, context("request-key", "req-A"))
    for other in (context("request-key", "req-B"), context("subject", "req-A"), b""):
        with pytest.raises(UnwrapError, match="did not open"):
            unwrap(MASTER, wrapped, other)


def test_wrong_master_key() -> None:
    ctx = context("request-key", "req-A")
    with pytest.raises(UnwrapError):
        unwrap(bytes(32), wrap(MASTER, SECRET, ctx), ctx)


def test_every_altered_byte_is_detected() -> None:
    ctx = context("request-key", "req-A")
    wrapped = wrap(MASTER, SECRET, ctx)
    for i in range(len(wrapped)):
        altered = bytearray(wrapped)
        altered[i] ^= 0x01
        with pytest.raises(UnwrapError):
            unwrap(MASTER, bytes(altered), ctx)
    for cut in (0, 1, 28, len(wrapped) - 1):
        with pytest.raises(UnwrapError):
            unwrap(MASTER, wrapped[:cut], ctx)


def test_fresh_nonce_each_time() -> None:
    ctx = context("request-key", "req-A")
    assert wrap(MASTER, SECRET, ctx) != wrap(MASTER, SECRET, ctx)


def test_master_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        wrap(b"short", SECRET, b"")
    with pytest.raises(ValueError, match="32 bytes"):
        keyed_digest(bytes(31), b"x")


def test_context_parts_do_not_run_together() -> None:
    assert context("a", "bc") != context("ab", "c")
    assert context("subject", "req-1") != context("subject", "req-1", "")


def test_at_rest_sealing_is_wrapping() -> None:
    ctx = context("subject-identifiers", "req-A")
    sealed = seal_at_rest(MASTER, b'{"email": "jeanne@example.fr"}', ctx)
    assert open_at_rest(MASTER, sealed, ctx) == b'{"email": "jeanne@example.fr"}'
    assert unwrap(MASTER, sealed, ctx) == b'{"email": "jeanne@example.fr"}'


def test_keyed_digest() -> None:
    digest = keyed_digest(MASTER, b"jeanne@example.fr")
    assert len(digest) == 32
    assert digest == keyed_digest(MASTER, b"jeanne@example.fr")
    assert digest != keyed_digest(MASTER, b"jeanne@example.com")
    assert digest != keyed_digest(bytes(32), b"jeanne@example.fr")
    # A sub-key, not the master key itself, keys the HMAC; and it is not a plain hash.
    assert digest != hmac.digest(MASTER, b"jeanne@example.fr", "sha256")
    assert digest != hashlib.sha256(b"jeanne@example.fr").digest()


def test_subkeys_are_derived_once_and_stay_exact() -> None:
    def fresh(master: bytes, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    keywrap._SUBKEYS.clear()  # what other tests derived, from their own key objects
    other = bytes(32)
    for master in (MASTER, other, MASTER):
        for info in (keywrap._WRAP_INFO, keywrap._DIGEST_INFO):
            assert keywrap._subkey(master, info) == fresh(master, info)
    # The cache holds the caller's master key object, not a copy of it.
    assert all(any(k is master for master in (MASTER, other)) for k, _ in keywrap._SUBKEYS)
    # A mutable buffer is derived from, never kept; a wrong length is refused each time.
    assert keywrap._subkey(bytearray(MASTER), keywrap._WRAP_INFO) == fresh(MASTER, keywrap._WRAP_INFO)
    assert all(type(k) is bytes for k, _ in keywrap._SUBKEYS)
    for _ in range(2):
        with pytest.raises(ValueError, match="32 bytes"):
            wrap(bytes(31), SECRET, b"")
    ctx = context("request-key", "req-A")
    assert unwrap(MASTER, wrap(MASTER, SECRET, ctx), ctx) == SECRET
    with pytest.raises(UnwrapError):
        unwrap(other, wrap(MASTER, SECRET, ctx), ctx)
    assert keyed_digest(MASTER, b"x") == hmac.digest(fresh(MASTER, keywrap._DIGEST_INFO), b"x", "sha256")
