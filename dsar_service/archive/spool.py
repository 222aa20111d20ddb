"""A temporary file for bytes that must never reach the disk readable: sealed as they are written.

    spool = SealedSpool()
    spool.write(data)…             sealed in 1 MiB blocks, ChaCha20-Poly1305, into a temporary file
    for block in spool.blocks():   the bytes again, in order, each block checked
    spool.close()                  the file is gone; its key was only ever in this object

The key is random, made for the spool and held in memory only, so what is on disk is ciphertext
that nothing can open once the process lets go of the spool (or dies). Each block's nonce is
its number, and the last block is marked, so blocks cannot be reordered, dropped or cut short
without `blocks` raising. Memory holds one block, whatever was written.
"""

import tempfile
from collections.abc import Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

__all__ = ["SPOOL_BLOCK_BYTES", "SealedSpool", "SpoolBudget", "SpoolChain", "SpoolError"]

SPOOL_BLOCK_BYTES = 1024 * 1024
_TAG = 16


class SpoolError(Exception):
    """The spool's file does not read back as written (altered, or cut short)."""


class SpoolBudget:
    """The bytes the spools sharing it may keep on disk at once (a temporary directory is small:
    64 MiB in the service's deployment). A write past it raises SpoolError; closing gives back."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> None:
        if self.used + size > self.limit:
            raise SpoolError(f"the spools' {self.limit} bytes of temporary space are in use")
        self.used += size

    def give_back(self, size: int) -> None:
        self.used -= size


def _nonce(number: int, last: bool) -> bytes:
    return number.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


class SealedSpool:
    """Bytes written in order, kept sealed in a temporary file, read back once in order."""

    def __init__(self, directory: str | None = None, budget: SpoolBudget | None = None) -> None:
        self._budget = budget
        self._on_disk = 0
        self._aead = ChaCha20Poly1305(ChaCha20Poly1305.generate_key())
        self._file = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 (closed by close())
        self._pending = bytearray()
        self._blocks = 0
        self._size = 0
        self._sealed = False

    @property
    def size(self) -> int:
        """Plaintext bytes written."""
        return self._size

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._sealed:
            raise RuntimeError("the spool is being read: nothing more can be written")
        self._pending += data
        self._size += len(data)
        while len(self._pending) > SPOOL_BLOCK_BYTES:
            self._seal_block(bytes(self._pending[:SPOOL_BLOCK_BYTES]), last=False)
            del self._pending[:SPOOL_BLOCK_BYTES]

    def _seal_block(self, block: bytes, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._blocks, last), block, None)
        if self._budget is not None:
            self._budget.take(len(sealed))
        self._on_disk += len(sealed)
        try:
            self._file.write(sealed)
        except OSError as error:  # the disk is full, say
            raise SpoolError(f"the spool's file could not be written ({type(error).__name__})") from None
        self._blocks += 1

    def blocks(self) -> Iterator[bytes]:
        """The bytes written, block by block (at most 1 MiB each), checked as they are read.
        Nothing more can be written from this call on."""
        if not self._sealed:
            self._seal_block(bytes(self._pending), last=True)
            self._pending = bytearray()
            self._sealed = True
        self._file.flush()
        return self._read_blocks()

    def _read_blocks(self) -> Iterator[bytes]:
        self._file.seek(0)
        for number in range(self._blocks):
            last = number == self._blocks - 1
            try:
                sealed = self._file.read() if last else self._file.read(SPOOL_BLOCK_BYTES + _TAG)
            except OSError as error:
                raise SpoolError(f"the spool's file could not be read ({type(error).__name__})") from None
            try:
                yield self._aead.decrypt(_nonce(number, last), sealed, None)
            except InvalidTag:
                raise SpoolError("the spool's file was altered or cut short") from None

    def close(self) -> None:
        """Delete the file and forget what was not written yet (the key goes with this object)."""
        self._file.close()
        self._pending = bytearray()
        if self._budget is not None:
            self._budget.give_back(self._on_disk)
        self._on_disk = 0

    def __enter__(self) -> "SealedSpool":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class SpoolChain:
    """Spools read back one after the other, as one: a part written as two sections at once."""

    def __init__(self, *spools: SealedSpool) -> None:
        self.spools = spools

    @property
    def size(self) -> int:
        """Plaintext bytes written, in all."""
        return sum(spool.size for spool in self.spools)

    def blocks(self) -> Iterator[bytes]:
        """Each spool's blocks in turn (see `SealedSpool.blocks`)."""
        for spool in self.spools:
            yield from spool.blocks()

    def close(self) -> None:
        for spool in self.spools:
            spool.close()
