"""The plaintext sealed in a ResultChunk: a RecordBatch, as is or deflated (bus.proto).

    plaintext = deflated(batch)          # a connector, when the QueryCommand offered deflate
    batch = inflated(plaintext)          # the service: a deflated batch, or a plain one as it is

A RecordBatch's encoding never begins with a byte below 0x08 (that would be field number 0), so
a first byte of 0x01 (RECORD_ENCODING_DEFLATE) marks a deflated batch without ambiguity, and the
marker, sealed with the records, is authenticated with them. Records are JSON, which deflates to
a fifth or less: the broker and the service's database then carry a fifth of the bytes.

Inflating is bounded: a batch is at most `MAX_BATCH_BYTES`, and a chunk that inflates past it
(a deflate bomb), is cut short or carries bytes after its end is refused.
"""

from isal import isal_zlib

__all__ = ["DEFLATE", "MAX_BATCH_BYTES", "BatchError", "deflated", "inflated"]

MAX_BATCH_BYTES = 1024 * 1024  # the plaintext of one ResultChunk, at most (bus.proto)
DEFLATE = 1  # bus_pb2.RECORD_ENCODING_DEFLATE, the first byte of a deflated batch
_DEFLATED = bytes([DEFLATE])
_LEVEL = 1  # ISA-L's fastest: about 1 GB/s on records, to a fifth of their size
_RAW = -15  # raw deflate (RFC 1951), 32 KiB window


class BatchError(ValueError):
    """A chunk's plaintext is not a RecordBatch in an encoding this side reads."""


def deflated(batch: bytes) -> bytes:
    """The plaintext to seal for `batch`, deflated (RECORD_ENCODING_DEFLATE)."""
    return _DEFLATED + isal_zlib.compress(batch, _LEVEL, _RAW)


def inflated(plaintext: bytes, limit: int = MAX_BATCH_BYTES) -> bytes:
    """The RecordBatch bytes of an opened chunk: inflated if deflated, else `plaintext` itself."""
    if not plaintext or plaintext[0] >= 0x08:
        return plaintext  # a plain RecordBatch (or an empty one)
    if plaintext[0] != DEFLATE:
        raise BatchError("a record batch has an unknown encoding")
    inflater = isal_zlib.decompressobj(_RAW)
    try:
        batch = inflater.decompress(plaintext[1:], limit + 1)
    except Exception:  # isal_zlib.error, which its stubs do not type as an exception
        raise BatchError("a deflated record batch does not inflate") from None
    if len(batch) > limit:
        raise BatchError(f"a deflated record batch inflates past {limit} bytes")
    if not inflater.eof or inflater.unused_data:
        raise BatchError("a deflated record batch is cut short or followed by other bytes")
    return batch
