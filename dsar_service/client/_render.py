"""Plain-text renderings of requests and systems for a terminal: one fact per line, no personal data.

A DataRequest never holds the subject's identifiers (see the API), so everything rendered here is
safe to print: ids, states, counts, sizes, dates and error words.
"""

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, timestamp_pb2

from dsar.v1 import dsar_pb2

# States after which a request changes no more (READY may still be rebuilt by RetrySystem).
FINAL_REQUEST_STATES = frozenset(
    {dsar_pb2.REQUEST_STATE_READY, dsar_pb2.REQUEST_STATE_FAILED, dsar_pb2.REQUEST_STATE_CANCELLED}
)
# Final states in which there is no archive to download.
UNSUCCESSFUL_REQUEST_STATES = frozenset({dsar_pb2.REQUEST_STATE_FAILED, dsar_pb2.REQUEST_STATE_CANCELLED})


def request_state_name(state: "dsar_pb2.RequestState.ValueType") -> str:
    """`COLLECTING` for REQUEST_STATE_COLLECTING, and so on."""
    return dsar_pb2.RequestState.Name(state).removeprefix("REQUEST_STATE_")


def system_state_name(state: "dsar_pb2.SystemState.ValueType") -> str:
    """`RUNNING` for SYSTEM_STATE_RUNNING, and so on."""
    return dsar_pb2.SystemState.Name(state).removeprefix("SYSTEM_STATE_")


def kind_name(kind: "dsar_pb2.RequestKind.ValueType") -> str:
    """`access` or `portability`."""
    return dsar_pb2.RequestKind.Name(kind).removeprefix("REQUEST_KIND_").lower()


def parse_request_state(name: str) -> "dsar_pb2.RequestState.ValueType":
    """The RequestState named `ready`, `READY` or `REQUEST_STATE_READY`; ValueError if there is none."""
    full = name.upper() if name.upper().startswith("REQUEST_STATE_") else f"REQUEST_STATE_{name.upper()}"
    if full == "REQUEST_STATE_UNSPECIFIED":
        raise ValueError(name)
    return dsar_pb2.RequestState.Value(full)


def human_bytes(count: int) -> str:
    """`512 B`, `1.5 KiB`, `12.0 MiB`…"""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def timestamp_text(stamp: timestamp_pb2.Timestamp) -> str:
    """An ISO 8601 UTC time to the second, or `-` when the timestamp is unset."""
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return datetime.fromtimestamp(stamp.seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def system_line(status: dsar_pb2.SystemStatus, name_width: int = 12) -> str:
    """One system's progress: name, state, records, bytes, attempts, and the error if any."""
    line = (
        f"{status.system:<{name_width}} {system_state_name(status.state):<10} "
        f"{status.records:>9,} records {human_bytes(status.bytes):>10}  attempt {status.attempts}"
    )
    return f"{line}  ({status.error})" if status.error else line


def request_line(request: dsar_pb2.DataRequest) -> str:
    """The request in one line: id, state, kind, how many systems have ended, due date."""
    ended = sum(1 for s in request.systems if s.state >= dsar_pb2.SYSTEM_STATE_COMPLETED)
    line = (
        f"{request.request_id}  {request_state_name(request.state):<10} {kind_name(request.kind):<11} "
        f"systems {ended}/{len(request.systems)}  due {timestamp_text(request.due_at)}"
    )
    return f"{line}  ({request.error})" if request.error else line


def system_lines(request: dsar_pb2.DataRequest) -> list[str]:
    """One line per system, names aligned."""
    width = max((len(s.system) for s in request.systems), default=0)
    return [system_line(s, max(width, 6)) for s in request.systems]


def request_details(request: dsar_pb2.DataRequest) -> list[str]:
    """Everything `dsar status` shows: the request's facts, its archive, then its systems."""
    lines = [
        f"request    {request.request_id}",
        f"key        {request.request_key}",
        f"kind       {kind_name(request.kind)}",
        f"state      {request_state_name(request.state)}",
        f"received   {timestamp_text(request.received_at)}",
        f"due        {timestamp_text(request.due_at)}",
        f"updated    {timestamp_text(request.updated_at)}",
        f"recipient  {request.recipient}",
    ]
    if request.extension_reason:
        lines.append(f"extended   {request.extension_reason}")
    if request.error:
        lines.append(f"error      {request.error}")
    if request.HasField("archive"):
        archive = request.archive
        lines.append(
            f"archive    v{archive.version}, {human_bytes(archive.size_bytes)}, sha256 {archive.sha256}, "
            f"expires {timestamp_text(archive.expires_at)}"
        )
    lines.append("systems")
    lines.extend(f"  {line}" for line in system_lines(request))
    return lines


def system_info_line(info: dsar_pb2.SystemInfo, name_width: int = 12) -> str:
    """A connected system: name, alive or not, last heartbeat, instances, connector version."""
    alive = "alive" if info.alive else "silent"
    return (
        f"{info.name:<{name_width}} {alive:<6}  last heartbeat {timestamp_text(info.last_heartbeat)}  "
        f"instances {len(info.instances)}  version {info.connector_version or '-'}"
    )


def to_json(message: Any) -> dict[str, Any]:
    """A protobuf message as a JSON-ready dict, with the proto field names."""
    result: dict[str, Any] = json_format.MessageToDict(message, preserving_proto_field_name=True)
    return result
