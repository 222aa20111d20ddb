"""The loop that runs one connector: commands in, attempts run concurrently, offsets committed after.

    poll a batch → for each message: dead-letter it, cancel a request, or start an attempt task
                 → commit, per partition, up to the lowest command still running (at most once
                   per `commit_every_seconds` while commands keep coming; at once when idle)
    every heartbeat_seconds: announce the system's public key and what it accepts

At most `concurrency` attempts search at once; a few more commands wait their turn, and polling
pauses beyond that. A CancelCommand stops the request's running attempts promptly: each sends a
Completion(CANCELLED). On stop, no new command is taken; running attempts get `grace_seconds`
to finish, the finished ones are committed, and the rest run again after a restart.

When a send to Kafka fails (a broker away or restarted), the attempt runs again from the start
after a pause (backing off up to `resend_seconds`) with fresh metadata, as it would in a restarted
process: its command stays uncommitted meanwhile, and the service keeps the first copy of each
chunk it receives. The worker itself keeps going.

Each commit is a round trip to the group coordinator: committing after every finished command
would cost one per command. So while commands keep coming, the loop commits at most once per
`commit_every_seconds`, and at once when a poll comes back empty or the worker stops. It still
commits only below the lowest unfinished command (at least once holds): the spacing only widens
what a crash or a rebalance runs again, by the commands finished since the last commit.

A commit is bounded by `commit_seconds`: one that times out or fails only means the commands
run again (at least once). A broker that restarted without its data answers commits with
UnknownTopicOrPartition (which aiokafka retries forever, hence the bound) and heartbeats with
errors: then the worker re-creates its missing topics, subscribes again (fresh metadata, a new
join) and forgets the offsets of the lost partitions. A failed heartbeat only checks the topics;
the worker subscribes again only when one was missing or a commit timed out.
"""

import asyncio
import datetime as dt
import itertools
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context

from connectors.runtime.attempt import Attempt, Producer
from connectors.runtime.chunks import MAX_CHUNK_BYTES
from connectors.runtime.messages import (
    InvalidCommand,
    QueryOrder,
    declaration_to_proto,
    decode_command,
    kind_to_proto,
    open_query,
)
from connectors.runtime.offsets import OffsetTracker
from connectors.runtime.retry import RetryPolicy
from connectors.runtime.sources import Source
from connectors.sdk import Connector
from dsar.bus.v1 import bus_pb2
from dsar_common.kafka import TopicCheck, is_missing_topic, refresh_metadata, resubscribe
from dsar_common.observability import context_from_headers
from dsar_common.sealing import KeyPair
from dsar_common.topics import Topics

log = logging.getLogger("connectors.runtime")


def _instance_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


@dataclass(frozen=True)
class RuntimeOptions:
    """How the runtime works; the defaults suit production."""

    concurrency: int = 4  # attempts searching at once, per connector
    grace_seconds: float = 30.0  # how long running attempts may finish after a stop
    progress_seconds: float = 1.0  # how often a running attempt reports Progress
    first_progress_seconds: float = 0.25  # a search that ends sooner sends no Progress at all
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    chunk_limit: int = MAX_CHUNK_BYTES
    poll_seconds: float = 0.2
    commit_seconds: float = 5.0  # a commit taking longer counts as failed (the commands run again)
    commit_every_seconds: float = 0.1  # at most one commit per this long while commands keep coming
    recover_seconds: float = 5.0  # at least this long between two re-creations of the topics
    resend_seconds: float = 2.0  # at most this long before running again an attempt whose send failed
    instance_id: str = field(default_factory=_instance_id)
    version: str = "0.1.0"


@dataclass(eq=False)
class _Running:
    attempt: Attempt
    task: "asyncio.Task[None] | None" = None
    cancel_requested: bool = False
    completing: bool = False


