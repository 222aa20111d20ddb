"""Chunks never exceed 1 MiB of plaintext and decode as the RecordBatch they claim to be."""

import random

import pytest

from connectors.runtime.chunks import MAX_CHUNK_BYTES, ChunkPacker, encode_record, varint
from connectors.sdk import PermanentError, Record
from dsar.bus.v1 import bus_pb2


def test_varint_matches_protobuf() -> None:
    assert varint(0) == b"\x00"
    for n in (1, 127, 128, 300, 16383, 16384, 2**21, MAX_CHUNK_BYTES):
        message = bus_pb2.Record(fields_json=b"x" * n)
        assert message.SerializeToString()[1 : 1 + len(varint(n))] == varint(n)


def test_batches_stay_under_the_limit_and_keep_every_record_in_order() -> None:
    rng = random.Random(7)
    records = [
        Record(f"d{i // 500}", str(i), {"blob": "é" * rng.choice([1, 50, 3_000, 40_000, 200_000])})
        for i in range(2_000)
    ]
    packer = ChunkPacker()
    batches = []
    for record in records:
        full = packer.add(encode_record(record))
        if full:
            batches.append(full)
    last = packer.flush()
    assert last is not None and packer.flush() is None
    batches.append(last)
    decoded = []
    for batch, count in batches:
        assert len(batch) <= MAX_CHUNK_BYTES
        parsed = bus_pb2.RecordBatch.FromString(batch)
        assert len(parsed.records) == count
        decoded += [(r.dataset, r.key, r.fields_json) for r in parsed.records]
    assert decoded == [(r.dataset, r.key, r.fields_json()) for r in records]
    assert max(len(b) for b, _ in batches[:-1]) > MAX_CHUNK_BYTES - 250_000  # batches are filled


def test_a_record_exactly_at_the_limit_fits_alone_and_a_larger_one_fails() -> None:
    packer = ChunkPacker(limit=1_000)
    sizes = {n: encode_record(Record("d", "k", {"v": "x" * n})) for n in range(900, 1_000)}
    exact = next(e for e in sizes.values() if len(e) + 1 + len(varint(len(e))) == 1_000)
    assert packer.add(exact) is None
    full = packer.add(exact)
    assert full is not None and len(full[0]) == 1_000
    with pytest.raises(PermanentError, match="exceeds"):
        packer.add(encode_record(Record("d", "k", {"v": "x" * 1_000})))
