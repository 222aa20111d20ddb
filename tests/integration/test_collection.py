"""Collection against the real service database, with the connector's side played by the test.

The bus is a recording fake (Kafka itself is exercised in test_access_request.py); the store,
the sealing, the state machine and the assembly are the real ones. Each test states the exact
records it expects in the archive.
"""

import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pyrage
import pytest

from dsar.bus.v1 import bus_pb2
from dsar_common.sealing import KeyPair, chunk_binding, open_sealed, query_binding, seal
from dsar_common.settings import Settings
from dsar_service.bus import AttemptEnded, AttemptOutcome, ChunkReceived, HeartbeatReceived, ProgressReported
from dsar_service.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from dsar_service.model import Kind, RequestState, SystemState
from dsar_service.requests.assembly import Assembler
from dsar_service.requests.collection import Collector
from dsar_service.requests.service import RequestService
from dsar_service.requests.subject import RawSubmission
from dsar_service.store import AuditLog, ChangeFeed, RequestStore, open_pool
from dsar_service.store.audit import verify_chain

CONNECTOR_KEY = KeyPair.generate()


@dataclass
class SentQuery:
    request_id: str
    system: str
    attempt: int
    result_public_key: bytes
    sealed_query: bytes


@dataclass
class RecordingBus:
    queries: list[SentQuery] = field(default_factory=list)
    cancels: list[tuple[str, str]] = field(default_factory=list)

    async def ensure_command_topic(self, system: str) -> None:
        return None

    async def send_query(self, *, request_id: str, system: str, attempt: int, result_public_key: bytes,
                         key_id: str, sealed_query: bytes, deadline: datetime) -> None:  # fmt: skip
        self.queries.append(SentQuery(request_id, system, attempt, result_public_key, sealed_query))

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


@pytest.fixture
async def harness(settings: Settings) -> AsyncIterator[Harness]:
    settings = settings.with_values(system_timeout_seconds=30.0, max_attempts=3, subject_requests_per_day=10_000)
    async with open_pool(settings.database_url) as pool, ChangeFeed.listening(settings.database_url) as changes:
        store, bus, clock, collected = RequestStore(pool), RecordingBus(), Clock(), []
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


async def submit(h: Harness, systems: list[str], **subject: list[str]) -> str:
    raw = RawSubmission(
        kind=Kind.ACCESS,
        emails=subject.get("emails", ["jean.dupont@example.com"]),
        phones=[],
        nir="",
        person_ids=[],
        policy_numbers=[],
        visitor_ids=[],
        candidate_ids=[],
        first_name="",
        last_name="",
        birth_date="",
        recipient=str(h.identity.to_public()),
        request_key=f"test:{uuid.uuid4()}",
        systems=systems,
    )
    view, created = await h.service.submit(raw)
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
    from dsar_common.sealing import discovered_binding

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
