"""A Tansu broker of the test's own, which it can kill and restart empty on the same port.

The embedded stack's Tansu keeps topics in memory: killed and restarted, it comes back empty,
as a Kafka cluster that lost everything would. `all_messages` reads every message of every topic
from the beginning, raw (key, value and headers as bytes), for tests that search them.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from dsar_common.kafka import ensure_topics
from dsar_service.stack._net import LOOPBACK, free_port
from dsar_service.stack._readiness import kafka_answers
from dsar_service.stack._servers import tansu_argv
from tests.support.environment import empty_state_dir
from tests.support.local_servers import tansu_settings
from tests.support.processes import Child, start_child

READY_SECONDS = 30.0


@dataclass
class Broker:
    """Tansu on 127.0.0.1:`port` (memory storage); `restarts` counts the kills it came back from."""

    port: int
    folder: Path
    child: Child | None = None
    restarts: int = 0

    @property
    def bootstrap(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        """Start on this broker's port and return once it answers Kafka's metadata requests."""
        log = self.folder / f"tansu-{self.restarts}.log"
        self.child = await start_child("tansu", tansu_argv(self.port), {"RUST_LOG": "warn"}, log)
        deadline = time.monotonic() + READY_SECONDS
        while True:
            self.child.check()
            try:
                await kafka_answers(self.bootstrap)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: every topic, message and committed offset is gone with it."""
        if self.child is not None:
            await self.child.kill()

    async def restart(self, provision: Iterable[str] = ()) -> None:
        """Kill (if running) and start again, empty, on the same port; then create the topics in
        `provision` at once, as a platform that declares its topics (a Kafka operator) would."""
        await self.kill()
        self.restarts += 1
        await self.start()
        if provision:
            await ensure_topics(tansu_settings(self.bootstrap), provision)

    async def stop(self) -> None:
        if self.child is not None:
            await self.child.stop(grace_seconds=5)


@contextlib.asynccontextmanager
async def running_broker(folder: Path) -> AsyncIterator[Broker]:
    """A fresh broker on a free port for the body of the `async with`; stopped after."""
    broker = Broker(free_port(), empty_state_dir(folder))
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


@dataclass(frozen=True)
class RawMessage:
    """One message as it sits on the broker."""

    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    def as_bytes(self) -> bytes:
        """Everything the message carries, concatenated, for searching."""
        parts = [self.topic.encode(), self.key, self.value]
        for name, value in self.headers:
            parts += [name.encode(), value]
        return b"\n".join(parts)


async def all_messages(bootstrap: str, topics: list[str] | None = None) -> list[RawMessage]:
    """Every message of `topics` (default: every topic on the broker), read from the beginning.

    Reads without a consumer group (nothing is committed) up to each partition's end offset.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        names = sorted(topics if topics is not None else await consumer.topics())
        partitions = [
            TopicPartition(topic, p) for topic in names for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        messages: list[RawMessage] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        for tp in partitions:
            if ends[tp] == 0:
                consumer.pause(tp)
        deadline = time.monotonic() + 60
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read every message; partitions left: {sorted(map(str, remaining))}")
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for record in records:
                    messages.append(
                        RawMessage(
                            record.topic,
                            record.partition,
                            record.offset,
                            record.key or b"",
                            record.value or b"",
                            tuple((name, value or b"") for name, value in record.headers),
                        )
                    )
                if records and records[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
        return messages
    finally:
        await consumer.stop()
