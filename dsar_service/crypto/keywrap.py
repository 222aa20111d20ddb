"""Small secrets wrapped under the service's master key, and keyed digests for comparisons.

`wrap` seals a secret (a request's X25519 private key, a subject's identifiers kept in the
service database) with AES-256-GCM under a key derived from the 32-byte master key. The
caller's `context` is authenticated as associated data: bind it to the purpose and the request
with `context("request-key", request_id)`, and a secret wrapped for request A refuses to unwrap
for request B, or for another purpose.

    wrapped = version (1 byte, 0x01) || nonce (12 random bytes) || ciphertext || tag (16 bytes)

`keyed_digest` is HMAC-SHA256 under another key derived from the master key: equal inputs give
equal digests, so idempotency checks compare digests and never store the plaintext.

The master key itself is never used directly: HKDF-SHA256 derives one sub-key per use.
"""

import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["UnwrapError", "context", "keyed_digest", "open_at_rest", "seal_at_rest", "unwrap", "wrap"]

_VERSION = b"\x01"
_NONCE_SIZE = 12
_TAG_SIZE = 16
_WRAP_INFO = b"dsar.crypto.keywrap.v1"
_DIGEST_INFO = b"dsar.crypto.keyed-digest.v1"


class UnwrapError(Exception):
    """A wrapped secret did not open: wrong master key, wrong context, or altered bytes."""


# Sub-keys derived so far, by (master key, info): HKDF gives the same sub-key for the same inputs,
# and deriving it took most of the time of a wrap or a digest. The key of each entry is the
# caller's own master key object (no copy); the sub-keys live in this process's memory only,
# as the master key does. Bounded: a process has one master key (two during a rotation).
_SUBKEYS: dict[tuple[bytes, bytes], bytes] = {}
_SUBKEYS_MAX = 16


def _derive(master_key: bytes, info: bytes) -> bytes:
    if len(master_key) != 32:
        raise ValueError("master key must be 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master_key)


def _subkey(master_key: bytes, info: bytes) -> bytes:
    if type(master_key) is not bytes:  # a mutable buffer: it could change under the cache; keep nothing
        return _derive(master_key, info)
    found = _SUBKEYS.get((master_key, info))
    if found is None:
        found = _derive(master_key, info)
        if len(_SUBKEYS) >= _SUBKEYS_MAX:
            _SUBKEYS.clear()
        _SUBKEYS[(master_key, info)] = found
    return found


def context(purpose: str, *parts: str) -> bytes:
    """Associated data binding a wrapped secret to a purpose and, usually, a request id.

    Each part is length-prefixed, so ("a", "bc") and ("ab", "c") never collide.
    """
    out = bytearray()
    for part in (purpose, *parts):
        encoded = part.encode()
        out += len(encoded).to_bytes(4, "big") + encoded
    return bytes(out)


def wrap(master_key: bytes, secret: bytes, context: bytes) -> bytes:
    """Encrypt `secret` under the master key, bound to `context`; a fresh nonce every call."""
    nonce = os.urandom(_NONCE_SIZE)
    sealed = AESGCM(_subkey(master_key, _WRAP_INFO)).encrypt(nonce, secret, _VERSION + context)
    return _VERSION + nonce + sealed


def unwrap(master_key: bytes, wrapped: bytes, context: bytes) -> bytes:
    """Return the secret that `wrap` sealed with this master key and this context.

    Raises UnwrapError if the master key or the context differ, or the bytes were altered.
    """
    if len(wrapped) < 1 + _NONCE_SIZE + _TAG_SIZE or wrapped[:1] != _VERSION:
        raise UnwrapError("wrapped secret is malformed or of an unknown version")
    nonce, sealed = wrapped[1 : 1 + _NONCE_SIZE], wrapped[1 + _NONCE_SIZE :]
    try:
        return AESGCM(_subkey(master_key, _WRAP_INFO)).decrypt(nonce, sealed, _VERSION + context)
    except InvalidTag:
        raise UnwrapError("wrapped secret did not open: wrong master key, context or bytes") from None


seal_at_rest = wrap
"""Keep a value (the subject's identifiers) encrypted in the service database; same as `wrap`."""

open_at_rest = unwrap
"""Read back what `seal_at_rest` stored; same as `unwrap`."""


def keyed_digest(master_key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of `data` (32 bytes) under a key derived from the master key."""
    return hmac.digest(_subkey(master_key, _DIGEST_INFO), data, "sha256")
