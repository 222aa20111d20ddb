"""The one error mapping: codes, BadRequest details, RetryInfo, and nothing leaked from bugs."""

from google.rpc import code_pb2, error_details_pb2

from dsar_common.kafka import BusError
from dsar_service.api.errors import status_for
from dsar_service.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)


def test_invalid_argument_lists_each_field() -> None:
    status = status_for(InvalidArgument([FieldViolation("subject.nir", "bad key"), FieldViolation("kind", "x")]))
    assert status.code == code_pb2.INVALID_ARGUMENT
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    assert [v.field for v in detail.field_violations] == ["subject.nir", "kind"]


def test_codes() -> None:
    assert status_for(NotFound("x")).code == code_pb2.NOT_FOUND
    assert status_for(AlreadyExists("x")).code == code_pb2.ALREADY_EXISTS
    assert status_for(FailedPrecondition("x")).code == code_pb2.FAILED_PRECONDITION
    assert status_for(BusError("x")).code == code_pb2.UNAVAILABLE


def test_rate_limits_say_when_to_come_back() -> None:
    status = status_for(ResourceExhausted("slow down", retry_after_seconds=2.5))
    info = error_details_pb2.RetryInfo()
    assert status.code == code_pb2.RESOURCE_EXHAUSTED and status.details[0].Unpack(info)
    assert info.retry_delay.ToNanoseconds() == 2_500_000_000


def test_an_unexpected_error_reveals_nothing() -> None:
    status = status_for(KeyError("jean.dupont@example.fr"))
    assert status.code == code_pb2.INTERNAL
    assert status.message == "internal error" and not status.details
