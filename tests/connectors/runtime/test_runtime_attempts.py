"""Attempts and the worker loop, against an in-memory producer, consumer and store."""

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pytest

from connectors.runtime.attempt import CHUNKS_IN_FLIGHT, Attempt, Headers
from connectors.runtime.messages import QueryOrder, identifier_to_proto, open_query
from connectors.runtime.retry import RetryPolicy
from connectors.runtime.worker import ConnectorWorker, RuntimeOptions
from connectors.sdk import (
    REDACTIONS,
    Connector,
    ConnectorError,
    Field,
    Ident,
    Identifier,
    Query,
    Record,
    RequestKind,
    TemporaryError,
    postgresql,
)
from connectors.sdk import Provenance as P
from dsar.bus.v1 import bus_pb2
from dsar_common.record_batches import inflated
from dsar_common.sealing import (
    KeyPair,
    SealError,
    chunk_binding,
    discovered_binding,
    open_sealed,
    query_binding,
    seal,
)
from dsar_common.topics import Topics

TOPICS = Topics("t")
demo = Connector("demo", store=postgresql("demo"), accepts=[Ident.EMAIL], discovers=[Ident.PERSON_ID])
people = demo.dataset("people", activity="policy_management", key="id", fields={
    "name": P.PROVIDED, "seen": P.OBSERVED, "score": Field(P.DERIVED, activity="fraud_prevention")})  # fmt: skip
scores = demo.dataset("scores", activity="fraud_prevention", key="id", fields={"risk": P.DERIVED})


@people.search
async def find_people(q: Query, db: Any) -> AsyncIterator[Record]:
    await db.before_search()
    for row in db.people:
        yield people.record(row, discovered={Ident.PERSON_ID: row["id"]})
        if row["id"] == "p1":
            yield demo.redaction(people, "p1", ["spouse"], "another person")
        await db.after_record()


@scores.search
async def find_scores(q: Query, db: Any) -> AsyncIterator[Record]:
    yield scores.record({"id": "s1", "risk": "high"})


@dataclass
class FakeStore:
    """The `db` the searches get: rows, and hooks to fail or block."""

    people: list[dict[str, Any]]
    failures: list[BaseException] = field(default_factory=list)  # raised before the search, one per try
    block: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def before_search(self) -> None:
        self.started.set()
        if self.failures:
            raise self.failures.pop(0)

    async def after_record(self) -> None:
        if self.block is not None:
            await self.block.wait()


class FakeSource:
    def __init__(self, store: FakeStore) -> None:
        self.store = store

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[FakeStore]:
        yield self.store

    def translate(self, error: Exception) -> ConnectorError:
        if isinstance(error, ConnectionError):
            return TemporaryError("demo unavailable (ConnectionError)")
        return ConnectorError(f"demo failed ({type(error).__name__})")

    async def aclose(self) -> None:
        pass


Sent = tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]
Kind = Literal["chunk", "progress", "completion"]  # of a ResultEvent


class FakeProducer:
    """A broker in memory: `send` queues a message, acknowledged on the next turn of the loop.

    `sent` holds what the broker acknowledged, in order; `handed` everything handed over, and
    `unacknowledged`, for each, how many earlier messages were still waiting for their
    acknowledgement then. A subclass makes the broker refuse a message with `failure`.
    """

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.handed: list[Sent] = []
        self.unacknowledged: list[int] = []
        self._deliveries: list[asyncio.Future[None]] = []
        self.changed = asyncio.Event()

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers | None = None
    ) -> "asyncio.Future[None]":
        message = (topic, value, key, headers)
        self.unacknowledged.append(sum(not d.done() for d in self._deliveries))
        self.handed.append(message)
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._deliveries.append(delivery)
        asyncio.get_running_loop().call_soon(self._settle, delivery, message, self.failure(topic, value))
        return delivery

    def failure(self, topic: str, value: bytes | None) -> Exception | None:
        """The error the broker answers this message with; None: it is acknowledged."""
        return None

    def _settle(self, delivery: "asyncio.Future[None]", message: Sent, error: Exception | None) -> None:
        if error is not None:
            delivery.set_exception(error)
        else:
            self.sent.append(message)
            delivery.set_result(None)
        self.changed.set()

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers | None = None
    ) -> None:
        await (await self.send(topic, value, key, headers=headers))

    def events(self) -> list[bus_pb2.ResultEvent]:
        return [bus_pb2.ResultEvent.FromString(v or b"") for t, v, _, _ in self.sent if t == TOPICS.results]

    def completions(self) -> list[bus_pb2.Completion]:
        return [e.completion for e in self.events() if e.HasField("completion")]

    def chunks(self) -> list[bus_pb2.ResultChunk]:
        return [e.chunk for e in self.events() if e.HasField("chunk")]

    async def wait_for(self, count: int, which: Kind = "completion") -> list[bus_pb2.Completion]:
        """The acknowledged Completions, once `count` acknowledged result events are of kind `which`."""
        async with asyncio.timeout(10):
            while sum(e.HasField(which) for e in self.events()) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.completions()


