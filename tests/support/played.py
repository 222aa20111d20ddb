"""A system's connector played by the test, over the real broker: heartbeats, queries read, results sent.

    async with PlayedConnector.running(settings, "policy") as played:   # heartbeats every second
        query = await played.query(request_id)                          # the QueryCommand the service sent
        await played.send(played.chunk(query, 0, records))              # sealed to the request's key
        await played.send(played.completion(query, chunks=1))

The heartbeat declares the real connector's datasets and identifier kinds (from its entry point),
under a key pair of the test's own.
"""

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from connectors.runtime import load_connectors
from connectors.runtime.messages import declaration_to_proto, kind_to_proto
from dsar.bus.v1 import bus_pb2
from dsar_common import kafka
from dsar_common.sealing import KeyPair, chunk_binding, seal
from dsar_common.settings import Settings
from dsar_common.topics import Topics

HEARTBEAT_SECONDS = 1


def fields_json(row: dict[str, Any]) -> bytes:
    """A row as a record's JSON fields: dates and times in ISO 8601, UUIDs and decimals as text."""

    def default(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        return str(value)

    return json.dumps(row, default=default).encode()


@dataclass
class PlayedConnector:
    """The test in the role of `system`'s connector."""

    settings: Settings
    system: str
    producer: AIOKafkaProducer
    keys: KeyPair = field(default_factory=KeyPair.generate)

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.topic_prefix)

    def heartbeat(self) -> bus_pb2.Heartbeat:
        connector = load_connectors([self.system])[0]
        beat = bus_pb2.Heartbeat(
            system=self.system,
            instance_id="played-by-the-test",
            connector_version="test",
            public_key=self.keys.public,
            key_id=self.keys.key_id,
            accepts=[kind_to_proto(k) for k in sorted(connector.accepted_kinds, key=lambda k: k.name)],
            discovers=[kind_to_proto(k) for k in sorted(connector.discovers, key=lambda k: k.name)],
            interval_seconds=HEARTBEAT_SECONDS,
            datasets=[declaration_to_proto(d) for d in connector.datasets],
            description=connector.description,
        )
        beat.sent_at.FromDatetime(dt.datetime.now(dt.UTC))
        return beat

    async def _beat(self) -> None:
        while True:
            await self.producer.send_and_wait(
                self.topics.heartbeats, self.heartbeat().SerializeToString(), key=self.system.encode()
            )
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def send(self, event: bus_pb2.ResultEvent, key: str | None = None) -> None:
        """Produce a result event to the result topic (keyed by its request, as connectors do)."""
        which = event.WhichOneof("event")
        request_id = key if key is not None else getattr(event, which or "chunk").request_id
        await self.producer.send_and_wait(self.topics.results, event.SerializeToString(), key=request_id.encode())

    async def produce(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await self.producer.send_and_wait(topic, value, key=key)

    async def query(self, request_id: str, attempt: int = 1, within: float = 30) -> bus_pb2.QueryCommand:
        """The QueryCommand the service sent for (request, this system, attempt), read from the start."""
        consumer = AIOKafkaConsumer(
            self.topics.commands(self.system),
            bootstrap_servers=self.settings.kafka.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            deadline = time.monotonic() + within
            while time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        command = bus_pb2.Command.FromString(record.value)
                        query = command.query
                        if command.HasField("query") and query.request_id == request_id and query.attempt == attempt:
                            return query
            raise TimeoutError(f"no query for attempt {attempt} of {request_id} within {within:.0f}s")
        finally:
            await consumer.stop()

    def chunk(
        self, query: bus_pb2.QueryCommand, sequence: int, records: Iterable[bus_pb2.Record]
    ) -> bus_pb2.ResultEvent:
        """A ResultChunk of `records`, sealed to the request's key and bound to its place."""
        batch = bus_pb2.RecordBatch(records=list(records))
        binding = chunk_binding(query.request_id, self.system, query.attempt, sequence)
        return bus_pb2.ResultEvent(
            chunk=bus_pb2.ResultChunk(
                request_id=query.request_id,
                system=self.system,
                attempt=query.attempt,
                sequence=sequence,
                record_count=len(batch.records),
                sealed_records=seal(batch.SerializeToString(), query.result_public_key, binding),
            )
        )

    def completion(self, query: bus_pb2.QueryCommand, chunks: int, records: int) -> bus_pb2.ResultEvent:
        return bus_pb2.ResultEvent(
            completion=bus_pb2.Completion(
                request_id=query.request_id,
                system=self.system,
                attempt=query.attempt,
                status=bus_pb2.COMPLETION_STATUS_COMPLETED,
                chunk_count=chunks,
                record_count=records,
            )
        )

    def progress(self, query: bus_pb2.QueryCommand, records: int) -> bus_pb2.ResultEvent:
        return bus_pb2.ResultEvent(
            progress=bus_pb2.Progress(
                request_id=query.request_id, system=self.system, attempt=query.attempt, records=records
            )
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, settings: Settings, system: str, keys: KeyPair | None = None
    ) -> AsyncIterator["PlayedConnector"]:
        """Heartbeats every second from the start, until the end of the `async with`.

        `keys` defaults to a fresh pair; the connectors' own (`settings.connector_key`) makes the
        service seal queries that the real connector can open.
        """
        topics = Topics(settings.topic_prefix)
        await kafka.ensure_topics(settings.kafka, [topics.commands(system), topics.results, topics.heartbeats])
        producer = kafka.producer(settings.kafka)
        await producer.start()
        played = cls(settings, system, producer, keys or KeyPair.generate())
        beating = asyncio.create_task(played._beat())
        try:
            yield played
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            await producer.stop()
