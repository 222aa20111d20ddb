"""Kafka, from the service's side: the only aiokafka importer of the service (through dsar_common.kafka)."""

from dsar_service.bus.codec import PayloadError, decode_discovered, decode_records, encode_query
from dsar_service.bus.events import (
    AttemptEnded,
    AttemptOutcome,
    ChunkReceived,
    HeartbeatReceived,
    ProgressReported,
    ResultEvent,
)
from dsar_service.bus.service_bus import ServiceBus

__all__ = [
    "AttemptEnded",
    "AttemptOutcome",
    "ChunkReceived",
    "HeartbeatReceived",
    "PayloadError",
    "ProgressReported",
    "ResultEvent",
    "ServiceBus",
    "decode_discovered",
    "decode_records",
    "encode_query",
]
