"""Packing records into RecordBatch plaintexts of at most 1 MiB each.

A RecordBatch is `repeated Record records = 1`; its encoding is the concatenation, for each
record, of the tag byte 0x0A, the record's length as a varint and the record's bytes. So the
exact size of a batch is known as records are added, and a batch is built by joining bytes,
without encoding it twice.
"""

from connectors.sdk import PermanentError, Record, RecordError
from dsar.bus.v1 import bus_pb2
from dsar_common.record_batches import MAX_BATCH_BYTES

MAX_CHUNK_BYTES = MAX_BATCH_BYTES  # plaintext of one ResultChunk (bus.proto), before any deflate
_RECORDS_TAG = b"\x0a"  # field 1, wire type 2 (length-delimited)


def varint(value: int) -> bytes:
    """The protobuf varint encoding of a non-negative integer."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_record(record: Record) -> bytes:
    """A `dsar.bus.v1.Record` in bytes (dataset, key and the fields as JSON)."""
    try:
        fields_json = record.fields_json()
    except TypeError as error:  # orjson names the type, never the value
        raise RecordError(f"a field of {record.dataset} could not be encoded: {error}") from None
    message = bus_pb2.Record(dataset=record.dataset, key=record.key, fields_json=fields_json)
    return message.SerializeToString()


class ChunkPacker:
    """Collects encoded records and hands back full batches, each at most `limit` bytes."""

    def __init__(self, limit: int = MAX_CHUNK_BYTES) -> None:
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._count = 0

    @property
    def buffered(self) -> int:
        """Records waiting in the current batch."""
        return self._count

    def add(self, encoded: bytes) -> tuple[bytes, int] | None:
        """Add one encoded record; return the previous batch and its record count if it was full."""
        entry = _RECORDS_TAG + varint(len(encoded))
        size = len(entry) + len(encoded)
        if size > self.limit:
            raise PermanentError(f"a record of {size} bytes exceeds the chunk limit of {self.limit} bytes")
        full = self.flush() if self._size + size > self.limit else None
        self._parts += (entry, encoded)
        self._size += size
        self._count += 1
        return full

    def flush(self) -> tuple[bytes, int] | None:
        """The current batch and its record count, or None when empty; starts a new batch."""
        if not self._count:
            return None
        batch, count = b"".join(self._parts), self._count
        self._parts, self._size, self._count = [], 0, 0
        return batch, count
