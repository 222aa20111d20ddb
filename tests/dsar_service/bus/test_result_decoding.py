"""What the service takes from the result topic: anything the database could not hold as it is
is refused at the boundary (and dead-lettered), rather than failing in the store on every delivery."""

import uuid

import pytest

from dsar.bus.v1 import bus_pb2
from dsar_service.bus.events import AttemptEnded, ChunkReceived
from dsar_service.bus.service_bus import _heartbeat, _result_event

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