def result_event(topic: str, value: bytes | None) -> bus_pb2.ResultEvent | None:
    return bus_pb2.ResultEvent.FromString(value or b"") if topic == TOPICS.results else None


def rows(n: int, size: int = 10) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "name": "x" * size, "seen": i, "score": 0.5} for i in range(n)]


REQUEST = KeyPair.generate()
SYSTEM = KeyPair.generate()
EMAIL = Identifier(Ident.EMAIL, "a@b.fr")


def order(
    kind: RequestKind = RequestKind.ACCESS, deadline: dt.datetime | None = None, deflate: bool = False
) -> QueryOrder:
    return QueryOrder("r1", "demo", 2, REQUEST.public, deadline, Query.of(kind, [EMAIL]), deflate)


def chunk_plaintexts(events: list[bus_pb2.ResultEvent]) -> list[bytes]:
    """What each chunk sealed: a RecordBatch, deflated or not."""
    return [
        open_sealed(e.chunk.sealed_records, REQUEST.private, chunk_binding("r1", "demo", 2, e.chunk.sequence))
        for e in events
        if e.HasField("chunk")
    ]


def opened(events: list[bus_pb2.ResultEvent]) -> list[Record]:
    records = []
    for event in events:
        if event.HasField("chunk"):
            c = event.chunk
            plain = open_sealed(c.sealed_records, REQUEST.private, chunk_binding("r1", "demo", 2, c.sequence))
            batch = bus_pb2.RecordBatch.FromString(inflated(plain))
            assert len(batch.records) == c.record_count
            records += [Record(r.dataset, r.key, orjson.loads(r.fields_json)) for r in batch.records]
    return records


def attempt(store: FakeStore, producer: FakeProducer, **options: Any) -> Attempt:
    kind = options.pop("kind", RequestKind.ACCESS)
    deadline = options.pop("deadline", None)
    deflate = options.pop("deflate", False)
    return Attempt(
        demo,
        order(kind, deadline, deflate),
        source=FakeSource(store),
        producer=producer,
        topics=TOPICS,
        instance_id="i1",
        **options,
    )


async def test_chunks_are_sealed_to_their_place_and_datasets_stay_contiguous() -> None:
    producer = FakeProducer()
    await attempt(FakeStore(rows(40, size=200)), producer, chunk_limit=2_000, first_progress_seconds=3600).run()
    events = producer.events()
    assert [e.WhichOneof("event") for e in events] == ["chunk"] * (len(events) - 1) + ["completion"]
    chunks = [e.chunk for e in events if e.HasField("chunk")]
    assert [c.sequence for c in chunks] == list(range(len(chunks))) and len(chunks) > 3
    records = opened(events)
    assert [r.dataset for r in records] == ["people"] * 40 + ["scores"] + [REDACTIONS]
    assert records[0] == Record("people", "p0", {"name": "x" * 200, "seen": 0, "score": 0.5})
    assert records[-1].fields == {
        "dataset": "people",
        "record_key": "p1",
        "fields_removed": ["spouse"],
        "reason": "another person",
    }
    completion = events[-1].completion
    assert completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED
    assert (completion.chunk_count, completion.record_count) == (len(chunks), 42)
    found = bus_pb2.Discovered.FromString(
        open_sealed(completion.sealed_discovered, REQUEST.private, discovered_binding("r1", "demo", 2))
    )
    assert {i.value for i in found.identifiers} == {f"p{i}" for i in range(40)}
    with pytest.raises(SealError):  # a chunk does not open in another place
        open_sealed(chunks[1].sealed_records, REQUEST.private, chunk_binding("r1", "demo", 2, 0))


async def test_chunks_are_deflated_before_sealing_only_when_the_service_offers_it() -> None:
    answers = {}
    for deflate in (False, True):
        producer = FakeProducer()
        await attempt(FakeStore(rows(40, size=200)), producer, chunk_limit=2_000, deflate=deflate).run()
        answers[deflate] = producer.events()
    plain, deflated_ = (chunk_plaintexts(answers[deflate]) for deflate in (False, True))
    assert len(plain) == len(deflated_) > 3, "the same chunks: a chunk's limit is on its records"
    assert all(p[:1] == b"\x0a" for p in plain), "not offered: plain RecordBatches"
    assert all(d[:1] == bytes([bus_pb2.RECORD_ENCODING_DEFLATE]) for d in deflated_)
    assert sum(map(len, deflated_)) < sum(map(len, plain)) / 2
    assert [inflated(d) for d in deflated_] == plain
    assert opened(answers[True]) == opened(answers[False])
    completions = [answers[deflate][-1].completion for deflate in (False, True)]
    assert completions[0].byte_count == completions[1].byte_count, "bytes counts the records, not the seal"


