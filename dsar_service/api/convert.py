"""Protobuf ⇄ domain values, for the API. The only place that knows both."""

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from dsar.v1 import dsar_pb2
from dsar_service.model import (
    ArchiveView,
    Kind,
    RequestState,
    RequestView,
    SystemInfo,
    SystemProgress,
    SystemState,
)
from dsar_service.requests.subject import RawSubmission

_KINDS = {dsar_pb2.REQUEST_KIND_ACCESS: Kind.ACCESS, dsar_pb2.REQUEST_KIND_PORTABILITY: Kind.PORTABILITY}
_KINDS_OUT = {kind: value for value, kind in _KINDS.items()}
_REQUEST_STATES = {
    RequestState.COLLECTING: dsar_pb2.REQUEST_STATE_COLLECTING,
    RequestState.ASSEMBLING: dsar_pb2.REQUEST_STATE_ASSEMBLING,
    RequestState.READY: dsar_pb2.REQUEST_STATE_READY,
    RequestState.FAILED: dsar_pb2.REQUEST_STATE_FAILED,
    RequestState.CANCELLED: dsar_pb2.REQUEST_STATE_CANCELLED,
}
_REQUEST_STATES_IN = {value: state for state, value in _REQUEST_STATES.items()}
_SYSTEM_STATES = {
    SystemState.PENDING: dsar_pb2.SYSTEM_STATE_PENDING,
    SystemState.DISPATCHED: dsar_pb2.SYSTEM_STATE_DISPATCHED,
    SystemState.RUNNING: dsar_pb2.SYSTEM_STATE_RUNNING,
    SystemState.COMPLETED: dsar_pb2.SYSTEM_STATE_COMPLETED,
    SystemState.FAILED: dsar_pb2.SYSTEM_STATE_FAILED,
    SystemState.TIMED_OUT: dsar_pb2.SYSTEM_STATE_TIMED_OUT,
    SystemState.CANCELLED: dsar_pb2.SYSTEM_STATE_CANCELLED,
    SystemState.SKIPPED: dsar_pb2.SYSTEM_STATE_SKIPPED,
}


def submission_from_proto(message: dsar_pb2.SubmitRequest) -> RawSubmission:
    subject = message.subject
    return RawSubmission(
        kind=_KINDS.get(message.kind),
        emails=list(subject.emails),
        phones=list(subject.phones),
        nir=subject.nir,
        person_ids=list(subject.person_ids),
        policy_numbers=list(subject.policy_numbers),
        visitor_ids=list(subject.visitor_ids),
        candidate_ids=list(subject.candidate_ids),
        first_name=subject.name.first_name,
        last_name=subject.name.last_name,
        birth_date=subject.birth_date,
        recipient=message.recipient,
        request_key=message.request_key,
        systems=list(message.systems),
    )


def states_from_proto(values: list[int]) -> list[RequestState]:
    return [_REQUEST_STATES_IN[v] for v in values if v in _REQUEST_STATES_IN]  # type: ignore[index]


def timestamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment.astimezone(UTC))
    return stamp


def from_timestamp(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def archive_to_proto(archive: ArchiveView) -> dsar_pb2.ArchiveInfo:
    return dsar_pb2.ArchiveInfo(
        size_bytes=archive.size_bytes,
        sha256=archive.sha256,
        created_at=timestamp(archive.created_at),
        version=archive.version,
        expires_at=timestamp(archive.expires_at),
    )


def system_to_proto(progress: SystemProgress) -> dsar_pb2.SystemStatus:
    return dsar_pb2.SystemStatus(
        system=progress.system,
        state=_SYSTEM_STATES[progress.state],
        attempts=progress.attempts,
        records=progress.records,
        bytes=progress.bytes,
        started_at=timestamp(progress.started_at),
        ended_at=timestamp(progress.ended_at),
        error=progress.error,
    )


def request_to_proto(view: RequestView) -> dsar_pb2.DataRequest:
    return dsar_pb2.DataRequest(
        request_id=view.request_id,
        request_key=view.request_key,
        kind=_KINDS_OUT[view.kind],
        state=_REQUEST_STATES[view.state],
        received_at=timestamp(view.received_at),
        due_at=timestamp(view.due_at),
        extension_reason=view.extension_reason,
        systems=[system_to_proto(s) for s in view.systems],
        archive=archive_to_proto(view.archive) if view.archive else None,
        updated_at=timestamp(view.updated_at),
        error=view.error,
        recipient=view.recipient,
    )


def system_info_to_proto(info: SystemInfo) -> dsar_pb2.SystemInfo:
    return dsar_pb2.SystemInfo(
        name=info.name,
        last_heartbeat=timestamp(info.last_heartbeat),
        instances=list(info.instances),
        connector_version=info.connector_version,
        alive=info.alive,
    )
