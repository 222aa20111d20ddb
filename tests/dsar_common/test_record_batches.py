"""The plaintext of a ResultChunk: a RecordBatch as is, or deflated behind its marker byte.

Deflated batches come back whole; plain ones pass as they are; anything else is refused before
it can cost memory: an unknown encoding, a batch that inflates past the limit (a deflate bomb),
one cut short, or one followed by other bytes.
"""

import random

import pytest
from isal import isal_zlib

from dsar.bus.v1 import bus_pb2
from dsar_common.record_batches import DEFLATE, MAX_BATCH_BYTES, BatchError, deflated, inflated


def batch(records: int = 200) -> bytes:
    return bus_pb2.RecordBatch(
        records=[
            bus_pb2.Record(dataset="visits", key=f"v{i}", fields_json=b'{"path": "/assurance/auto", "ms": %d}' % i)
            for i in range(records)
        ]
    ).SerializeToString()


def test_the_marker_is_the_proto_enum_value() -> None:
    assert DEFLATE == bus_pb2.RECORD_ENCODING_DEFLATE


def test_a_deflated_batch_comes_back_whole_and_smaller() -> None:
    plain = batch()
    sealed_plaintext = deflated(plain)
    assert sealed_plaintext[0] == DEFLATE and len(sealed_plaintext) < len(plain) / 4
    assert inflated(sealed_plaintext) == plain


@pytest.mark.parametrize("records", [0, 1, 200])
def test_a_plain_batch_passes_as_it_is(records: int) -> None:
    plain = batch(records)
    assert plain[:1] in (b"", b"\x0a")  # a RecordBatch starts with field 1's tag, never below 0x08
    assert inflated(plain) is plain


def test_an_unknown_encoding_is_refused() -> None:
    with pytest.raises(BatchError, match="unknown encoding"):
        inflated(b"\x02" + isal_zlib.compress(batch(), 1, -15))


def test_a_batch_that_inflates_past_the_limit_is_refused_without_inflating_it_all() -> None:
    bomb = deflated(b"\x0a" * (64 * MAX_BATCH_BYTES))  # 64 MiB that deflate to a few kilobytes
    assert len(bomb) < 200_000
    with pytest.raises(BatchError, match="inflates past"):
        inflated(bomb)
    assert inflated(deflated(b"\x0a" * MAX_BATCH_BYTES)) == b"\x0a" * MAX_BATCH_BYTES  # the limit itself passes


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda d: d[: len(d) // 2], "cut short"),
        (lambda d: d + b"more", "followed"),
        (lambda d: d[:1] + random.Random(7).randbytes(64), "inflate|cut short|followed"),
    ],
    ids=["cut-short", "trailing-bytes", "not-deflate"],
)
def test_a_damaged_deflated_batch_is_refused(damage: object, reason: str) -> None:
    with pytest.raises(BatchError, match=reason):
        inflated(damage(deflated(batch())))  # type: ignore[operator]