def test_a_query_command_offering_deflate_gives_an_order_that_deflates() -> None:
    for encodings, deflate in (([], False), ([bus_pb2.RECORD_ENCODING_DEFLATE], True)):
        command = bus_pb2.Command.FromString(query_command()).query
        command.record_encodings.extend(encodings)
        assert open_query(command, "demo", SYSTEM.private, SYSTEM.key_id).deflate is deflate


async def test_portability_drops_derived_fields_and_datasets() -> None:
    producer = FakeProducer()
    await attempt(FakeStore(rows(2)), producer, kind=RequestKind.PORTABILITY).run()
    records = opened(producer.events())
    assert [r.dataset for r in records] == ["people", "people", REDACTIONS]
    assert records[0].fields == {"name": "x" * 10, "seen": 0}


async def test_duplicate_keys_are_sent_once() -> None:
    producer = FakeProducer()
    await attempt(FakeStore(rows(3) + rows(3)), producer).run()
    assert [r.key for r in opened(producer.events())] == ["p0", "p1", "p2", "s1", "people/p1"]


async def test_temporary_errors_before_any_chunk_are_retried() -> None:
    producer = FakeProducer()
    store = FakeStore(rows(3), failures=[ConnectionError("down"), TemporaryError("busy")])
    await attempt(store, producer, retry=RetryPolicy(attempts=3, initial=0, maximum=0)).run()
    assert producer.completions()[0].status == bus_pb2.COMPLETION_STATUS_COMPLETED
    assert len(opened(producer.events())) == 5


async def test_temporary_errors_after_a_chunk_fail_the_attempt_as_retryable() -> None:
    producer = FakeProducer()

    class FailLater(FakeStore):
        async def after_record(self) -> None:
            if len(producer.events()) > 2:
                raise ConnectionError("lost")

    await attempt(FailLater(rows(50, size=300)), producer, chunk_limit=1_000).run()
    (completion,) = producer.completions()
    assert completion.status == bus_pb2.COMPLETION_STATUS_FAILED and completion.retryable
    assert completion.error == "demo unavailable (ConnectionError)" and completion.chunk_count >= 1
    assert completion.sealed_discovered == b""


async def test_other_errors_fail_without_their_message() -> None:
    producer = FakeProducer()
    await attempt(FakeStore(rows(1), failures=[ValueError("a@b.fr is bad")]), producer).run()
    (completion,) = producer.completions()
    assert completion.status == bus_pb2.COMPLETION_STATUS_FAILED and not completion.retryable
    assert completion.error == "demo failed (ValueError)"


async def test_an_attempt_that_ends_before_its_first_progress_sends_none() -> None:
    producer = FakeProducer()
    await attempt(FakeStore(rows(3)), producer, first_progress_seconds=3600).run()
    assert [e.WhichOneof("event") for e in producer.events()] == ["chunk", "completion"]


async def test_a_slow_attempt_reports_progress_after_first_progress_seconds() -> None:
    producer, store = FakeProducer(), FakeStore(rows(3), block=asyncio.Event())
    running = asyncio.create_task(attempt(store, producer, first_progress_seconds=0.01, progress_seconds=3600).run())
    await producer.wait_for(1, "progress")
    (progress,) = [e.progress for e in producer.events()]  # nothing else yet: the search is blocked
    assert (progress.request_id, progress.system, progress.attempt, progress.instance_id) == ("r1", "demo", 2, "i1")
    assert store.block is not None
    store.block.set()
    await running
    assert [e.WhichOneof("event") for e in producer.events()] == ["progress", "chunk", "completion"]


class AcknowledgingWhenAwaited(FakeProducer):
    """A slow broker: a message is acknowledged only once the attempt awaits it, with every
    message handed before it. `unacknowledged` then shows how far the attempt runs ahead."""

    def __init__(self) -> None:
        super().__init__()
        self._acknowledged = 0

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers | None = None
    ) -> Awaitable[None]:
        self.unacknowledged.append(len(self.handed) - self._acknowledged)
        self.handed.append((topic, value, key, headers))
        return self._acknowledge(len(self.handed))

    async def _acknowledge(self, upto: int) -> None:
        while self._acknowledged < upto:
            self.sent.append(self.handed[self._acknowledged])
            self._acknowledged += 1


