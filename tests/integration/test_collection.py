"""Collection against the real service database, with the connector's side played by the test.

The bus is a recording fake (Kafka itself is exercised in test_access_request.py); the store,
the sealing, the state machine and the assembly are the real ones. Each test states the exact
records it expects in the archive.
"""

import asyncio
import io
import json
import random
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pyrage
import pytest

from dsar.bus.v1 import bus_pb2
from dsar_common.kafka import BusError
from dsar_common.sealing import KeyPair, chunk_binding, discovered_binding, open_sealed, query_binding, seal
from dsar_common.settings import Settings
from dsar_service.bus import AttemptEnded, AttemptOutcome, ChunkReceived, HeartbeatReceived, ProgressReported
from dsar_service.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from dsar_service.model import Kind, RequestState, SystemState
from dsar_service.requests.assembly import Assembler
from dsar_service.requests.collection import MAX_DISCOVERED_PER_KIND, Collector
from dsar_service.requests.keys import RequestKeys
from dsar_service.requests.service import RequestService
from dsar_service.requests.subject import RawSubmission, nir_key
from dsar_service.store import AuditLog, ChangeFeed, NewRequest, RequestSecrets, RequestStore, open_pool
from dsar_service.store.audit import AuditEntry, verify_chain
from tests.support.servers import database_of_its_own

CONNECTOR_KEY = KeyPair.generate()


@dataclass
class SentQuery:
    request_id: str
    system: str
    attempt: int
    result_public_key: bytes
    sealed_query: bytes
    deadline: datetime


@dataclass
class RecordingBus:
    queries: list[SentQuery] = field(default_factory=list)
    cancels: list[tuple[str, str]] = field(default_factory=list)
    ensured: list[str] = field(default_factory=list)
    failing_sends: int = 0  # how many of the next sends fail, as a broker that lost its topics would

    async def ensure_command_topic(self, system: str) -> None:
        self.ensured.append(system)

    async def send_query(self, *, request_id: str, system: str, attempt: int, result_public_key: bytes,
                         key_id: str, sealed_query: bytes, deadline: datetime) -> None:  # fmt: skip
        if self.failing_sends:
            self.failing_sends -= 1
            raise BusError("could not send to the command topic: UnknownTopicOrPartitionError")
        self.queries.append(SentQuery(request_id, system, attempt, result_public_key, sealed_query, deadline))

    async def send_cancel(self, request_id: str, system: str) -> None:
        self.cancels.append((request_id, system))

    def last(self, request_id: str, system: str) -> SentQuery:
        return [q for q in self.queries if q.request_id == request_id and q.system == system][-1]


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Harness:
    settings: Settings
    changes: ChangeFeed
    store: RequestStore
    bus: RecordingBus
    collector: Collector
    service: RequestService
    assembler: Assembler
    clock: Clock
    collected: list[str]
    identity: pyrage.x25519.Identity
    pool: asyncpg.Pool


@pytest.fixture(scope="module")
async def collection_database(settings: Settings) -> AsyncIterator[str]:
    """A service database of this module's own, dropped at the end.

    The harness announces connectors whose key no real connector holds: in the session's service
    database, another module's service would seal its queries to that key (before: a later
    module's policy request needed a second attempt).
    """
    async with database_of_its_own(settings.database_url, "dsar_collection") as url:
        yield url


@pytest.fixture
async def harness(settings: Settings, collection_database: str) -> AsyncIterator[Harness]:
    settings = settings.with_values(
        database_url=collection_database,
        system_timeout_seconds=30.0,
        max_attempts=3,
        subject_requests_per_day=10_000,
    )
    async with open_pool(settings.database_url) as pool, ChangeFeed.listening(settings.database_url) as changes:
        store, bus, clock = RequestStore(pool), RecordingBus(), Clock()
        collected: list[str] = []
        collector = Collector(store, bus, settings, on_collected=collected.append, clock=clock)
        service = RequestService(store, collector, changes, AuditLog(pool), settings, clock=clock)
        for system, discovers in (("policy", ("person_id",)), ("claims", ())):
            await collector.on_heartbeat(
                HeartbeatReceived(
                    system,
                    "test-instance",
                    "1",
                    CONNECTOR_KEY.public,
                    CONNECTOR_KEY.key_id,
                    clock(),
                    ("email", "person_id", "nir"),
                    discovers,
                    5,
                )
            )
        yield Harness(
            settings,
            changes,store, bus, collector, service, Assembler(store, settings), clock, collected,
                      pyrage.x25519.Identity.generate(), pool)  # fmt: skip


def raw_submission(h: Harness, systems: list[str], key: str = "", **subject: list[str]) -> RawSubmission:
    """A submission naming `subject`'s emails (jean.dupont@… by default), person_ids and nir."""
    return RawSubmission(
        kind=Kind.ACCESS,
        emails=subject.get("emails", ["jean.dupont@example.com"]),
        phones=[],
        nir="".join(subject.get("nir", [])),
        person_ids=subject.get("person_ids", []),
        policy_numbers=[],
        visitor_ids=[],
        candidate_ids=[],
        first_name="",
        last_name="",
        birth_date="",
        recipient=str(h.identity.to_public()),
        request_key=key or f"test:{uuid.uuid4()}",
        systems=systems,
    )


async def submit(h: Harness, systems: list[str], **subject: list[str]) -> str:
    view, created = await h.service.submit(raw_submission(h, systems, "", **subject))
    assert created
    return view.request_id


def sealed_chunk(query: SentQuery, sequence: int, records: list[tuple[str, str, dict[str, object]]]) -> ChunkReceived:
    batch = bus_pb2.RecordBatch(
        records=[bus_pb2.Record(dataset=d, key=k, fields_json=json.dumps(f).encode()) for d, k, f in records]
    )
    sealed = seal(batch.SerializeToString(), query.result_public_key,
                  chunk_binding(query.request_id, query.system, query.attempt, sequence))  # fmt: skip
    return ChunkReceived(query.request_id, query.system, query.attempt, sequence, len(records), sealed)


def completion(query: SentQuery, chunks: int, outcome: AttemptOutcome = AttemptOutcome.COMPLETED,
               retryable: bool = False, error: str = "") -> AttemptEnded:  # fmt: skip
    return AttemptEnded(query.request_id, query.system, query.attempt, outcome, chunks, 0, 0, error, retryable, b"")


