"""age recipients: who an archive is encrypted to, parsed from the text a requester submits.

Three kinds are accepted, as the age v1 specification defines them:

* `age1…`          an age X25519 public key (Bech32, human-readable part `age`, 32 bytes);
* `ssh-ed25519 …`  an OpenSSH Ed25519 public key (the `ssh-ed25519` stanza);
* `ssh-rsa …`      an OpenSSH RSA public key of 2048 to 16384 bits (the `ssh-rsa` stanza).

Each recipient wraps the archive's 16-byte file key into one header stanza. `parse_recipient`
raises `RecipientError` with a reason fit to show the requester; the reason names at most the
key's type, never the key text.
"""

import base64
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from . import _bech32, _ssh

__all__ = [
    "Recipient",
    "RecipientError",
    "SshEd25519Recipient",
    "SshRsaRecipient",
    "Stanza",
    "X25519Recipient",
    "parse_recipient",
]

_X25519_LABEL = b"age-encryption.org/v1/X25519"
_SSH_ED25519_LABEL = b"age-encryption.org/v1/ssh-ed25519"
_SSH_RSA_LABEL = b"age-encryption.org/v1/ssh-rsa"
_ZERO_NONCE = bytes(12)
_MIN_RSA_BITS = 2048
_MAX_RSA_BITS = 16384
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=_SSH_RSA_LABEL)
_KEY_TYPE = re.compile(r"[A-Za-z0-9@.+-]{1,64}")


class RecipientError(ValueError):
    """The recipient text is not a usable public key. `reason` says why, without the key text."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza of an age header: `-> type args…` followed by the wrapped file key."""

    type: str
    args: tuple[str, ...]
    body: bytes


class Recipient(ABC):
    """Something the file key can be wrapped to. `kind` is the stanza type (`X25519`, `ssh-rsa`…)."""

    kind: str

    @abstractmethod
    def wrap(self, file_key: bytes) -> Stanza:
        """Wrap the 16-byte file key into this recipient's stanza (fresh randomness each call)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _x25519(private: X25519PrivateKey, public: bytes) -> bytes:
    # cryptography refuses an all-zero result (a low-order public key) with ValueError, as age does.
    return private.exchange(X25519PublicKey.from_public_bytes(public))


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _wrap_x25519(file_key: bytes, shared: bytes, salt: bytes, label: bytes) -> bytes:
    return ChaCha20Poly1305(_hkdf(shared, salt, label)).encrypt(_ZERO_NONCE, file_key, None)


@dataclass(frozen=True, repr=False)
class X25519Recipient(Recipient):
    """An age X25519 recipient; `public_key` is the 32-byte Curve25519 public key."""

    public_key: bytes
    kind = "X25519"

    def __str__(self) -> str:
        return _bech32.encode("age", self.public_key)

    def __repr__(self) -> str:
        return f"X25519Recipient(key_id={_ssh.tag(self.public_key).hex()})"

    def wrap(self, file_key: bytes) -> Stanza:
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        shared = _x25519(ephemeral, self.public_key)
        body = _wrap_x25519(file_key, shared, share + self.public_key, _X25519_LABEL)
        return Stanza(self.kind, (_b64(share),), body)


@dataclass(frozen=True, repr=False)
class SshEd25519Recipient(Recipient):
    """An OpenSSH Ed25519 key: `wire` is its SSH wire encoding, `montgomery` its X25519 form."""

    wire: bytes
    montgomery: bytes
    kind = "ssh-ed25519"

    def __repr__(self) -> str:
        return f"SshEd25519Recipient(tag={_ssh.tag(self.wire).hex()})"

    def __str__(self) -> str:
        """The key in OpenSSH's form, without the comment (which is often an e-mail address)."""
        return f"ssh-ed25519 {base64.b64encode(self.wire).decode()}"

    def wrap(self, file_key: bytes) -> Stanza:
        ephemeral = X25519PrivateKey.generate()
        share = ephemeral.public_key().public_bytes_raw()
        tweak = _hkdf(b"", self.wire, _SSH_ED25519_LABEL)
        shared = _x25519(X25519PrivateKey.from_private_bytes(tweak), _x25519(ephemeral, self.montgomery))
        body = _wrap_x25519(file_key, shared, share + self.montgomery, _SSH_ED25519_LABEL)
        return Stanza(self.kind, (_b64(_ssh.tag(self.wire)), _b64(share)), body)