async def test_chunks_go_out_without_waiting_up_to_the_limit_and_the_last_ones_with_the_completion() -> None:
    producer = AcknowledgingWhenAwaited()
    await attempt(FakeStore(rows(40, size=200)), producer, chunk_limit=2_000, first_progress_seconds=3600).run()
    chunks = len(producer.chunks())
    assert chunks > CHUNKS_IN_FLIGHT + 2 and len(producer.handed) == chunks + 1
    # the search went on while up to CHUNKS_IN_FLIGHT chunks waited for their acknowledgement,
    # and no further (backpressure); the Completion went out without waiting for the last ones
    assert producer.unacknowledged == [min(i, CHUNKS_IN_FLIGHT) for i in range(chunks)] + [CHUNKS_IN_FLIGHT]
    assert producer.completions()[0].chunk_count == chunks
    assert len(producer.sent) == chunks + 1  # and every one of them was awaited


class Refusing(FakeProducer):
    """Refuses the first result of one kind: its acknowledgement fails, or with `at_send`, `send` does."""

    def __init__(self, kind: Kind, at_send: bool = False) -> None:
        super().__init__()
        self.kind, self.at_send, self.refused = kind, at_send, False

    def _refuses(self, topic: str, value: bytes | None) -> bool:
        event = result_event(topic, value)
        if self.refused or event is None or not event.HasField(self.kind):
            return False
        self.refused = True
        return True

    async def send(self, topic: str, value: bytes | None = None, *args: Any, **kwargs: Any) -> "asyncio.Future[None]":
        from aiokafka.errors import KafkaTimeoutError

        if self.at_send and self._refuses(topic, value):
            raise KafkaTimeoutError()
        return await super().send(topic, value, *args, **kwargs)

    def failure(self, topic: str, value: bytes | None) -> Exception | None:
        from aiokafka.errors import KafkaConnectionError

        return KafkaConnectionError("broker gone") if not self.at_send and self._refuses(topic, value) else None


REFUSALS: list[tuple[Kind, bool]] = [("chunk", False), ("completion", False), ("completion", True)]


async def test_a_cancelled_attempt_reports_its_cancellation_whatever_became_of_its_chunks() -> None:
    """The first chunk's acknowledgement fails while the search goes on (it is not awaited yet);
    the attempt is then cancelled: its CANCELLED completion goes out, without that failure."""
    producer, hold = Refusing("chunk"), asyncio.Event()

    class Holding(FakeStore):
        async def after_record(self) -> None:
            if len(producer.handed) >= 2:
                await hold.wait()

    cancelled = attempt(Holding(rows(40, size=200)), producer, chunk_limit=2_000, first_progress_seconds=3600)
    running = asyncio.create_task(cancelled.run())
    async with asyncio.timeout(10):
        while len(producer.handed) < 2:
            producer.changed.clear()
            await producer.changed.wait()
    assert producer.refused and not cancelled.send_failed, "refused, not yet awaited"
    running.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await running
    await cancelled.complete(bus_pb2.COMPLETION_STATUS_CANCELLED)  # as the worker does; no error
    assert producer.completions()[-1].status == bus_pb2.COMPLETION_STATUS_CANCELLED


async def test_progress_reports_the_sealed_bytes_sent() -> None:
    producer, hold = FakeProducer(), asyncio.Event()

    class Holding(FakeStore):
        async def after_record(self) -> None:
            if len(producer.chunks()) >= 2:
                await hold.wait()

    holding = attempt(Holding(rows(40, size=200)), producer, chunk_limit=2_000, deflate=True,
                      first_progress_seconds=0.05, progress_seconds=3600)  # fmt: skip
    running = asyncio.create_task(holding.run())
    await producer.wait_for(1, "progress")
    (progress,) = [e.progress for e in producer.events() if e.HasField("progress")]
    sealed = sum(len(c.sealed_records) for c in producer.chunks())
    assert progress.bytes == sealed > 0
    hold.set()
    await running
    completion = producer.completions()[-1]
    assert completion.byte_count > sum(len(c.sealed_records) for c in producer.chunks()), "the records, deflated"


@pytest.mark.parametrize(("kind", "at_send"), REFUSALS)
async def test_a_refused_last_chunk_or_completion_is_a_failed_send(kind: Kind, at_send: bool) -> None:
    from aiokafka.errors import KafkaError

    producer = Refusing(kind, at_send)
    failing = attempt(FakeStore(rows(3)), producer, first_progress_seconds=3600)
    with pytest.raises(KafkaError):
        await failing.run()
    assert failing.send_failed  # the worker runs it again
    assert producer.refused
    handed = [result_event(t, v) for t, v, _, _ in producer.handed]  # a Completion refused by `send` is not
    assert [e.WhichOneof("event") for e in handed if e] == (["chunk"] if at_send else ["chunk", "completion"])