async def archive_of(h: Harness, request_id: str) -> zipfile.ZipFile:
    await h.assembler.assemble(request_id)
    view = await h.service.get(request_id)
    assert view.state is RequestState.READY, view.error
    download = await h.service.download(request_id)
    encrypted = b"".join([chunk async for chunk in download.chunks])
    return zipfile.ZipFile(io.BytesIO(pyrage.decrypt(encrypted, [h.identity])))


def states(view_systems: object) -> dict[str, SystemState]:
    return {s.system: s.state for s in view_systems}  # type: ignore[attr-defined]


async def test_the_query_is_sealed_to_the_system_and_bound_to_its_place(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"], emails=["Jean.Dupont@Example.com"])
    query = harness.bus.last(request_id, "policy")
    assert b"jean.dupont" not in query.sealed_query
    plain = open_sealed(query.sealed_query, CONNECTOR_KEY.private, query_binding(request_id, "policy", 1))
    decoded = bus_pb2.Query.FromString(plain)
    assert [(i.kind, i.value) for i in decoded.identifiers] == [
        (bus_pb2.IDENTIFIER_KIND_EMAIL, "jean.dupont@example.com")
    ]
    with pytest.raises(Exception, match="did not open"):
        open_sealed(query.sealed_query, CONNECTOR_KEY.private, query_binding(request_id, "policy", 2))


async def test_a_batch_completes_a_system_once_its_last_chunk_is_settled(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the bus hands over a batch: events taken in order, then settled before the commit."""
    request_id = await submit(harness, ["claims", "policy"])
    query = harness.bus.last(request_id, "policy")
    checks: list[str] = []
    check = harness.store.complete_if_whole

    async def counted(request_id: str, system: str) -> object:
        checks.append(system)
        return await check(request_id, system)

    monkeypatch.setattr(harness.store, "complete_if_whole", counted)
    # A chunk and its Completion in one batch: the Completion's check completes the system; the
    # chunk's is not made.
    await harness.collector.take(sealed_chunk(query, 0, [("insured_person", "p1", {"person_id": "p1"})]))
    await harness.collector.take(completion(query, 2))
    assert checks == ["policy"]
    # The last chunk after its Completion (another batch): the system completes when settled.
    await harness.collector.take(sealed_chunk(query, 1, [("insured_person", "p2", {"person_id": "p2"})]))
    assert states((await harness.service.get(request_id)).systems)["policy"] is not SystemState.COMPLETED
    assert checks == ["policy"]
    await harness.collector.settle()
    assert checks == ["policy", "policy"]
    view = await harness.service.get(request_id)
    assert states(view.systems)["policy"] is SystemState.COMPLETED and view.systems[1].records == 2


async def test_the_results_of_requests_handled_at_once_share_their_statements(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the bus hands over a batch holding several requests' results: each request's events in
    order, the requests concurrently. Their steps go to the database together, and each request
    completes as it would alone."""
    request_ids = [await submit(harness, ["policy"], emails=[f"p{n}@example.com"]) for n in range(6)]
    queries = [harness.bus.last(request_id, "policy") for request_id in request_ids]
    pool = CountedPool(harness.pool)
    monkeypatch.setattr(harness.store, "_pool", pool)

    async def in_order(query: SentQuery) -> None:
        await harness.collector.take(sealed_chunk(query, 0, [("insured_person", "p", {"person_id": "p"})]))
        await harness.collector.take(completion(query, 1))

    await asyncio.gather(*(in_order(query) for query in queries))
    await harness.collector.settle()
    # One statement each for the chunks, the completions, their checks and the requests' reads
    # (one at a time, the six requests would make 24).
    assert len(pool.statements) == 4
    assert sorted(harness.collected) == sorted(request_ids)
    for request_id in request_ids:
        view = await harness.service.get(request_id)
        assert states(view.systems) == {"policy": SystemState.COMPLETED} and view.systems[0].records == 1


async def test_a_value_the_database_refuses_fails_its_own_step_only(harness: Harness) -> None:
    """The bus refuses out-of-range values before they reach the store; should one get there, the
    batch it broke is run again one step at a time, and the other request's chunk is stored."""
    first, second = [await submit(harness, ["policy"], emails=[f"v{n}@example.com"]) for n in range(2)]
    good = harness.store.store_chunk(first, "policy", 1, 0, 1, b"sealed")
    bad = harness.store.store_chunk(second, "policy", 1, 0, 2**40, b"sealed")  # record_count is an int4
    stored, refused = await asyncio.gather(good, bad, return_exceptions=True)
    assert stored is True
    assert isinstance(refused, asyncpg.DataError)


async def test_batches_of_several_replicas_on_the_same_requests_do_not_deadlock(harness: Harness) -> None:
    """Three stores, as three replicas, complete and dispatch systems of the same 40 requests in
    batches listing them in different orders. Each batch takes its requests' rows in order first,
    so none waits for another in a cycle (a deadlock costs a second before PostgreSQL breaks it)."""
    now = harness.clock()
    completing, dispatching = [f"c{n}" for n in range(8)], [f"d{n}" for n in range(8)]
    request_ids = [str(uuid.uuid4()) for _ in range(40)]
    for request_id in request_ids:
        await harness.store.insert(NewRequest(
            request_id, request_id, b"digest", Kind.ACCESS, now, now + timedelta(days=30), "recipient",
            b"sealed", b"public", b"wrapped", [(system, 1) for system in completing + dispatching]))  # fmt: skip
    deadline, pending = now + timedelta(minutes=5), (SystemState.PENDING,)
    await asyncio.gather(*(harness.store.mark_dispatched(r, s, 1, deadline, 1, 1, pending, True)
                           for r in request_ids for s in completing))  # fmt: skip
    await asyncio.gather(*(harness.store.record_completion(r, s, 1, 0, None) for r in request_ids for s in completing))
    pool = DeadlockCountingPool(harness.pool)
    replicas = [RequestStore(pool) for _ in range(3)]  # type: ignore[arg-type]
    to_complete = [(r, s) for r in request_ids for s in completing]
    to_dispatch = [(r, s) for r in request_ids for s in dispatching]
    random.Random(7).shuffle(to_complete)
    random.Random(8).shuffle(to_dispatch)

    async def complete(store: RequestStore, pairs: list[tuple[str, str]]) -> None:
        for at in range(0, len(pairs), 8):
            await asyncio.gather(*(store.complete_if_whole(r, s) for r, s in pairs[at : at + 8]))

    async def dispatch(store: RequestStore, pairs: list[tuple[str, str]]) -> None:
        for at in range(0, len(pairs), 8):
            await asyncio.gather(*(store.mark_dispatched(r, s, 1, deadline, 1, 1, pending, True)
                                   for r, s in pairs[at : at + 8]))  # fmt: skip

    await asyncio.gather(complete(replicas[0], to_complete[::2]), complete(replicas[1], to_complete[1::2]),
                         dispatch(replicas[2], to_dispatch))  # fmt: skip
    assert pool.deadlocks == 0
    for request_id in request_ids:
        rows = {row.system: row.state for row in await harness.store.system_rows(request_id)}
        assert {rows[s] for s in completing} == {SystemState.COMPLETED}
        assert {rows[s] for s in dispatching} == {SystemState.DISPATCHED}


async def test_of_two_dispatches_of_one_attempt_at_once_one_is_sent(harness: Harness) -> None:
    first, second = [await submit(harness, ["policy"], emails=[f"d{n}@example.com"]) for n in range(2)]
    deadline = harness.clock() + timedelta(seconds=30)
    in_flight = (SystemState.DISPATCHED, SystemState.RUNNING)
    again = [
        harness.store.mark_dispatched(request_id, "policy", 2, deadline, 1, 1, in_flight, False)
        for request_id in (first, first, second, first)
    ]
    assert await asyncio.gather(*again) == [True, False, True, False]
    for request_id in (first, second):
        assert [row.attempt for row in await harness.store.system_rows(request_id)] == [2]


class DeadlockCountingPool:
    """The pool, counting the statements PostgreSQL aborted to break a deadlock (then retried)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.deadlocks = 0

    def __getattr__(self, name: str) -> object:
        method = getattr(self._pool, name)
        if name not in ("execute", "fetch", "fetchrow", "fetchval"):
            return method

        async def run(query: str, *args: object) -> object:
            try:
                return await method(query, *args)
            except asyncpg.DeadlockDetectedError:
                self.deadlocks += 1
                raise

        return run


class CountedPool:
    """The pool, with each statement made through it noted."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.statements: list[str] = []

    def __getattr__(self, name: str) -> object:
        method = getattr(self._pool, name)
        if name not in ("execute", "fetch", "fetchrow", "fetchval"):
            return method

        async def run(query: str, *args: object) -> object:
            self.statements.append(query)
            return await method(query, *args)

        return run


async def test_duplicated_and_out_of_order_chunks_give_each_record_once(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    query = harness.bus.last(request_id, "policy")
    chunks = [
        sealed_chunk(query, 0, [("insured_person", "p1", {"person_id": "p1", "first_name": "Jean"})]),
        sealed_chunk(query, 1, [("premium_payment", f"pay{i}", {"payment_id": i}) for i in range(3)]),
        sealed_chunk(query, 2, [("premium_payment", f"pay{i}", {"payment_id": i}) for i in range(3, 5)]),
    ]
    await harness.collector.on_result(ProgressReported(request_id, "policy", 1, 0, 0))
    await harness.collector.on_result(completion(query, 3))  # the completion overtakes its chunks
    for event in (chunks[2], chunks[0], chunks[2]):
        await harness.collector.on_result(event)
        assert not harness.collected, "a chunk is still missing"
    await harness.collector.on_result(chunks[1])
    await harness.collector.on_result(chunks[0])  # a late duplicate after completion changes nothing
    view = await harness.service.get(request_id)
    assert states(view.systems) == {"policy": SystemState.COMPLETED}
    assert view.systems[0].records == 6
    assert harness.collected == [request_id]

    files = await archive_of(harness, request_id)
    assert json.loads(files.read("data/policy/insured_person.json")) == [{"person_id": "p1", "first_name": "Jean"}]
    assert [r["payment_id"] for r in json.loads(files.read("data/policy/premium_payment.json"))] == [0, 1, 2, 3, 4]
    row = await harness.pool.fetchrow(
        "SELECT wrapped_private_key, (SELECT count(*) FROM result_chunks WHERE request_id = $1) AS chunks"
        " FROM requests WHERE request_id = $1", uuid.UUID(request_id))  # fmt: skip
    assert row["wrapped_private_key"] is None and row["chunks"] == 0, "key and sealed chunks are destroyed"


async def test_a_chunk_that_does_not_open_for_its_place_fails_the_assembly(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    query = harness.bus.last(request_id, "policy")
    misplaced = sealed_chunk(query, 1, [("insured_person", "p1", {"person_id": "p1"})])
    await harness.collector.on_result(ChunkReceived(request_id, "policy", 1, 0, 1, misplaced.sealed_records))
    await harness.collector.on_result(completion(query, 1))
    await harness.assembler.assemble(request_id)
    view = await harness.service.get(request_id)
    assert view.state is RequestState.FAILED and "could not be built" in view.error


async def test_a_silent_system_is_dispatched_again_then_timed_out(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    attempts = []
    for _ in range(3):
        attempts.append(harness.bus.last(request_id, "policy").attempt)
        harness.clock.now += timedelta(seconds=31)
        await harness.collector.expire_attempts()
    assert attempts == [1, 2, 3]
    view = await harness.service.get(request_id)
    assert states(view.systems) == {"policy": SystemState.TIMED_OUT}
    assert "3 attempt(s)" in view.systems[0].error
    files = await archive_of(harness, request_id)
    manifest = json.loads(files.read("manifest.json"))
    assert manifest["systems"]["policy"]["status"] == "timed_out"
    assert not [n for n in files.namelist() if n.startswith("data/")]


async def test_progress_keeps_an_attempt_alive_and_stale_attempts_are_ignored(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    first = harness.bus.last(request_id, "policy")
    harness.clock.now += timedelta(seconds=20)
    await harness.collector.on_result(ProgressReported(request_id, "policy", 1, 10, 100))
    harness.clock.now += timedelta(seconds=20)
    await harness.collector.expire_attempts()
    assert harness.bus.last(request_id, "policy").attempt == 1, "progress pushed the deadline back"
    harness.clock.now += timedelta(seconds=31)
    await harness.collector.expire_attempts()
    second = harness.bus.last(request_id, "policy")
    assert second.attempt == 2
    # the first attempt wakes up late: its chunks and completion are not taken
    await harness.collector.on_result(sealed_chunk(first, 0, [("insured_person", "old", {"person_id": "old"})]))
    await harness.collector.on_result(completion(first, 1))
    assert states((await harness.service.get(request_id)).systems) == {"policy": SystemState.DISPATCHED}
    await harness.collector.on_result(sealed_chunk(second, 0, [("insured_person", "new", {"person_id": "new"})]))
    await harness.collector.on_result(completion(second, 1))
    files = await archive_of(harness, request_id)
    assert json.loads(files.read("data/policy/insured_person.json")) == [{"person_id": "new"}]


async def test_discoverers_go_first_and_their_findings_feed_the_next_round(harness: Harness) -> None:
    request_id = await submit(harness, ["claims", "policy"])
    assert [q.system for q in harness.bus.queries if q.request_id == request_id] == ["policy"]
    policy = harness.bus.last(request_id, "policy")
    discovered = bus_pb2.Discovered(identifiers=[
        bus_pb2.Identifier(kind=bus_pb2.IDENTIFIER_KIND_PERSON_ID, value="3f1d2c4e-0000-4000-8000-000000000001"),
        bus_pb2.Identifier(kind=bus_pb2.IDENTIFIER_KIND_PHONE, value="+33612345678"),  # weak: must not propagate
    ])  # fmt: skip
    sealed = seal(discovered.SerializeToString(), policy.result_public_key, discovered_binding(request_id, "policy", 1))
    done = completion(policy, 0)
    await harness.collector.on_result(
        AttemptEnded(done.request_id, done.system, done.attempt, done.outcome, 0, 0, 0, "", False, sealed)
    )
    claims = harness.bus.last(request_id, "claims")
    query = bus_pb2.Query.FromString(
        open_sealed(claims.sealed_query, CONNECTOR_KEY.private, query_binding(request_id, "claims", 1))
    )
    assert {(i.value, i.source) for i in query.identifiers} == {
        ("jean.dupont@example.com", "request"),
        ("3f1d2c4e-0000-4000-8000-000000000001", "policy"),
    }


async def test_a_failed_system_can_be_retried(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    query = harness.bus.last(request_id, "policy")
    with pytest.raises(FailedPrecondition, match="still working"):
        await harness.service.retry_system(request_id, "policy")
    await harness.collector.on_result(completion(query, 0, AttemptOutcome.FAILED, error="PermanentError"))
    view = await harness.service.get(request_id)
    assert states(view.systems) == {"policy": SystemState.FAILED} and view.systems[0].error == "PermanentError"
    await harness.service.retry_system(request_id, "policy")
    assert harness.bus.last(request_id, "policy").attempt == 2
    assert states((await harness.service.get(request_id)).systems) == {"policy": SystemState.DISPATCHED}


async def test_cancel_stops_systems_and_destroys_what_was_collected(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    query = harness.bus.last(request_id, "policy")
    await harness.collector.on_result(sealed_chunk(query, 0, [("insured_person", "p1", {"person_id": "p1"})]))
    view = await harness.service.cancel(request_id)
    assert view.state is RequestState.CANCELLED
    assert states(view.systems) == {"policy": SystemState.CANCELLED}
    assert harness.bus.cancels == [(request_id, "policy")]
    row = await harness.pool.fetchrow(
        "SELECT wrapped_private_key, sealed_identifiers, (SELECT count(*) FROM result_chunks WHERE request_id = $1)"
        " AS chunks FROM requests WHERE request_id = $1", uuid.UUID(request_id))  # fmt: skip
    assert row["wrapped_private_key"] is None and row["sealed_identifiers"] is None and row["chunks"] == 0
    with pytest.raises(FailedPrecondition):
        await harness.service.download(request_id)


async def test_deadline_extensions_are_bounded_and_need_a_reason(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    due = (await harness.service.get(request_id)).due_at
    with pytest.raises(InvalidArgument):
        await harness.service.extend_deadline(request_id, 1, "busy")
    extended = await harness.service.extend_deadline(request_id, 1, "the request covers ten years of claims")
    assert extended.due_at.month == (due.month % 12) + 1 and extended.extension_reason.startswith("the request")
    await harness.service.extend_deadline(request_id, 1, "the archives of 2019 are being restored")
    with pytest.raises(FailedPrecondition, match="two months"):
        await harness.service.extend_deadline(request_id, 1, "and another month, please, for reasons")


async def test_overdue_requests_are_listed_and_pages_do_not_overlap(harness: Harness) -> None:
    ids = [await submit(harness, ["policy"]) for _ in range(3)]
    harness.clock.now += timedelta(days=40)
    overdue, _ = await harness.service.list_requests([], True, None, 500, "")
    assert set(ids) <= {v.request_id for v in overdue}
    seen: list[str] = []
    token = ""
    while True:
        page, token = await harness.service.list_requests([RequestState.COLLECTING], False, None, 2, token)
        seen += [v.request_id for v in page]
        if not token:
            break
    assert len(seen) == len(set(seen)) and set(ids) <= set(seen)


async def test_a_subject_gets_a_bounded_number_of_requests_a_day(harness: Harness) -> None:
    limited = RequestService(
        harness.store, harness.collector, harness.changes, AuditLog(harness.pool),
        harness.settings.with_values(subject_requests_per_day=2), clock=harness.clock,
    )  # fmt: skip
    email = f"limited-{uuid.uuid4().hex[:8]}@example.com"
    harness.service = limited
    await submit(harness, ["policy"], emails=[email])
    await submit(harness, ["policy"], emails=[email.upper()])
    with pytest.raises(ResourceExhausted) as refused:
        await submit(harness, ["policy"], emails=[email])
    assert refused.value.retry_after_seconds > 0 and email not in refused.value.message
    harness.clock.now += timedelta(days=1, seconds=1)
    await submit(harness, ["policy"], emails=[email])


class RollBack(Exception):
    """Raised to undo what a test did to the shared database inside a transaction."""


async def test_appends_made_at_once_share_a_transaction_and_replicas_still_make_one_chain(harness: Harness) -> None:
    replicas = [AuditLog(harness.pool), AuditLog(harness.pool)]
    appends = [replicas[n % 2].append("caller", "test", None, {"n": n}) for n in range(8)]
    entries = await asyncio.gather(*appends)
    for replica in (0, 1):
        own = entries[replica::2]
        assert [entry.detail["n"] for entry in own] == list(range(replica, 8, 2))
        assert [entry.seq for entry in own] == list(range(own[0].seq, own[0].seq + 4))  # in order, no gap
        assert len({entry.at for entry in own}) == 1  # one transaction, one reading of the clock
    assert sorted(entry.seq for entry in entries) == list(
        range(min(e.seq for e in entries), max(e.seq for e in entries) + 1)
    )
    assert (await replicas[0].verify()).intact


async def test_an_entry_that_cannot_be_written_fails_alone(harness: Harness) -> None:
    audit = AuditLog(harness.pool)
    appends = [
        audit.append("caller", "test", None, {"n": 1}),
        audit.append("caller", "test", None, {"when": datetime.now(UTC)}),  # not JSON
        audit.append("caller", "test", "not-a-uuid"),
        audit.append("caller", "test", None, {"n": 2}),
    ]
    first, not_json, not_a_request, last = await asyncio.gather(*appends, return_exceptions=True)
    assert isinstance(not_json, TypeError) and isinstance(not_a_request, ValueError)
    assert isinstance(first, AuditEntry) and isinstance(last, AuditEntry) and last.seq == first.seq + 1
    assert (await audit.verify()).intact


async def test_every_action_is_in_the_audit_trail_and_tampering_is_detected(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    await harness.service.extend_deadline(request_id, 1, "many years of claims to gather", caller="dpo-console")
    await harness.service.cancel(request_id, caller="dpo-console")
    rows = await harness.pool.fetch(
        "SELECT seq, caller, action FROM audit_log WHERE request_id = $1 ORDER BY seq", uuid.UUID(request_id)
    )
    assert [(r["caller"], r["action"]) for r in rows] == [
        ("internal", "submit"), ("dpo-console", "extend"), ("dpo-console", "cancel"),
    ]  # fmt: skip
    assert (await AuditLog(harness.pool).verify()).intact
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await harness.pool.execute("DELETE FROM audit_log WHERE seq = $1", rows[1]["seq"])

    for tamper, finding in (
        ("UPDATE audit_log SET caller = 'someone-else' WHERE seq = $1", "was changed"),
        ("DELETE FROM audit_log WHERE seq = $1", "missing"),
    ):
        with pytest.raises(RollBack):
            async with harness.pool.acquire() as conn, conn.transaction():
                await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only")
                await conn.execute(tamper, rows[1]["seq"])
                report = await verify_chain(conn)
                assert not report.intact and finding in " ".join(report.problems)
                raise RollBack
    assert (await AuditLog(harness.pool).verify()).intact


async def test_archives_expire_and_old_requests_are_purged(harness: Harness) -> None:
    request_id = await submit(harness, ["policy"])
    query = harness.bus.last(request_id, "policy")
    await harness.collector.on_result(sealed_chunk(query, 0, [("insured_person", "p1", {"person_id": "p1"})]))
    await harness.collector.on_result(completion(query, 1))
    await archive_of(harness, request_id)
    harness.clock.now += timedelta(days=harness.settings.archive_ttl_days, seconds=1)
    archives, _ = await harness.service.purge()
    assert archives >= 1
    with pytest.raises(NotFound, match="expired"):
        await harness.service.download(request_id)
    assert await harness.pool.fetchval(
        "SELECT count(*) FROM archive_chunks WHERE request_id = $1", uuid.UUID(request_id)
    ) == 0  # fmt: skip
    assert (await harness.service.get(request_id)).state is RequestState.READY
    harness.clock.now += timedelta(days=harness.settings.request_retention_days)
    _, purged = await harness.service.purge()
    assert purged >= 1
    with pytest.raises(NotFound):
        await harness.service.get(request_id)


# The state machine under failures and races (each test names what went wrong before) --------------

PERSON_ID = "3f1d2c4e-0000-4000-8000-000000000001"


def discovered(query: SentQuery, *found: tuple["bus_pb2.IdentifierKind.ValueType", str]) -> bytes:
    """Discovered identifiers (bus kind, value), sealed as the connector seals them."""
    message = bus_pb2.Discovered(identifiers=[bus_pb2.Identifier(kind=k, value=v) for k, v in found])
    binding = discovered_binding(query.request_id, query.system, query.attempt)
    return seal(message.SerializeToString(), query.result_public_key, binding)


def completion_with(query: SentQuery, chunks: int, sealed_discovered: bytes) -> AttemptEnded:
    return AttemptEnded(query.request_id, query.system, query.attempt, AttemptOutcome.COMPLETED, chunks, 0, 0, "",
                        False, sealed_discovered)  # fmt: skip


async def complete(h: Harness, request_id: str, system: str) -> SentQuery:
    query = h.bus.last(request_id, system)
    await h.collector.on_result(sealed_chunk(query, 0, [("insured_person", "p1", {"person_id": "p1"})]))
    await h.collector.on_result(completion(query, 1))
    return query


async def identifiers_of(h: Harness, request_id: str) -> set[tuple[str, str]]:
    sealed = (await h.store.secrets(request_id)).sealed_identifiers
    assert sealed is not None
    return {(i.kind.value, i.value) for i in RequestKeys(h.settings.require_master_key()).open_identifiers(
        request_id, sealed)}  # fmt: skip


def queried(h: Harness, query: SentQuery) -> set[tuple[int, str]]:
    plain = open_sealed(query.sealed_query, CONNECTOR_KEY.private,
                        query_binding(query.request_id, query.system, query.attempt))  # fmt: skip
    return {(i.kind, i.value) for i in bus_pb2.Query.FromString(plain).identifiers}


async def test_a_redelivered_completion_finishes_what_a_failure_interrupted(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the completion was committed first; when the merge failed, the redelivery did nothing."""
    request_id = await submit(harness, ["claims", "policy"])
    policy = harness.bus.last(request_id, "policy")
    event = completion_with(policy, 0, discovered(policy, (bus_pb2.IDENTIFIER_KIND_PERSON_ID, PERSON_ID)))

    async def database_blip(*args: object) -> bool:
        raise ConnectionResetError("connection reset")

    with monkeypatch.context() as patch:
        patch.setattr(harness.store, "update_identifiers", database_blip)
        with pytest.raises(ConnectionResetError):
            await harness.collector.on_result(event)
    assert states((await harness.service.get(request_id)).systems)["policy"] is SystemState.COMPLETED
    await harness.collector.on_result(event)  # Kafka delivers it again: nothing was committed
    claims = harness.bus.last(request_id, "claims")
    assert (bus_pb2.IDENTIFIER_KIND_PERSON_ID, PERSON_ID) in queried(harness, claims)


async def test_the_idle_sweep_moves_along_a_request_whose_next_step_was_lost(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: no sweep looked at a collecting request with pending systems: stuck until a restart."""
    request_id = await submit(harness, ["claims", "policy"])
    policy = harness.bus.last(request_id, "policy")

    async def crash(*args: object) -> None:
        raise ConnectionResetError("the replica died here")

    with monkeypatch.context() as patch:
        patch.setattr(harness.collector, "advance", crash)
        with pytest.raises(ConnectionResetError):
            await harness.collector.on_result(
                completion_with(policy, 0, discovered(policy, (bus_pb2.IDENTIFIER_KIND_PERSON_ID, PERSON_ID)))
            )
    harness.clock.now += timedelta(seconds=2)
    await harness.collector.resume_idle_requests(timedelta(seconds=5))
    assert [q for q in harness.bus.queries if q.system == "claims" and q.request_id == request_id] == []
    harness.clock.now += timedelta(minutes=1)
    await harness.collector.resume_idle_requests(timedelta(seconds=5))
    claims = harness.bus.last(request_id, "claims")
    assert (bus_pb2.IDENTIFIER_KIND_PERSON_ID, PERSON_ID) in queried(harness, claims)

    with monkeypatch.context() as patch:  # the last system completes, and the assembly is never scheduled
        patch.setattr(harness.collector, "advance", crash)
        with pytest.raises(ConnectionResetError):
            await complete(harness, request_id, "claims")
    assert request_id not in harness.collected
    harness.clock.now += timedelta(minutes=1)
    await harness.collector.resume_idle_requests(timedelta(seconds=5))
    assert request_id in harness.collected


async def test_a_long_assembly_renews_its_lease_and_is_not_taken_over(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the lease was never renewed: a build longer than it was claimed again and thrown away."""
    request_id = await submit(harness, ["policy"])
    query = harness.bus.last(request_id, "policy")
    for sequence in range(6):
        await harness.collector.on_result(sealed_chunk(query, sequence, [("policy", f"c{sequence}", {"n": sequence})]))
    await harness.collector.on_result(completion(query, 6))
    assembler = Assembler(harness.store, harness.settings.with_values(assembly_lease_seconds=1.0))
    chunks = harness.store.iter_chunks

    async def slow_chunks(*args: str | int) -> AsyncIterator[bytes]:
        async for chunk in chunks(*args):  # type: ignore[arg-type]
            await asyncio.sleep(0.25)  # a slow source: the build lasts three times the lease
            yield chunk

    monkeypatch.setattr(harness.store, "iter_chunks", slow_chunks)
    build = asyncio.create_task(assembler.assemble(request_id))
    takeovers = 0
    while not build.done():  # what every replica's sweep does, often
        if request_id in await harness.store.stale_assemblies():
            takeovers += 1
            await assembler.assemble(request_id)
        await asyncio.wait([build], timeout=0.05)
    await build
    view = await harness.service.get(request_id)
    assert view.state is RequestState.READY and view.archive is not None
    assert (takeovers, view.archive.version) == (0, 1)
    versions = await harness.pool.fetch(
        "SELECT DISTINCT version FROM archive_chunks WHERE request_id = $1", uuid.UUID(request_id))  # fmt: skip
    assert [r["version"] for r in versions] == [1]


async def test_a_stale_builder_never_fails_nor_deletes_a_published_archive(harness: Harness) -> None:
    """Before: fail_request and discard_archive_version were unconditional."""
    request_id = await submit(harness, ["policy"])
    await complete(harness, request_id, "policy")
    claim = await harness.store.claim_assembly(request_id, 60)
    assert claim is not None and claim.version == 1  # builder A, which then stalls
    await harness.pool.execute(
        "UPDATE requests SET assembly_lease_until = now() - interval '1 second' WHERE request_id = $1",
        uuid.UUID(request_id),
    )
    await harness.assembler.assemble(request_id)  # builder B takes over: version 2 is published
    assert not await harness.store.fail_request(request_id, 1, "the archive could not be built: A's error")
    await harness.store.discard_archive_version(request_id, 2)
    view = await harness.service.get(request_id)
    assert view.state is RequestState.READY and view.archive is not None and view.archive.version == 2
    download = await harness.service.download(request_id)
    assert len(b"".join([chunk async for chunk in download.chunks])) == view.archive.size_bytes


async def test_cancel_during_assembly_leaves_no_archive_behind(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: the builder went on writing archive chunks for a cancelled request."""
    request_id = await submit(harness, ["policy"])
    await complete(harness, request_id, "policy")
    add = harness.store.add_archive_chunk
    cancelled = asyncio.Event()

    async def add_after_cancel(*args: object) -> None:
        await cancelled.wait()
        await add(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(harness.store, "add_archive_chunk", add_after_cancel)
    build = asyncio.create_task(harness.assembler.assemble(request_id))
    async with asyncio.timeout(10):
        while (await harness.service.get(request_id)).state is not RequestState.ASSEMBLING:
            await asyncio.wait([build], timeout=0.01)
    await harness.service.cancel(request_id)
    cancelled.set()
    await build
    assert (await harness.service.get(request_id)).state is RequestState.CANCELLED
    assert await harness.pool.fetchval(
        "SELECT count(*) FROM archive_chunks WHERE request_id = $1", uuid.UUID(request_id)) == 0  # fmt: skip


async def test_a_late_timeout_sweep_never_asks_a_completed_system_again(harness: Harness) -> None:
    """Before: the retry checked only the attempt number: the completed system was dispatched again."""
    request_id = await submit(harness, ["policy"])
    harness.clock.now += timedelta(seconds=31)
    now = harness.clock()
    expired = [r for r in await harness.store.expired_attempts(now, now + timedelta(seconds=30))
               if r.request_id == request_id]  # fmt: skip
    assert [(r.system, r.attempt) for r in expired] == [("policy", 1)]
    assert request_id not in {r.request_id for r in await harness.store.expired_attempts(now, now)}, "claimed once"
    await complete(harness, request_id, "policy")  # meanwhile, the completion is consumed
    await harness.collector.retry_or_end(request_id, "policy", 1, SystemState.TIMED_OUT, "silent")
    view = await harness.service.get(request_id)
    assert states(view.systems) == {"policy": SystemState.COMPLETED} and view.systems[0].attempts == 1
    assert [q.attempt for q in harness.bus.queries if q.request_id == request_id] == [1]


async def test_retry_system_never_lands_in_a_claimed_assembly(harness: Harness) -> None:
    """Before: a RetrySystem that read COLLECTING reset a system after the assembly was claimed."""
    request_id = await submit(harness, ["policy"])
    await complete(harness, request_id, "policy")
    claim = await harness.store.claim_assembly(request_id, 60)
    assert claim is not None and claim.version == 1  # another replica took the assembly
    with pytest.raises(FailedPrecondition):
        await harness.store.reset_system(request_id, "policy")  # this replica's RetrySystem, a moment late
    await harness.assembler._build(request_id, claim)
    view = await harness.service.get(request_id)
    assert view.state is RequestState.READY and states(view.systems) == {"policy": SystemState.COMPLETED}


async def test_two_retries_of_a_ready_request_keep_the_key_the_query_was_sealed_to(harness: Harness) -> None:
    """Before: the second reopen replaced the request key after the first dispatch used the first one."""
    request_id = await submit(harness, ["policy"])
    await complete(harness, request_id, "policy")
    await harness.assembler.assemble(request_id)
    second_key = KeyPair.generate()
    await harness.service.retry_system(request_id, "policy")
    with pytest.raises(FailedPrecondition):  # a second caller that read READY before the first reopened
        await harness.store.reopen_for_retry(request_id, second_key.public, b"wrapped")
    assert harness.bus.last(request_id, "policy").result_public_key == (
        await harness.store.secrets(request_id)).public_key  # fmt: skip
    await complete(harness, request_id, "policy")
    files = await archive_of(harness, request_id)
    assert json.loads(files.read("data/policy/insured_person.json")) == [{"person_id": "p1"}]


async def test_slow_downloads_hold_no_database_connection(harness: Harness) -> None:
    """Before: each download held a pooled connection in an open transaction until its end."""
    request_id = await submit(harness, ["policy"])
    await complete(harness, request_id, "policy")
    await harness.assembler.assemble(request_id)
    downloads = [await harness.service.download(request_id) for _ in range(12)]  # more than the pool holds
    first_chunks = [await anext(d.chunks) for d in downloads]  # each client reads a chunk, then stalls
    async with harness.pool.acquire(timeout=1.0) as connection:
        assert await connection.fetchval("SELECT 1") == 1
    rest = [b"".join([chunk async for chunk in d.chunks]) for d in downloads]
    archive = (await harness.service.get(request_id)).archive
    assert archive is not None and {len(a + b) for a, b in zip(first_chunks, rest, strict=True)} == {
        archive.size_bytes}  # fmt: skip


async def test_a_retried_submit_is_the_same_request_after_a_new_connector_appears(harness: Harness) -> None:
    """Before: the content digest covered the resolved systems: the retry was refused (ALREADY_EXISTS)."""
    key = f"test:{uuid.uuid4()}"
    first, created = await harness.service.submit(raw_submission(harness, [], key=key))
    assert created
    await heartbeat(harness, f"new{uuid.uuid4().hex[:8]}", accepts=("email",))
    again, created = await harness.service.submit(raw_submission(harness, [], key=key))
    assert not created and again.request_id == first.request_id


async def test_an_archive_built_after_a_purge_can_be_downloaded(harness: Harness) -> None:
    """Before: the purge mark stayed: the new archive was stored but never served, nor purged."""
    request_id = await submit(harness, ["policy"])
    await complete(harness, request_id, "policy")
    await harness.assembler.assemble(request_id)
    expired = harness.clock() + timedelta(days=harness.settings.archive_ttl_days, seconds=1)
    assert await harness.store.purge_expired_archives(expired) >= 1  # (the assembler's clock is the real one)
    await harness.service.retry_system(request_id, "policy")
    await complete(harness, request_id, "policy")
    files = await archive_of(harness, request_id)
    assert json.loads(files.read("data/policy/insured_person.json")) == [{"person_id": "p1"}]


async def test_concurrent_merges_of_discoveries_keep_every_identifier(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: two merges at once (two replicas, or two results) read, then wrote: one was lost."""
    await both_asked_at_once(harness)
    request_id = await submit(harness, ["crm", "policy"])
    secrets = harness.store.secrets

    async def slow_secrets(request_id: str) -> RequestSecrets:
        found = await secrets(request_id)
        await asyncio.sleep(0.05)  # widens the window between a read and its write
        return found

    monkeypatch.setattr(harness.store, "secrets", slow_secrets)
    policy, crm = harness.bus.last(request_id, "policy"), harness.bus.last(request_id, "crm")
    await asyncio.gather(
        harness.collector.on_result(completion_with(policy, 0, discovered(
            policy, (bus_pb2.IDENTIFIER_KIND_PERSON_ID, PERSON_ID)))),
        harness.collector.on_result(completion_with(crm, 0, discovered(
            crm, (bus_pb2.IDENTIFIER_KIND_VISITOR_ID, "cookie-123456789")))),
    )  # fmt: skip
    assert {("person_id", PERSON_ID), ("visitor_id", "cookie-123456789")} <= await identifiers_of(harness, request_id)


async def test_a_system_is_not_asked_again_for_what_it_found_itself(harness: Harness) -> None:
    """Before: CRM reported the person_id first, so policy, which had found the same one, was asked
    again with it and returned the same records (in the benchmark, 1.8 policy attempts a request)."""
    await both_asked_at_once(harness)
    request_id = await submit(harness, ["crm", "policy"])
    policy, crm = harness.bus.last(request_id, "policy"), harness.bus.last(request_id, "crm")
    person = (bus_pb2.IDENTIFIER_KIND_PERSON_ID, PERSON_ID)
    await harness.collector.on_result(completion_with(crm, 0, discovered(crm, person)))
    await harness.collector.on_result(completion_with(policy, 0, discovered(policy, person)))
    assert harness.bus.last(request_id, "policy").attempt == 1, "policy found the person_id itself"
    assert harness.bus.last(request_id, "crm").attempt == 1
    assert states((await harness.service.get(request_id)).systems) == {
        "crm": SystemState.COMPLETED,
        "policy": SystemState.COMPLETED,
    }
    assert harness.collected == [request_id]


async def test_a_system_is_asked_again_when_something_it_did_not_find_turns_up(harness: Harness) -> None:
    await both_asked_at_once(harness)
    request_id = await submit(harness, ["crm", "policy"])
    policy, crm = harness.bus.last(request_id, "policy"), harness.bus.last(request_id, "crm")
    await harness.collector.on_result(completion_with(policy, 0, discovered(policy)))  # policy found nothing
    await harness.collector.on_result(
        completion_with(crm, 0, discovered(crm, (bus_pb2.IDENTIFIER_KIND_PERSON_ID, PERSON_ID)))
    )
    again = harness.bus.last(request_id, "policy")
    assert again.attempt == 2 and (bus_pb2.IDENTIFIER_KIND_PERSON_ID, PERSON_ID) in queried(harness, again)


async def test_discovered_identifiers_are_normalised_bounded_and_never_another_persons(harness: Harness) -> None:
    """Before: taken verbatim, unbounded, and a second NIR or person_id was searched everywhere."""
    nir = "185057800604" + "8"
    nir += f"{nir_key(nir):02d}"
    other_nir = "2850578006048"
    other_nir += f"{nir_key(other_nir):02d}"
    other_person = "3f1d2c4e-0000-4000-8000-000000000002"
    request_id = await submit(harness, ["claims", "policy"], person_ids=[PERSON_ID], nir=[nir])
    policy = harness.bus.last(request_id, "policy")
    found = [
        (bus_pb2.IDENTIFIER_KIND_EMAIL, " Jean.Dupont@Example.COM"),  # the request's own, once normalised
        (bus_pb2.IDENTIFIER_KIND_EMAIL, "Jean.Pro@Example.COM"),
        (bus_pb2.IDENTIFIER_KIND_PERSON_ID, "not-a-uuid"),
        (bus_pb2.IDENTIFIER_KIND_PERSON_ID, other_person.upper()),  # not the person_id the request named
        (bus_pb2.IDENTIFIER_KIND_NIR, other_nir),  # a second NIR: someone else's
        *[(bus_pb2.IDENTIFIER_KIND_VISITOR_ID, f"cookie-{n:08d}") for n in range(15)],
    ]
    await harness.collector.on_result(completion_with(policy, 0, discovered(policy, *found)))
    known = await identifiers_of(harness, request_id)
    assert {value for kind, value in known if kind == "email"} == {"jean.dupont@example.com", "jean.pro@example.com"}
    assert {value for kind, value in known if kind == "person_id"} == {PERSON_ID}
    assert {value for kind, value in known if kind == "nir"} == {nir}
    assert len([value for kind, value in known if kind == "visitor_id"]) == MAX_DISCOVERED_PER_KIND
    conflicts = harness.collector._metrics.discovered_conflicts
    assert conflicts.labels("policy", "person_id")._value.get() == 1  # counted for the operators
    assert conflicts.labels("policy", "nir")._value.get() == 1


async def test_every_run_of_attempts_gets_the_whole_budget(harness: Harness) -> None:
    """Before: the budget compared the attempt number: a retried system had no second attempt."""
    request_id = await submit(harness, ["policy"])
    for _ in range(3):
        harness.clock.now += timedelta(seconds=31)
        await harness.collector.expire_attempts()
    assert states((await harness.service.get(request_id)).systems) == {"policy": SystemState.TIMED_OUT}
    await harness.service.retry_system(request_id, "policy")
    attempts = []
    for _ in range(3):
        attempts.append(harness.bus.last(request_id, "policy").attempt)
        harness.clock.now += timedelta(seconds=31)
        await harness.collector.expire_attempts()
    assert attempts == [4, 5, 6]
    assert states((await harness.service.get(request_id)).systems) == {"policy": SystemState.TIMED_OUT}


async def test_the_query_deadline_is_the_attempt_deadline_not_the_silence_timeout(harness: Harness) -> None:
    """Before: dispatch time + system_timeout_seconds: a long search failed however much progress it reported."""
    request_id = await submit(harness, ["policy"])
    query = harness.bus.last(request_id, "policy")
    assert query.deadline == harness.clock() + timedelta(seconds=harness.settings.attempt_deadline_seconds)
    harness.clock.now += timedelta(seconds=31)
    await harness.collector.expire_attempts()
    assert harness.bus.last(request_id, "policy").attempt == 2, "silence still times an attempt out"


async def test_a_failed_send_ensures_the_command_topic_and_sends_once_more(harness: Harness) -> None:
    """Before: a send refused because the broker had lost the topic cost the request an attempt."""
    harness.bus.failing_sends = 1
    request_id = await submit(harness, ["policy"], emails=[f"topic-{uuid.uuid4().hex[:8]}@example.com"])
    assert harness.bus.ensured == ["policy", "policy"]
    assert harness.bus.last(request_id, "policy").attempt == 1


async def test_a_send_failing_twice_ensures_the_topic_again_at_the_next_attempt(harness: Harness) -> None:
    """Before: the created topics were cached for good: a broker that lost them was never given them back."""
    harness.bus.failing_sends = 2
    with pytest.raises(BusError):
        await submit(harness, ["policy"], emails=[f"topic-{uuid.uuid4().hex[:8]}@example.com"])
    request_id = (await harness.service.list_requests([], False, None, 1, ""))[0][0].request_id
    assert harness.bus.ensured == ["policy", "policy"]
    harness.clock.now += timedelta(seconds=31)
    await harness.collector.expire_attempts()
    assert harness.bus.ensured == ["policy", "policy", "policy"]
    assert harness.bus.last(request_id, "policy").attempt == 2


async def test_the_default_systems_are_those_whose_connector_is_alive(harness: Harness) -> None:
    """Before: every system ever seen, so a connector retired months ago was asked and timed out."""
    retired = f"old{uuid.uuid4().hex[:8]}"
    await heartbeat(harness, retired, sent_at=harness.clock() - timedelta(days=90))
    view, _ = await harness.service.submit(raw_submission(harness, []))
    assert retired not in {s.system for s in view.systems} and {"policy", "claims"} <= {s.system for s in view.systems}
    named, created = await harness.service.submit(raw_submission(harness, [retired]))
    assert created and states(named.systems) == {retired: SystemState.DISPATCHED}


async def both_asked_at_once(h: Harness) -> None:
    """Policy and CRM each may find what the other lacks, and neither all the other may: both are
    asked in the first round."""
    await heartbeat(h, "policy", discovers=("person_id", "nir"))
    await heartbeat(h, "crm", accepts=("email", "person_id", "visitor_id"), discovers=("person_id", "visitor_id"))


async def heartbeat(
    h: Harness,
    system: str,
    accepts: tuple[str, ...] = ("email", "person_id", "nir"),
    discovers: tuple[str, ...] = (),
    sent_at: datetime | None = None,
) -> None:
    await h.collector.on_heartbeat(HeartbeatReceived(
        system, "test-instance", "1", CONNECTOR_KEY.public, CONNECTOR_KEY.key_id, sent_at or h.clock(), accepts,
        discovers, 5))  # fmt: skip
