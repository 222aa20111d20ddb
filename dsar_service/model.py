"""The service's vocabulary: request and system states, and the views the API returns.

These dataclasses cross the layers; protobuf stays in api/ and bus/, asyncpg rows in store/.
"""

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from connectors.sdk.identifiers import Identifier


class Kind(Enum):
    ACCESS = "access"
    PORTABILITY = "portability"


class RequestState(Enum):
    """See protos/dsar/v1/dsar.proto for the lifecycle."""

    COLLECTING = "collecting"
    ASSEMBLING = "assembling"
    READY = "ready"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in (RequestState.READY, RequestState.FAILED, RequestState.CANCELLED)


class SystemState(Enum):
    """See protos/dsar/v1/dsar.proto for the lifecycle."""

    PENDING = "pending"
    DISPATCHED = "dispatched"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def ended(self) -> bool:
        return self in ENDED_SYSTEM_STATES


ENDED_SYSTEM_STATES = frozenset(
    {SystemState.COMPLETED, SystemState.FAILED, SystemState.TIMED_OUT, SystemState.CANCELLED, SystemState.SKIPPED}
)


@dataclass(frozen=True)
class Submission:
    """A validated, normalised SubmitRequest."""

    kind: Kind
    identifiers: tuple[Identifier, ...]
    recipient: str
    request_key: str
    systems: tuple[str, ...]


@dataclass(frozen=True)
class SystemProgress:
    system: str
    state: SystemState
    attempts: int
    records: int
    bytes: int
    started_at: datetime | None
    ended_at: datetime | None
    error: str


@dataclass(frozen=True)
class ArchiveView:
    size_bytes: int
    sha256: str
    created_at: datetime
    version: int
    expires_at: datetime | None


@dataclass(frozen=True)
class RequestView:
    """A request as callers see it: no identifiers, no keys."""

    request_id: str
    request_key: str
    kind: Kind
    state: RequestState
    received_at: datetime
    due_at: datetime
    extension_reason: str
    recipient: str
    updated_at: datetime
    error: str
    systems: tuple[SystemProgress, ...] = ()
    archive: ArchiveView | None = None


@dataclass(frozen=True)
class FieldInfo:
    """A field as its connector declares it: provenance (provided, observed, derived) and activity."""

    name: str
    provenance: str
    activity: str
    description: str = ""


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset as its connector declares it, for the archive's data dictionary."""

    name: str
    activity: str
    description: str
    key_fields: tuple[str, ...]
    fields: tuple[FieldInfo, ...]


@dataclass(frozen=True)
class SystemInfo:
    """A source system whose connector has announced itself."""

    name: str
    last_heartbeat: datetime
    instances: tuple[str, ...]
    connector_version: str
    alive: bool
    public_key: bytes = field(repr=False, default=b"")
    key_id: str = ""
    discovers: tuple[str, ...] = ()
    accepts: tuple[str, ...] = ()
    datasets: tuple[DatasetInfo, ...] = ()
    description: str = ""