@pytest.mark.parametrize(("kind", "at_send"), REFUSALS)
async def test_a_refused_last_chunk_or_completion_runs_the_attempt_again(kind: Kind, at_send: bool) -> None:
    producer, consumer = Refusing(kind, at_send), FakeConsumer()
    worker = worker_for(FakeStore(rows(2)), producer, consumer, retry=RetryPolicy(initial=0.01, maximum=0.02))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    consumer.put(query_command())
    await producer.wait_for(1, "chunk")
    await producer.wait_for(1, "completion")
    stop.set()
    await asyncio.wait_for(running, 5)
    handed = [e for e in (result_event(t, v) for t, v, _, _ in producer.handed) if e]
    first_run = ["chunk"] if at_send else ["chunk", "completion"]
    assert [e.WhichOneof("event") for e in handed] == [*first_run, "chunk", "completion"]  # run again, once
    assert {c.sequence for c in producer.chunks()} == {0}
    assert all(c.status == bus_pb2.COMPLETION_STATUS_COMPLETED and c.chunk_count == 1 for c in producer.completions())
    assert consumer.commits[-1] == {"tp0": 1}


async def test_a_passed_deadline_fails_the_attempt() -> None:
    producer = FakeProducer()
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    await attempt(FakeStore(rows(1)), producer, deadline=past).run()
    assert producer.completions()[0].error == "deadline passed"

    producer = FakeProducer()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(milliseconds=100)
    await attempt(FakeStore(rows(3), block=asyncio.Event()), producer, deadline=soon).run()
    assert producer.completions()[0].error == "deadline passed"


# The worker loop, with an in-memory consumer.


@dataclass
class Message:
    value: bytes
    offset: int
    key: bytes = b"r1"
    topic: str = TOPICS.commands("demo")
    partition: int = 0
    headers: tuple[tuple[str, bytes], ...] = ()


class FakeConsumer:
    def __init__(self) -> None:
        self.queue: list[Message] = []
        self.next_offset = 0
        self.commits: list[dict[str, int]] = []
        self.arrived = asyncio.Event()
        self.subscriptions: list[list[str]] = []  # what subscribe was called with
        self.subscribed = asyncio.Event()
        self.empty_polls = 0
        self.polled_empty = asyncio.Event()

    async def idle(self, polls: int = 2) -> None:
        """Wait for `polls` more empty polls: the worker has done what follows the first of them."""
        until = self.empty_polls + polls
        async with asyncio.timeout(10):
            while self.empty_polls < until:
                self.polled_empty.clear()
                await self.polled_empty.wait()

    def put(self, value: bytes) -> None:
        self.queue.append(Message(value, offset=self.next_offset))
        self.next_offset += 1
        self.arrived.set()

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[str, list[Message]]:
        if not self.queue:
            self.arrived.clear()
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    await self.arrived.wait()
            except TimeoutError:
                self.empty_polls += 1
                self.polled_empty.set()
                return {}
        taken, self.queue = self.queue[:max_records], self.queue[max_records:]
        return {"tp0": taken}

    def assignment(self) -> set[str]:
        return {"tp0"}

    async def commit(self, offsets: dict[str, int]) -> None:
        self.commits.append(dict(offsets))

    def subscription(self) -> frozenset[str]:
        return frozenset({TOPICS.commands("demo")})

    def subscribe(self, topics: list[str]) -> None:
        self.subscriptions.append(list(topics))
        self.subscribed.set()


def query_command(request_id: str = "r1", attempt: int = 1, sealed: bytes | None = None) -> bytes:
    query = bus_pb2.Query(kind=bus_pb2.REQUEST_KIND_ACCESS, identifiers=[identifier_to_proto(EMAIL)])
    if sealed is None:
        sealed = seal(query.SerializeToString(), SYSTEM.public, query_binding(request_id, "demo", attempt))
    command = bus_pb2.QueryCommand(
        request_id=request_id,
        system="demo",
        attempt=attempt,
        result_public_key=REQUEST.public,
        key_id=SYSTEM.key_id,
        sealed_query=sealed,
    )
    return bus_pb2.Command(query=command).SerializeToString()