class ConnectorWorker:
    """Consumes one system's command topic and runs its attempts."""

    def __init__(
        self,
        connector: Connector,
        *,
        consumer: Any,
        producer: Producer,
        source: Source,
        keys: KeyPair,
        topics: Topics,
        options: RuntimeOptions,
        heartbeat_seconds: float,
        ensure_topics: Callable[[], Awaitable[list[str]]] | None = None,
    ) -> None:
        """`ensure_topics` re-creates the worker's topics (command, results, heartbeats, dead
        letters) when the broker says one is missing; without it, the worker only resubscribes."""
        self.connector = connector
        self._consumer = consumer
        self._producer = producer
        self._source = source
        self._keys = keys
        self._topics = topics
        self._options = options
        self._heartbeat_seconds = heartbeat_seconds
        self._slots = asyncio.Semaphore(options.concurrency)
        self._max_waiting = options.concurrency * 4
        self._offsets: OffsetTracker[Any] = OffsetTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: dict[str, list[_Running]] = {}
        self._failure: BaseException | None = None
        self._topic_check = TopicCheck(
            ensure_topics,
            interval=options.recover_seconds,
            timeout=2 * options.commit_seconds,
            name=connector.name,
        )
        self._check_topics = False  # set by a failed heartbeat, handled by the poll loop
        self._commit_after = float("-inf")  # loop time before which the poll loop does not commit

    @property
    def system(self) -> str:
        return self.connector.name

    async def run(self, stop: asyncio.Event) -> None:
        """Poll and run commands until `stop` is set, then drain and commit."""
        heartbeats = asyncio.create_task(self._heartbeats())
        try:
            while not stop.is_set():
                self._raise_failure()
                idle = False
                if len(self._tasks) >= self._max_waiting:
                    await asyncio.wait(
                        self._tasks, timeout=self._options.poll_seconds, return_when=asyncio.FIRST_COMPLETED
                    )
                else:
                    batch = await self._consumer.getmany(
                        timeout_ms=int(self._options.poll_seconds * 1000), max_records=self._max_waiting
                    )
                    idle = not batch
                    for partition, messages in batch.items():
                        for message in messages:
                            await self._dispatch(partition, message)
                await self._commit(now=idle)
                if self._check_topics:
                    self._check_topics = False
                    await self._recover(resubscribe=False)
            await self._drain()
            self._raise_failure()
        finally:
            heartbeats.cancel()
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(heartbeats, *self._tasks, return_exceptions=True)

    async def _drain(self) -> None:
        if self._tasks:
            log.info("%s: stopping, %d attempt(s) still running", self.system, len(self._tasks))
            await asyncio.wait(self._tasks, timeout=self._options.grace_seconds)
        await self._commit()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _dispatch(self, partition: Any, message: Any) -> None:
        self._offsets.started(partition, message.offset)
        try:
            command = decode_command(message.value)
            if command.HasField("cancel"):
                self._cancel(command.cancel)
            else:
                order = open_query(command.query, self.system, self._keys.private, self._keys.key_id)
                self._start(order, partition, message.offset, context_from_headers(message.headers))
                return
        except InvalidCommand as error:
            await self._reject(message, error)
        self._offsets.finished(partition, message.offset)

    def _start(self, order: QueryOrder, partition: Any, offset: int, trace_context: Context | None = None) -> None:
        attempt = Attempt(
            self.connector,
            order,
            source=self._source,
            producer=self._producer,
            topics=self._topics,
            instance_id=self._options.instance_id,
            retry=self._options.retry,
            progress_seconds=self._options.progress_seconds,
            first_progress_seconds=self._options.first_progress_seconds,
            chunk_limit=self._options.chunk_limit,
            trace_context=trace_context,
        )
        running = _Running(attempt)
        running.task = asyncio.create_task(self._run(running, partition, offset))
        self._running.setdefault(order.request_id, []).append(running)
        self._tasks.add(running.task)
        running.task.add_done_callback(self._task_done)

    async def _run(self, running: _Running, partition: Any, offset: int) -> None:
        order = running.attempt.order
        try:
            async with self._slots:
                if running.cancel_requested:
                    raise asyncio.CancelledError
                await self._run_until_sent(running)
        except asyncio.CancelledError:
            if not running.cancel_requested:
                raise  # a shutdown past the grace period: the command will run again
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await running.attempt.complete(bus_pb2.COMPLETION_STATUS_CANCELLED)
        finally:
            attempts = self._running.get(order.request_id, [])
            if running in attempts:
                attempts.remove(running)
            if not attempts:
                self._running.pop(order.request_id, None)
        self._offsets.finished(partition, offset)

    async def _run_until_sent(self, running: _Running) -> None:
        """Run the attempt; when one of its sends fails, run it again after a pause, until it ends."""
        retry = self._options.retry
        delays = (
            min(d, self._options.resend_seconds)
            for d in itertools.chain(retry.delays(), itertools.repeat(retry.maximum))
        )
        while True:
            try:
                await running.attempt.run()
                return
            except Exception as error:
                if not running.attempt.send_failed:
                    raise
                delay = next(delays)
                log.warning("%s: request %s: a send failed (%s); running the attempt again in %.1fs", self.system,
                            running.attempt.order.request_id, type(error).__name__, delay)  # fmt: skip
            await asyncio.sleep(delay)
            await refresh_metadata(self._producer)  # the topic may have been re-created
            running.attempt = running.attempt.again()

    def _task_done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()  # a bug of the runtime: stop, and let a restart re-run

    def _cancel(self, cancel: bus_pb2.CancelCommand) -> None:
        if cancel.system != self.system:
            return
        for running in self._running.get(cancel.request_id, []):
            if not running.cancel_requested and not running.attempt.completing and running.task:
                running.cancel_requested = True
                running.task.cancel()
        log.info("%s: request %s cancelled", self.system, cancel.request_id)

    async def _reject(self, message: Any, error: InvalidCommand) -> None:
        """Send an unusable command to the dead-letter topic, and fail its attempt when it says which."""
        log.warning("%s: command at %s/%d refused: %s", self.system, message.topic, message.offset, error.reason)
        headers = [
            ("dsar-reason", error.reason.encode()),
            ("dsar-topic", message.topic.encode()),
            ("dsar-partition", str(message.partition).encode()),
            ("dsar-offset", str(message.offset).encode()),
            ("dsar-system", self.system.encode()),
            ("dsar-instance", self._options.instance_id.encode()),
        ]
        await self._producer.send_and_wait(self._topics.dead_letters, message.value, key=message.key, headers=headers)
        command = error.command
        if command is not None and command.request_id and command.system:
            completion = bus_pb2.Completion(
                request_id=command.request_id,
                system=command.system,
                attempt=command.attempt,
                status=bus_pb2.COMPLETION_STATUS_FAILED,
                error=f"command refused: {error.reason}",
                retryable=error.retryable,
            )
            await self._producer.send_and_wait(
                self._topics.results,
                bus_pb2.ResultEvent(completion=completion).SerializeToString(),
                key=command.request_id.encode(),
            )

    async def _commit(self, *, now: bool = True) -> None:
        """Commit, per partition, up to the lowest unfinished command; unless `now`, not sooner
        than `commit_every_seconds` after the previous commit."""
        clock = asyncio.get_running_loop().time()
        if not now and clock < self._commit_after:
            return
        offsets = self._offsets.committable()
        assigned = self._consumer.assignment()
        for partition in [p for p in offsets if p not in assigned]:
            self._offsets.forget(partition)
            offsets.pop(partition)
        if not offsets:
            return
        self._commit_after = clock + self._options.commit_every_seconds
        try:
            # aiokafka retries a retriable error (UnknownTopicOrPartition among them) forever
            await asyncio.wait_for(self._consumer.commit(offsets), self._options.commit_seconds)
        except Exception as error:  # a rebalance or a broker hiccup: the commands will run again
            log.warning("%s: commit failed (%s)", self.system, type(error).__name__)
            if isinstance(error, TimeoutError) or is_missing_topic(error):
                await self._recover(resubscribe=True)
            return
        self._offsets.committed(offsets)

    async def _recover(self, *, resubscribe: bool) -> None:
        """Re-create missing topics; subscribe again when told to or when one was missing.

        A broker that lost its data lost our topics and our group: commits into the old
        partitions fail, and the consumer needs fresh metadata and a new join to get the new ones.
        """
        created = await self._topic_check.check()
        if created is None:
            return
        if resubscribe or created:
            self._resubscribe()
        await refresh_metadata(self._producer)  # its sends failed too: the topics may be new

    def _resubscribe(self) -> None:
        topics = resubscribe(self._consumer)
        self._offsets.reset()  # the partitions come back through the rejoin, maybe recreated
        log.info("%s: subscribed again to %s", self.system, ", ".join(topics))

    def heartbeat(self) -> bus_pb2.Heartbeat:
        """The heartbeat this worker sends."""
        message = bus_pb2.Heartbeat(
            system=self.system,
            instance_id=self._options.instance_id,
            connector_version=f"{self._options.version}+{self.connector.version}",
            public_key=self._keys.public,
            key_id=self._keys.key_id,
            accepts=[kind_to_proto(k) for k in sorted(self.connector.accepted_kinds, key=lambda k: k.name)],
            discovers=[kind_to_proto(k) for k in sorted(self.connector.discovers, key=lambda k: k.name)],
            interval_seconds=max(1, round(self._heartbeat_seconds)),
            datasets=[declaration_to_proto(d) for d in self.connector.datasets],
            description=self.connector.description,
        )
        message.sent_at.FromDatetime(dt.datetime.now(dt.UTC))
        return message

    async def _heartbeats(self) -> None:
        while True:
            try:
                await self._producer.send_and_wait(
                    self._topics.heartbeats, self.heartbeat().SerializeToString(), key=self.system.encode()
                )
            except Exception as error:  # the next beat will try again
                log.warning("%s: heartbeat not sent (%s)", self.system, type(error).__name__)
                self._check_topics = True  # a broker that lost its topics answers so too
            await asyncio.sleep(self._heartbeat_seconds)
