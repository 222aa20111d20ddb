"""HPKE sealing (RFC 9180) of everything personal that crosses Kafka.

The suite is DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. Each sealing binds its
bytes to their place through the HPKE `info`: a result chunk sealed for request R, system S,
attempt A, sequence N does not open as any other chunk, so a replayed or misrouted message is
refused rather than silently accepted.
"""

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite

_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.CHACHA20_POLY1305)
_RAW = serialization.Encoding.Raw


class SealError(Exception):
    """Sealed bytes did not open: wrong key, wrong binding, or tampered bytes."""


@dataclass(frozen=True)
class KeyPair:
    """An X25519 key pair; `private` is 32 raw bytes, `public` 32 raw bytes."""

    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> "KeyPair":
        return cls.from_private(
            X25519PrivateKey.generate().private_bytes(
                _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
        )

    @classmethod
    def from_private(cls, private: bytes) -> "KeyPair":
        public = (
            X25519PrivateKey.from_private_bytes(private).public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
        )
        return cls(private=private, public=public)

    @property
    def key_id(self) -> str:
        return key_id(self.public)


def key_id(public: bytes) -> str:
    """A short, stable fingerprint of a public key."""
    return hashlib.sha256(public).hexdigest()[:16]


def seal(plaintext: bytes, public: bytes, info: bytes) -> bytes:
    """Seal `plaintext` to the X25519 public key `public` (32 raw bytes), bound to `info`."""
    return _SUITE.encrypt(plaintext, X25519PublicKey.from_public_bytes(public), info=info)


def open_sealed(sealed: bytes, private: bytes, info: bytes) -> bytes:
    """Open what `seal` sealed; raises SealError if the key, the binding or the bytes are wrong."""
    try:
        return _SUITE.decrypt(sealed, X25519PrivateKey.from_private_bytes(private), info=info)
    except (InvalidTag, ValueError) as error:
        raise SealError("sealed bytes did not open") from error


def _binding(*parts: str | int) -> bytes:
    return b"\x00".join(str(part).encode() for part in ("dsar.bus.v1", *parts))


def query_binding(request_id: str, system: str, attempt: int) -> bytes:
    """The `info` of a QueryCommand's sealed query."""
    return _binding("query", request_id, system, attempt)


def chunk_binding(request_id: str, system: str, attempt: int, sequence: int) -> bytes:
    """The `info` of a ResultChunk's sealed records."""
    return _binding("chunk", request_id, system, attempt, sequence)


def discovered_binding(request_id: str, system: str, attempt: int) -> bytes:
    """The `info` of a Completion's sealed discovered identifiers."""
    return _binding("discovered", request_id, system, attempt)