async def test_worker_dead_letters_cancels_and_commits_after_the_work() -> None:
    store = FakeStore(rows(3), block=asyncio.Event())
    producer, consumer = FakeProducer(), FakeConsumer()
    worker = ConnectorWorker(
        demo,
        consumer=consumer,
        producer=producer,
        source=FakeSource(store),
        keys=SYSTEM,
        topics=TOPICS,
        options=RuntimeOptions(poll_seconds=0.05, grace_seconds=5),
        heartbeat_seconds=60,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))

    consumer.put(b"\xff not a command")  # offset 0
    consumer.put(query_command(attempt=1, sealed=b"garbage"))  # offset 1: readable, does not open
    consumer.put(query_command(attempt=2))  # offset 2: blocks in its search
    (refused,) = await producer.wait_for(1)
    assert refused.status == bus_pb2.COMPLETION_STATUS_FAILED and refused.attempt == 1
    assert refused.error == "command refused: sealed query did not open"
    await asyncio.wait_for(store.started.wait(), 5)
    dead = [(v, dict(h or [])) for t, v, _, h in producer.sent if t == TOPICS.dead_letters]
    assert [(v, h["dsar-reason"], h["dsar-offset"]) for v, h in dead] == [
        (b"\xff not a command", b"not a dsar.bus.v1.Command", b"0"),
        (query_command(attempt=1, sealed=b"garbage"), b"sealed query did not open", b"1"),
    ]
    assert consumer.commits[-1] == {"tp0": 2}  # the running command holds the commit back

    cancel = bus_pb2.Command(cancel=bus_pb2.CancelCommand(request_id="r1", system="demo"))
    consumer.put(cancel.SerializeToString())  # offset 3
    cancelled = (await producer.wait_for(2))[1]
    assert cancelled.status == bus_pb2.COMPLETION_STATUS_CANCELLED and cancelled.attempt == 2

    heartbeat = bus_pb2.Heartbeat.FromString(next(v for t, v, _, _ in producer.sent if t == TOPICS.heartbeats) or b"")
    assert heartbeat.public_key == SYSTEM.public and heartbeat.key_id == SYSTEM.key_id
    assert list(heartbeat.accepts) == [bus_pb2.IDENTIFIER_KIND_EMAIL]

    stop.set()
    await asyncio.wait_for(running, 5)
    assert consumer.commits[-1] == {"tp0": 4}


