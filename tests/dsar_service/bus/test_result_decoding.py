"""What the service takes from the result topic: anything the database could not hold as it is
is refused at the boundary (and dead-lettered), rather than failing in the store on every delivery."""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from dsar.bus.v1 import bus_pb2
from dsar_common.record_batches import MAX_BATCH_BYTES, deflated
from dsar_common.settings import KafkaSettings
from dsar_common.topics import Topics
from dsar_service.bus import PayloadError, decode_records
from dsar_service.bus.events import AttemptEnded, ChunkReceived
from dsar_service.bus.service_bus import ServiceBus, _heartbeat, _result_event
from dsar_service.metrics import Metrics

REQUEST = str(uuid.uuid4())


def chunk(**changes: object) -> bus_pb2.ResultEvent:
    values: dict[str, object] = dict(request_id=REQUEST, system="policy", attempt=1, sequence=0, record_count=3)
    values.update(changes)
    return bus_pb2.ResultEvent(chunk=bus_pb2.ResultChunk(**values, sealed_records=b"x"))  # type: ignore[arg-type]


def test_a_well_formed_chunk_passes() -> None:
    assert _result_event(chunk()) == ChunkReceived(REQUEST, "policy", 1, 0, 3, b"x")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"request_id": "not-a-uuid"}, "UUID"),
        ({"system": "Policy\x00"}, "system"),
        ({"system": ""}, "system"),
        ({"attempt": 0}, "attempt"),
        ({"attempt": 2**32 - 1}, "attempt"),
        ({"record_count": 2**31}, "count"),
        ({"sequence": 2**64 - 1}, "count"),
    ],
)
def test_values_the_database_cannot_hold_are_refused(changes: dict[str, object], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        _result_event(chunk(**changes))


def test_a_completion_error_loses_nul_bytes_and_is_bounded() -> None:
    completion = bus_pb2.Completion(
        request_id=REQUEST, system="crm", attempt=2, status=bus_pb2.COMPLETION_STATUS_FAILED, error="bad\x00" * 2000
    )
    event = _result_event(bus_pb2.ResultEvent(completion=completion))
    assert isinstance(event, AttemptEnded)
    assert "\x00" not in event.error and len(event.error) == 2000


def test_an_unusable_heartbeat_is_refused() -> None:
    good = bus_pb2.Heartbeat(system="crm", instance_id="i", public_key=b"k" * 32, key_id="k", interval_seconds=5)
    assert _heartbeat(good).system == "crm"
    for bad in (
        bus_pb2.Heartbeat(system="crm", public_key=b"k" * 31, interval_seconds=5),
        bus_pb2.Heartbeat(system="crm", public_key=b"k" * 32, interval_seconds=0),
        bus_pb2.Heartbeat(system="../etc", public_key=b"k" * 32, interval_seconds=5),
    ):
        with pytest.raises(ValueError):
            _heartbeat(bad)


def record_batch(count: int) -> bytes:
    records = [bus_pb2.Record(dataset="claim", key=f"c{i}", fields_json=b'{"amount": %d}' % i) for i in range(count)]
    return bus_pb2.RecordBatch(records=records).SerializeToString()


@pytest.mark.parametrize("encode", [lambda batch: batch, deflated], ids=["plain", "deflated"])
def test_an_opened_chunk_gives_its_records_deflated_or_not(encode: Callable[[bytes], bytes]) -> None:
    records = decode_records(encode(record_batch(50)))
    assert records[:2] == [("claim", b'{"amount": 0}'), ("claim", b'{"amount": 1}')]
    assert len(records) == 50


def test_a_chunk_that_inflates_past_a_batch_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="inflates past"):
        decode_records(deflated(b"\x0a" * (2 * MAX_BATCH_BYTES)))


async def test_queries_offer_deflated_record_batches() -> None:
    sent: list[bytes] = []

    class Producer:
        async def send_and_wait(self, topic: str, value: bytes, **_: object) -> None:
            sent.append(value)

    bus = ServiceBus(KafkaSettings(bootstrap="127.0.0.1:1"), Topics("t"), Producer(), Metrics())  # type: ignore[arg-type]
    await bus.send_query(request_id=REQUEST, system="policy", attempt=1, result_public_key=b"k" * 32, key_id="k",
                         sealed_query=b"q", deadline=datetime.now(UTC))  # fmt: skip
    (command,) = [bus_pb2.Command.FromString(value).query for value in sent]
    assert list(command.record_encodings) == [bus_pb2.RECORD_ENCODING_DEFLATE]
