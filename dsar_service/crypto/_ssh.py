"""OpenSSH public keys as age reads them: the canonical wire encoding, its tag, and the
conversion of an Ed25519 public key to the X25519 (Montgomery) key that age encrypts to.
"""

import base64
import hashlib

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

_P = 2**255 - 19
_D = (-121665 * pow(121666, -1, _P)) % _P


def wire_key(public_key: Ed25519PublicKey | RSAPublicKey) -> bytes:
    """The key's SSH wire encoding (RFC 4253 §6.6), canonical whatever the input line held."""
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split(b" ")[1])


def tag(wire: bytes) -> bytes:
    """The 4-byte tag age puts in ssh-* stanzas: the start of SHA-256 of the wire key."""
    return hashlib.sha256(wire).digest()[:4]


def ed25519_to_x25519(public: bytes) -> bytes:
    """Map an Ed25519 public key (32 bytes) to its X25519 counterpart: u = (1 + y) / (1 - y).

    Raises ValueError if the bytes do not decode to a point of the curve or decode to the
    identity, the way Go's edwards25519 (which age uses) refuses them. Non-canonical y values
    are reduced, as there.
    """
    if len(public) != 32:
        raise ValueError("Ed25519 public key must be 32 bytes")
    y = (int.from_bytes(public, "little") & ((1 << 255) - 1)) % _P
    # x^2 = (y^2 - 1) / (d*y^2 + 1) must be a square for (x, y) to lie on the curve.
    y2 = y * y % _P
    x2 = (y2 - 1) * pow(_D * y2 + 1, -1, _P) % _P
    if x2 != 0 and pow(x2, (_P - 1) // 2, _P) != 1:
        raise ValueError("Ed25519 public key is not a point of the curve")
    if y == 1:
        raise ValueError("Ed25519 public key is the identity point")
    u = (1 + y) * pow(1 - y, -1, _P) % _P
    return u.to_bytes(32, "little")