async def test_worker_lets_running_attempts_finish_on_stop() -> None:
    store = FakeStore(rows(2), block=asyncio.Event())
    producer, consumer = FakeProducer(), FakeConsumer()
    worker = ConnectorWorker(
        demo,
        consumer=consumer,
        producer=producer,
        source=FakeSource(store),
        keys=SYSTEM,
        topics=TOPICS,
        options=RuntimeOptions(poll_seconds=0.05, grace_seconds=5),
        heartbeat_seconds=60,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    consumer.put(query_command())
    await asyncio.wait_for(store.started.wait(), 5)
    stop.set()
    store.block.set()  # type: ignore[union-attr]
    await asyncio.wait_for(running, 5)
    assert producer.completions()[0].status == bus_pb2.COMPLETION_STATUS_COMPLETED
    assert consumer.commits[-1] == {"tp0": 1}


async def test_a_field_that_cannot_be_encoded_fails_the_attempt() -> None:
    producer = FakeProducer()
    await attempt(FakeStore([{"id": "p0", "name": object()}]), producer).run()
    (completion,) = producer.completions()
    assert completion.status == bus_pb2.COMPLETION_STATUS_FAILED and not completion.retryable
    assert completion.error.startswith("a field of people could not be encoded")


async def test_cancelling_the_runtime_stops_its_loops_gracefully() -> None:
    from connectors.runtime.app import _run_all

    stop = asyncio.Event()
    drained = asyncio.Event()

    async def loop() -> None:
        await stop.wait()
        await asyncio.sleep(0)  # the drain still runs after the cancellation
        drained.set()

    running = asyncio.create_task(_run_all([loop()], stop))
    await asyncio.sleep(0)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert stop.is_set() and drained.is_set()


# Robustness: a broker that lost its topics, a connector's own bug.


def worker_for(
    store: FakeStore,
    producer: FakeProducer,
    consumer: FakeConsumer,
    ensure_topics: Any = None,
    **options: Any,
) -> ConnectorWorker:
    heartbeat_seconds = options.pop("heartbeat_seconds", 60)
    return ConnectorWorker(
        demo,
        consumer=consumer,
        producer=producer,
        source=FakeSource(store),
        keys=SYSTEM,
        topics=TOPICS,
        options=RuntimeOptions(poll_seconds=0.02, grace_seconds=5, **options),
        heartbeat_seconds=heartbeat_seconds,
        ensure_topics=ensure_topics,
    )


class TopicsCreated:
    """The `ensure_topics` the app gives a worker: counts its calls, says it created the commands topic."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> list[str]:
        self.calls += 1
        return [TOPICS.commands("demo")]


async def test_a_commit_that_never_ends_does_not_stop_the_loop() -> None:
    """aiokafka retries a commit into a topic that no longer exists forever: the loop must go on."""

    class StuckCommits(FakeConsumer):
        async def commit(self, offsets: dict[str, int]) -> None:
            self.commits.append(dict(offsets))
            await asyncio.Event().wait()  # UnknownTopicOrPartition, retried every 100 ms, forever

    producer, consumer, ensure = FakeProducer(), StuckCommits(), TopicsCreated()
    worker = worker_for(FakeStore(rows(1)), producer, consumer, ensure, commit_seconds=0.05, recover_seconds=0)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    consumer.put(query_command(request_id="r1"))
    await producer.wait_for(1)
    consumer.put(query_command(request_id="r2"))  # taken only if the loop polls again
    second = (await producer.wait_for(2))[1]
    assert second.request_id == "r2" and second.status == bus_pb2.COMPLETION_STATUS_COMPLETED
    assert ensure.calls >= 1  # the topics were re-created…
    assert consumer.subscriptions[:1] == [[TOPICS.commands("demo")]]  # …and the consumer rejoined
    stop.set()
    await asyncio.wait_for(running, 5)


async def test_a_commit_into_a_missing_topic_recreates_the_topics_and_forgets_the_offsets() -> None:
    from aiokafka.errors import UnknownTopicOrPartitionError

    class MissingTopic(FakeConsumer):
        async def commit(self, offsets: dict[str, int]) -> None:
            if not self.subscriptions:  # until the worker subscribed again
                raise UnknownTopicOrPartitionError()
            self.commits.append(dict(offsets))

    producer, consumer, ensure = FakeProducer(), MissingTopic(), TopicsCreated()
    worker = worker_for(FakeStore(rows(1)), producer, consumer, ensure)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    consumer.next_offset = 7
    consumer.put(query_command(request_id="r1"))  # offset 7, in the old topic
    await producer.wait_for(1)
    await asyncio.wait_for(consumer.subscribed.wait(), 5)
    consumer.next_offset = 0  # the re-created topic starts again at 0
    consumer.put(query_command(request_id="r2"))
    await producer.wait_for(2)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert ensure.calls == 1 and consumer.subscriptions == [[TOPICS.commands("demo")]]
    assert consumer.commits[-1] == {"tp0": 1}  # the new topic's offsets…
    assert all(c["tp0"] <= 1 for c in consumer.commits)  # …never the lost topic's 8


async def test_heartbeats_into_a_missing_topic_recreate_the_topics() -> None:
    from aiokafka.errors import KafkaTimeoutError

    class NoHeartbeatTopic(FakeProducer):
        async def send_and_wait(self, topic: str, value: bytes | None = None, *args: Any, **kwargs: Any) -> None:
            if topic == TOPICS.heartbeats and not ensure.calls:
                raise KafkaTimeoutError()  # aiokafka waited for the metadata of a topic that is not there
            await super().send_and_wait(topic, value, *args, **kwargs)

    ensure = TopicsCreated()
    producer, consumer = NoHeartbeatTopic(), FakeConsumer()
    worker = worker_for(FakeStore(rows(1)), producer, consumer, ensure, heartbeat_seconds=0.02)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(consumer.subscribed.wait(), 5)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert ensure.calls == 1 and consumer.subscriptions == [[TOPICS.commands("demo")]]


SECRET = "jean.dupont@example.fr"


def broken_view(record: Record, portability: bool) -> Record | None:
    raise KeyError(SECRET)  # a connector's bug, whose message holds a record's content


async def test_a_connector_bug_fails_the_attempt_without_retry_and_without_its_message(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(people, "view", broken_view)
    producer = FakeProducer()
    with caplog.at_level("INFO", logger="connectors.runtime"):
        await attempt(FakeStore(rows(2)), producer).run()
    (completion,) = producer.completions()
    assert completion.status == bus_pb2.COMPLETION_STATUS_FAILED and not completion.retryable
    assert completion.error == "KeyError"
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert logged.exc_info is not None and logged.exc_info[2] is not None  # the traceback, to find the bug
    text = "\n".join(caplog.text.splitlines() + [logging.Formatter().format(r) for r in caplog.records])
    assert "KeyError" in text and "broken_view" in text and SECRET not in text


async def test_a_connector_bug_is_not_a_poison_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(people, "view", broken_view)
    producer, consumer = FakeProducer(), FakeConsumer()
    worker = worker_for(FakeStore(rows(2)), producer, consumer)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    consumer.put(query_command(request_id="r1"))
    consumer.put(query_command(request_id="r2"))
    failed = await producer.wait_for(2)
    assert [c.error for c in failed] == ["KeyError", "KeyError"] and not running.done()
    stop.set()
    await asyncio.wait_for(running, 5)  # no failure raised: the worker did not stop
    assert consumer.commits[-1] == {"tp0": 2}  # both commands committed: they will not come back


async def test_a_failed_send_runs_the_attempt_again_and_the_worker_keeps_going() -> None:
    from aiokafka.errors import KafkaConnectionError

    class LostBroker(FakeProducer):
        """The first four results (two runs: chunk and Completion) fail, as while a broker restarts."""

        refusals = 4

        def failure(self, topic: str, value: bytes | None) -> Exception | None:
            if topic == TOPICS.results and self.refusals:
                self.refusals -= 1
                error: Exception = KafkaConnectionError("broker gone")
                return error
            return None

    producer, consumer = LostBroker(), FakeConsumer()
    worker = worker_for(FakeStore(rows(2)), producer, consumer, retry=RetryPolicy(initial=0.01, maximum=0.02))
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    consumer.put(query_command())
    (completion,) = await producer.wait_for(1)
    chunks = [e.chunk for e in producer.events() if e.HasField("chunk")]
    assert [c.sequence for c in chunks] == [0]  # the third run sent the chunk, with the same sequence
    assert completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED and completion.attempt == 1
    assert completion.record_count == chunks[0].record_count > 0
    assert not running.done()  # the worker did not stop
    stop.set()
    await asyncio.wait_for(running, 5)
    assert consumer.commits[-1] == {"tp0": 1}  # committed once the attempt ended


async def test_a_failed_heartbeat_with_every_topic_present_does_not_resubscribe() -> None:
    from aiokafka.errors import KafkaConnectionError

    checked = asyncio.Event()

    async def nothing_missing() -> list[str]:
        checked.set()
        return []

    class Flaky(FakeProducer):
        async def send_and_wait(self, topic: str, value: bytes | None = None, *args: Any, **kwargs: Any) -> None:
            raise KafkaConnectionError("a hiccup")

    consumer = FakeConsumer()
    worker = worker_for(FakeStore(rows(1)), Flaky(), consumer, nothing_missing, heartbeat_seconds=0.02)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(checked.wait(), 5)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert consumer.subscriptions == []  # no needless rebalance


# Commits: spaced out while commands keep coming, never past a command still running.


@dataclass
class FirstSearchHeld(FakeStore):
    """The first search waits for `hold`; the others run at once."""

    hold: asyncio.Event = field(default_factory=asyncio.Event)

    async def before_search(self) -> None:
        first = not self.started.is_set()
        await super().before_search()
        if first:
            await self.hold.wait()


async def test_commits_never_pass_a_command_still_running_and_come_when_the_loop_is_idle() -> None:
    store, producer, consumer = FirstSearchHeld(rows(1)), FakeProducer(), FakeConsumer()
    worker = worker_for(store, producer, consumer, commit_every_seconds=3600)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    for request_id in ("r1", "r2", "r3"):  # offsets 0, 1, 2: r1 is held in its search
        consumer.put(query_command(request_id=request_id))
    assert [c.request_id for c in await producer.wait_for(2)] == ["r2", "r3"]
    await consumer.idle()
    assert consumer.commits and all(c["tp0"] == 0 for c in consumer.commits)  # r1 holds them back

    store.hold.set()
    await producer.wait_for(3)
    await consumer.idle()  # an idle loop commits at once, however long commit_every_seconds
    assert consumer.commits[-1] == {"tp0": 3}
    stop.set()
    await asyncio.wait_for(running, 5)


class Busy(FakeConsumer):
    """A topic that never falls quiet: a poll waits for the next command (or `wake`)."""

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[str, list[Message]]:
        self.arrived.clear()
        if not self.queue:
            await self.arrived.wait()
        taken, self.queue = self.queue[:max_records], self.queue[max_records:]
        return {"tp0": taken} if taken else {}

    def wake(self) -> None:
        self.arrived.set()


async def test_commits_are_spaced_out_while_commands_keep_coming() -> None:
    producer, consumer = FakeProducer(), Busy()
    worker = worker_for(FakeStore(rows(1)), producer, consumer, commit_every_seconds=3600)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    for count, request_id in enumerate(("r1", "r2", "r3"), start=1):
        consumer.put(query_command(request_id=request_id))
        await producer.wait_for(count)
    assert consumer.commits == [{"tp0": 0}]  # when r1 was taken; the finished ones wait their turn
    stop.set()
    consumer.wake()
    await asyncio.wait_for(running, 5)
    assert consumer.commits[-1] == {"tp0": 3}  # on stop, every finished command
