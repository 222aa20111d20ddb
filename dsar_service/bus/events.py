"""What the service hears from connectors, as plain values (protobuf stays inside bus/)."""

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from dsar_service.model import DatasetInfo


@dataclass(frozen=True)
class ChunkReceived:
    request_id: str
    system: str
    attempt: int
    sequence: int
    record_count: int
    sealed_records: bytes


@dataclass(frozen=True)
class ProgressReported:
    request_id: str
    system: str
    attempt: int
    records: int
    bytes: int


class AttemptOutcome(Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class AttemptEnded:
    request_id: str
    system: str
    attempt: int
    outcome: AttemptOutcome
    chunk_count: int
    record_count: int
    byte_count: int
    error: str
    retryable: bool
    sealed_discovered: bytes


@dataclass(frozen=True)
class HeartbeatReceived:
    system: str
    instance_id: str
    connector_version: str
    public_key: bytes
    key_id: str
    sent_at: datetime
    accepts: tuple[str, ...]
    discovers: tuple[str, ...]
    interval_seconds: int
    datasets: tuple[DatasetInfo, ...] = ()
    description: str = ""


ResultEvent = ChunkReceived | ProgressReported | AttemptEnded
