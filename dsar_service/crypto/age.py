"""A push-based, streaming age v1 encryptor (https://age-encryption.org/v1).

The output is the standard binary age format, readable by `age -d` and any other age
implementation:

    age-encryption.org/v1
    -> X25519 <ephemeral share>          one stanza per recipient, wrapping a random 16-byte file key
    <wrapped file key, base64, 64 columns>
    --- <HMAC-SHA256 of the header, keyed from the file key>
    <16-byte nonce><payload: STREAM of ChaCha20-Poly1305 chunks>

The payload key is HKDF-SHA256(file key, salt=nonce, info="payload"). Plaintext is cut into
64 KiB chunks, each sealed with the nonce `11-byte big-endian counter || last-chunk flag`. Only
the final chunk may be shorter than 64 KiB, and it is empty only when the whole input is.

`AgeEncryptor` holds at most one chunk of plaintext: `update` returns the ciphertext that is
ready (the header first), and `finish` seals the final chunk. A full chunk is kept back until
more input arrives, because whether it is the last one decides its nonce.
"""

import base64
import hmac
import os
from collections.abc import Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .recipients import Recipient, RecipientError, Stanza, parse_recipient

__all__ = ["CHUNK_SIZE", "AgeEncryptor", "Recipient", "RecipientError", "encrypt", "parse_recipient"]

CHUNK_SIZE = 64 * 1024
"""Plaintext bytes per STREAM chunk; each chunk grows by a 16-byte Poly1305 tag."""

_INTRO = b"age-encryption.org/v1\n"
_MAX_CHUNKS = 1 << 88


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _encode_stanza(stanza: Stanza) -> bytes:
    encoded = base64.b64encode(stanza.body).rstrip(b"=")
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    if len(encoded) % 64 == 0:
        lines.append(b"")  # the final body line is always shorter than 64 columns, even if empty
    head = " ".join(("->", stanza.type, *stanza.args)).encode()
    return b"\n".join([head, *lines]) + b"\n"


def _header(file_key: bytes, recipients: Sequence[Recipient]) -> bytes:
    header = _INTRO + b"".join(_encode_stanza(r.wrap(file_key)) for r in recipients) + b"---"
    mac = hmac.digest(_hkdf(file_key, b"", b"header"), header, "sha256")
    return header + b" " + base64.b64encode(mac).rstrip(b"=") + b"\n"


class AgeEncryptor:
    """Encrypt a stream to one or more recipients, one `update` at a time.

        encryptor = AgeEncryptor([parse_recipient("age1…")])
        sink(encryptor.update(b"first part"))   # includes the header
        sink(encryptor.update(b"more"))          # may be b"" while a chunk fills
        sink(encryptor.finish())                 # seals the last chunk

    The encryptor keeps at most one 64 KiB chunk however much passes through it. After
    `finish`, `update` and `finish` raise RuntimeError.
    """

    def __init__(self, recipients: Sequence[Recipient]) -> None:
        if not recipients:
            raise ValueError("at least one recipient is required")
        file_key = os.urandom(16)
        nonce = os.urandom(16)
        self._pending = _header(file_key, recipients) + nonce
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._buffer = bytearray()
        self._counter = 0
        self._finished = False

    def _seal(self, chunk: bytes | bytearray | memoryview, last: bool) -> bytes:
        if self._counter >= _MAX_CHUNKS:
            raise OverflowError("age STREAM counter exhausted")
        nonce = self._counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")
        self._counter += 1
        return self._aead.encrypt(nonce, chunk, None)

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Take more plaintext; return the ciphertext now ready (possibly b"")."""
        if self._finished:
            raise RuntimeError("AgeEncryptor.update() after finish()")
        out = [self._pending] if self._pending else []
        self._pending = b""
        view = memoryview(data).cast("B")
        while view:
            if len(self._buffer) == CHUNK_SIZE:  # more input follows, so the held chunk is not the last
                out.append(self._seal(self._buffer, last=False))
                self._buffer.clear()
            if not self._buffer and len(view) > CHUNK_SIZE:  # seal straight from the input, no copy
                out.append(self._seal(view[:CHUNK_SIZE], last=False))
                view = view[CHUNK_SIZE:]
                continue
            take = CHUNK_SIZE - len(self._buffer)
            self._buffer += view[:take]
            view = view[take:]
        return b"".join(out)

    def finish(self) -> bytes:
        """Seal the final chunk and return the last of the ciphertext."""
        if self._finished:
            raise RuntimeError("AgeEncryptor.finish() called twice")
        self._finished = True
        out = self._pending + self._seal(self._buffer, last=True)
        self._pending = b""
        self._buffer = bytearray()
        return out


def encrypt(data: bytes, recipients: Sequence[Recipient]) -> bytes:
    """Encrypt `data` in one go: the whole age file."""
    encryptor = AgeEncryptor(recipients)
    return encryptor.update(data) + encryptor.finish()