@dataclass(frozen=True, repr=False)
class SshRsaRecipient(Recipient):
    """An OpenSSH RSA key; the file key is wrapped with RSA-OAEP (SHA-256, age's label)."""

    wire: bytes
    public_key: RSAPublicKey = field(compare=False)
    kind = "ssh-rsa"

    def __repr__(self) -> str:
        return f"SshRsaRecipient(tag={_ssh.tag(self.wire).hex()}, bits={self.public_key.key_size})"

    def __str__(self) -> str:
        """The key in OpenSSH's form, without the comment (which is often an e-mail address)."""
        return f"ssh-rsa {base64.b64encode(self.wire).decode()}"

    def wrap(self, file_key: bytes) -> Stanza:
        return Stanza(self.kind, (_b64(_ssh.tag(self.wire)),), self.public_key.encrypt(file_key, _OAEP))


def parse_recipient(text: str) -> Recipient:
    """Parse an `age1…`, `ssh-ed25519 …` or `ssh-rsa …` public key; raise RecipientError otherwise."""
    text = text.strip()
    if not text:
        raise RecipientError("recipient is empty")
    lowered = text.lower()
    if lowered.startswith("age-secret-key-"):
        raise RecipientError("this is an age secret key, not a recipient: give the public key (age1…)")
    if lowered.startswith("age1"):
        return _parse_age(text)
    if lowered.startswith("-----begin"):
        raise RecipientError("PEM keys are not accepted: give an age1… key or an OpenSSH public key line")
    key_type = text.split(maxsplit=1)[0]
    if key_type in ("ssh-ed25519", "ssh-rsa"):
        return _parse_ssh(key_type, text)
    if key_type.startswith(("ssh-", "ecdsa-", "sk-")) and _KEY_TYPE.fullmatch(key_type):
        raise RecipientError(f"unsupported SSH key type {key_type}: use ssh-ed25519, ssh-rsa or an age1… key")
    raise RecipientError("not a recognised public key: expected age1…, ssh-ed25519 … or ssh-rsa …")


def _parse_age(text: str) -> X25519Recipient:
    try:
        hrp, data = _bech32.decode(text)
    except _bech32.Bech32Error as error:
        raise RecipientError(f"invalid age recipient: {error}") from None
    if hrp != "age":
        raise RecipientError("unsupported age recipient type (plugin and post-quantum keys are not accepted)")
    if len(data) != 32:
        raise RecipientError(f"invalid age recipient: key is {len(data)} bytes, expected 32")
    try:
        _x25519(X25519PrivateKey.generate(), data)
    except ValueError:
        raise RecipientError("invalid age recipient: the key is a low-order point") from None
    return X25519Recipient(data)


def _parse_ssh(key_type: str, text: str) -> Recipient:
    fields = text.split()
    if len(fields) < 2:
        raise RecipientError(f"malformed {key_type} public key: the base64 key is missing")
    try:
        key = serialization.load_ssh_public_key(f"{fields[0]} {fields[1]}".encode())
    except (ValueError, UnsupportedAlgorithm):
        raise RecipientError(f"malformed {key_type} public key") from None
    if isinstance(key, Ed25519PublicKey):
        try:
            montgomery = _ssh.ed25519_to_x25519(key.public_bytes_raw())
            _x25519(X25519PrivateKey.generate(), montgomery)
        except ValueError:
            raise RecipientError("invalid ssh-ed25519 public key: not a usable curve point") from None
        return SshEd25519Recipient(_ssh.wire_key(key), montgomery)
    if isinstance(key, RSAPublicKey):
        bits = key.key_size
        if bits < _MIN_RSA_BITS:
            raise RecipientError(f"ssh-rsa key is {bits} bits: at least {_MIN_RSA_BITS} are required")
        if bits > _MAX_RSA_BITS:
            raise RecipientError(f"ssh-rsa key is {bits} bits: at most {_MAX_RSA_BITS} are accepted")
        return SshRsaRecipient(_ssh.wire_key(key), key)
    raise RecipientError(f"malformed {key_type} public key")  # pragma: no cover - type checked above
