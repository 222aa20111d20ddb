"""The service's side of Kafka: commands out, results and heartbeats in.

Results are consumed in the service's consumer group and committed only after the handler has
stored them, so a crash re-delivers rather than loses; the store de-duplicates. A message that
cannot be decoded goes to the dead-letter topic, as it came, and the consumer keeps going.

A commit is bounded by `COMMIT_SECONDS`; one that fails only means its results come again (the
store de-duplicates them). A broker that restarted without its data answers commits with
UnknownTopicOrPartition (retried forever by aiokafka, hence the bound) or CommitFailed: then the
bus re-creates its topics and subscribes the same consumer again, in place, as the connector
runtime does. A new consumer would wait a whole session for its predecessor's member to expire.
"""

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError
from opentelemetry import context as otel_context

from dsar.bus.v1 import bus_pb2
from dsar_common import kafka
from dsar_common.kafka import BusError, is_missing_topic
from dsar_common.observability import context_from_headers, trace_headers
from dsar_common.settings import KafkaSettings
from dsar_common.topics import Topics
from dsar_service.bus.events import (
    AttemptEnded,
    AttemptOutcome,
    ChunkReceived,
    HeartbeatReceived,
    ProgressReported,
    ResultEvent,
)
from dsar_service.metrics import Metrics
from dsar_service.model import DatasetInfo, FieldInfo

log = logging.getLogger(__name__)

_OUTCOMES = {
    bus_pb2.COMPLETION_STATUS_COMPLETED: AttemptOutcome.COMPLETED,
    bus_pb2.COMPLETION_STATUS_FAILED: AttemptOutcome.FAILED,
    bus_pb2.COMPLETION_STATUS_CANCELLED: AttemptOutcome.CANCELLED,
}
COMMIT_SECONDS = 5.0  # a commit taking longer counts as failed: its results come again
RECOVER_SECONDS = 5.0  # at least this long between two re-creations of the topics
_KINDS = {"access": bus_pb2.REQUEST_KIND_ACCESS, "portability": bus_pb2.REQUEST_KIND_PORTABILITY}


class ServiceBus:
    """Sends commands; turns result and heartbeat messages into events for a handler."""

    def __init__(self, settings: KafkaSettings, topics: Topics, producer: AIOKafkaProducer, metrics: Metrics) -> None:
        self._settings = settings
        self._topics = topics
        self._producer = producer
        self._metrics = metrics
        self._topic_check = kafka.TopicCheck(
            self._ensure_topics, interval=RECOVER_SECONDS, timeout=2 * COMMIT_SECONDS, name="service bus"
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, settings: KafkaSettings, topics: Topics, metrics: Metrics) -> AsyncIterator["ServiceBus"]:
        producer = kafka.producer(settings)
        try:
            await producer.start()
        except KafkaError as error:
            raise BusError(f"Kafka cannot be reached: {type(error).__name__}") from error
        try:
            bus = cls(settings, topics, producer, metrics)
            await bus._ensure_topics()
            yield bus
        finally:
            await producer.stop()

    async def ensure_command_topic(self, system: str) -> None:
        await kafka.ensure_topics(self._settings, [self._topics.commands(system)])

    async def send_query(
        self,
        *,
        request_id: str,
        system: str,
        attempt: int,
        result_public_key: bytes,
        key_id: str,
        sealed_query: bytes,
        deadline: datetime,
    ) -> None:
        command = bus_pb2.Command(
            query=bus_pb2.QueryCommand(
                request_id=request_id,
                system=system,
                attempt=attempt,
                result_public_key=result_public_key,
                key_id=key_id,
                sealed_query=sealed_query,
                record_encodings=[bus_pb2.RECORD_ENCODING_DEFLATE],
            )
        )
        command.query.deadline.FromDatetime(deadline)
        await self._send(self._topics.commands(system), request_id, command.SerializeToString())

    async def send_cancel(self, request_id: str, system: str) -> None:
        command = bus_pb2.Command(cancel=bus_pb2.CancelCommand(request_id=request_id, system=system))
        await self._send(self._topics.commands(system), request_id, command.SerializeToString())

    async def _send(self, topic: str, key: str, value: bytes) -> None:
        """Send, with the current trace context in the headers."""
        try:
            await self._producer.send_and_wait(topic, value, key=key.encode(), headers=trace_headers())
        except KafkaError as error:
            await kafka.refresh_metadata(self._producer)  # for the next send, to a topic maybe re-created
            raise BusError(f"could not send to {topic}: {type(error).__name__}") from error

    async def consume_results(
        self, handle: Callable[[ResultEvent], Awaitable[None]], settle: Callable[[], Awaitable[None]]
    ) -> None:
        """Feed every result event to `handle`, then `settle` after each batch, committing after it
        returns. Runs until cancelled."""
        consumer = kafka.consumer(self._settings, self._topics.results, group_id=self._topics.service_group)
        await self._consume(consumer, lambda record: self._handle_result(record, handle), commit=True, settle=settle)

    async def consume_heartbeats(self, handle: Callable[[HeartbeatReceived], Awaitable[None]]) -> None:
        """Feed every heartbeat to `handle`. Each replica reads them all (no group). Runs until cancelled."""
        consumer = kafka.consumer(self._settings, self._topics.heartbeats, group_id=None)

        async def on_record(record: ConsumerRecord) -> None:
            try:
                beat = _heartbeat(bus_pb2.Heartbeat.FromString(record.value))
            except (DecodeError, ValueError) as error:
                await self._dead_letter(record, f"unusable heartbeat: {error}")
                return
            await handle(beat)

        await self._consume(consumer, on_record, commit=False)

    async def _handle_result(self, record: ConsumerRecord, handle: Callable[[ResultEvent], Awaitable[None]]) -> None:
        try:
            event = _result_event(bus_pb2.ResultEvent.FromString(record.value))
        except (DecodeError, ValueError) as error:
            await self._dead_letter(record, f"undecodable result event: {error}")
            return
        token = otel_context.attach(context_from_headers(record.headers))
        try:
            await handle(event)
        finally:
            otel_context.detach(token)

    async def _consume(
        self,
        consumer: AIOKafkaConsumer,
        on_record: Callable[[ConsumerRecord], Awaitable[None]],
        *,
        commit: bool,
        settle: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Poll and hand records over, `settle` after each batch; commit after it when in a group.
        An error from `on_record` or `settle` stops the loop uncommitted, so the caller's restart
        re-delivers the batch."""
        try:
            await consumer.start()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=200)
                await _each_key_in_order(batches.values(), on_record)
                if batches and settle is not None:
                    await settle()
                if batches and commit:
                    await self._commit(consumer)
                await self._report_lag(consumer)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(consumer.stop())

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what was handled. A failed commit only means its results come again; one that
        hangs or finds its topic gone means the broker lost its data: recover."""
        try:
            # aiokafka retries a retriable error (UnknownTopicOrPartition among them) forever
            await asyncio.wait_for(consumer.commit(), COMMIT_SECONDS)
        except Exception as error:  # a rebalance (aiokafka rejoins by itself), or a broker that lost its data
            log.warning("commit failed (%s)", type(error).__name__)
            await self._recover(consumer, resubscribe=isinstance(error, TimeoutError) or is_missing_topic(error))

    async def _recover(self, consumer: AIOKafkaConsumer, *, resubscribe: bool) -> None:
        """Re-create the bus's topics if they are gone; then subscribe the consumer again, in place,
        when told to or when a topic was missing, else only refresh its metadata."""
        created = await self._topic_check.check()
        if created is None:
            return
        if resubscribe or created:
            log.info("subscribed again to %s", ", ".join(kafka.resubscribe(consumer)))
        else:
            await kafka.refresh_metadata(consumer)
        await kafka.refresh_metadata(self._producer)

    async def _ensure_topics(self) -> list[str]:
        return await kafka.ensure_topics(self._settings, self._topics.every())

    async def _report_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Messages behind the end of each topic's assigned partitions, for the lag gauge."""
        lag: dict[str, int] = {}
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            if highwater is not None:
                behind = highwater - await consumer.position(partition)
                lag[partition.topic] = lag.get(partition.topic, 0) + max(0, behind)
        for topic, value in lag.items():
            self._metrics.consumer_lag.labels(topic).set(value)

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        log.warning("dead-lettered a message from %s: %s", record.topic, reason)
        self._metrics.dead_letters.labels(record.topic).inc()
        headers = [
            ("dsar-reason", reason.encode()),
            ("dsar-source-topic", record.topic.encode()),
            ("dsar-source-offset", f"{record.partition}:{record.offset}".encode()),
        ]
        await self._producer.send_and_wait(self._topics.dead_letters, record.value, key=record.key, headers=headers)


async def _each_key_in_order(
    batches: Iterable[list[ConsumerRecord]], on_record: Callable[[ConsumerRecord], Awaitable[None]]
) -> None:
    """Hand records over in their order for each key (a request), and the keys concurrently.

    One request's events stay in order; a slow request (a database round trip, an assembly being
    scheduled) no longer holds up the others in the batch.
    """
    by_key: dict[bytes | None, list[ConsumerRecord]] = {}
    for records in batches:
        for record in records:
            by_key.setdefault(record.key, []).append(record)

    async def in_order(records: list[ConsumerRecord]) -> None:
        for record in records:
            await on_record(record)

    await asyncio.gather(*(in_order(records) for records in by_key.values()))


def kind_to_bus(kind: str) -> int:
    return _KINDS[kind]


INT4 = 2**31 - 1
INT8 = 2**63 - 1
_SYSTEM = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _place(request_id: str, system: str, attempt: int) -> tuple[str, str, int]:
    """A result's request, system and attempt, refused unless the database can hold them as they are.

    A message that passes protobuf decoding but carries values out of range would otherwise fail
    in the database on every delivery and block its partition: it goes to the dead letters instead.
    """
    try:
        uuid.UUID(request_id)
    except ValueError:
        raise ValueError("request_id is not a UUID") from None
    if not _SYSTEM.fullmatch(system):
        raise ValueError("system is not a system name")
    if not 1 <= attempt <= INT4:
        raise ValueError("attempt is out of range")
    return request_id, system, attempt


def _count(value: int, limit: int = INT8) -> int:
    if not 0 <= value <= limit:
        raise ValueError("a count is out of range")
    return value


def _text(value: str, limit: int) -> str:
    """Text the database accepts (no NUL), at most `limit` characters."""
    return value.replace("\x00", "")[:limit]


def _result_event(message: bus_pb2.ResultEvent) -> ResultEvent:
    which = message.WhichOneof("event")
    if which == "chunk":
        c = message.chunk
        return ChunkReceived(
            *_place(c.request_id, c.system, c.attempt),
            _count(c.sequence),
            _count(c.record_count, INT4),
            c.sealed_records,
        )
    if which == "progress":
        p = message.progress
        return ProgressReported(*_place(p.request_id, p.system, p.attempt), _count(p.records), _count(p.bytes))
    if which == "completion":
        d = message.completion
        if d.status not in _OUTCOMES:
            raise ValueError("completion without a status")
        return AttemptEnded(
            *_place(d.request_id, d.system, d.attempt),
            _OUTCOMES[d.status],
            _count(d.chunk_count),
            _count(d.record_count),
            _count(d.byte_count),
            _text(d.error, 2000),
            d.retryable,
            d.sealed_discovered,
        )
    raise ValueError("empty result event")


def _heartbeat(beat: bus_pb2.Heartbeat) -> HeartbeatReceived:
    sent_at = beat.sent_at.ToDatetime(tzinfo=UTC) if beat.HasField("sent_at") else datetime.now(UTC)
    if not _SYSTEM.fullmatch(beat.system):
        raise ValueError("system is not a system name")
    if len(beat.public_key) != 32:
        raise ValueError("public_key is not an X25519 key")
    if not 1 <= beat.interval_seconds <= 3600:
        raise ValueError("interval_seconds is out of range")
    return HeartbeatReceived(
        system=beat.system,
        instance_id=_text(beat.instance_id, 128),
        connector_version=_text(beat.connector_version, 64),
        public_key=beat.public_key,
        key_id=_text(beat.key_id, 64),
        sent_at=sent_at,
        accepts=tuple(bus_pb2.IdentifierKind.Name(k).removeprefix("IDENTIFIER_KIND_").lower() for k in beat.accepts),
        discovers=tuple(
            bus_pb2.IdentifierKind.Name(k).removeprefix("IDENTIFIER_KIND_").lower() for k in beat.discovers
        ),
        interval_seconds=beat.interval_seconds,
        datasets=tuple(
            DatasetInfo(
                name=_text(d.name, 64),
                activity=_text(d.activity, 64),
                description=_text(d.description, 2000),
                key_fields=tuple(d.key_fields),
                fields=tuple(
                    FieldInfo(
                        _text(f.name, 64),
                        bus_pb2.Provenance.Name(f.provenance).removeprefix("PROVENANCE_").lower(),
                        _text(f.activity or d.activity, 64),
                        _text(f.description, 2000),
                    )
                    for f in d.fields
                ),
            )
            for d in beat.datasets
        ),
        description=_text(beat.description, 2000),
    )
