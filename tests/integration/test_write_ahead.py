"""Writing a system's part of the archive ahead, against the real service database.

A system that completes while others of its request are still at work has its part of the
archive written at once (Collector's `on_completed_before_others` -> Assembler.write_ahead); the
build splices that part in instead of reading the system's chunks again. Checked here:

- the part is used: the build reads only the other system's chunks, and the archive is the one
  built without writing ahead (same files, same data, same CSV, hashes that verify);
- a part of attempt 1 is not used once the system was asked again: the archive holds attempt 2;
- a part whose write fails gives no part: the build writes the system itself and fails the
  request with its usual error;
- a system that completes last, or whose answer is below WRITE_AHEAD_FROM_BYTES, is not written
  ahead;
- an attempt still streaming is followed from its chunk FOLLOW_FROM_SEQUENCE on: its part's JSON
  follows the chunks as they are stored, and the archive is the same; a followed attempt that
  fails gives no part (the next attempt is followed in its turn);
- a build waiting for a part renews its lease; a followed attempt completed with a chunk missing
  fails its part at once; a part written for another declaration of the system's datasets is not
  used; a part whose spool does not read back is dropped and the archive written again.

The connector's side is played by the test, as in test_collection.py, whose helpers are reused.
Which task reads a system's sealed chunks tells the build (the test's own task, awaiting
`assemble`) from a write ahead (a task of its own).
"""

import asyncio
import contextlib
import io
import json
import logging
import os
import secrets
import time
import uuid
import zipfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pyrage
import pytest

from dsar_common.settings import Settings
from dsar_service.archive import SpoolChain, verify_zip
from dsar_service.archive import spool as archive_spool
from dsar_service.bus import AttemptOutcome, ChunkReceived, HeartbeatReceived
from dsar_service.model import DatasetInfo, FieldInfo, RequestState, SystemState
from dsar_service.requests import assembly
from dsar_service.requests.ahead import PartAhead, PartKey
from dsar_service.requests.assembly import Assembler
from dsar_service.requests.collection import Collector
from dsar_service.requests.service import RequestService
from dsar_service.store import AuditLog, ChangeFeed, RequestStore, SystemRow, open_pool
from tests.integration.test_collection import (
    CONNECTOR_KEY,
    PERSON_ID,
    Clock,
    Harness,
    RecordingBus,
    SentQuery,
    completion,
    heartbeat,
    sealed_chunk,
    states,
    submit,
)
from tests.support.rpc import until
from tests.support.servers import database_of_its_own

Record = tuple[str, str, dict[str, object]]  # (dataset, key, fields), as sealed_chunk takes them


def payments(first: int, count: int) -> list[Record]:
    """Premium payments, each with a kilobyte of text that deflates poorly."""
    return [
        ("premium_payment", f"pay{n}", {"payment_id": n, "amount": n * 1.5, "note": secrets.token_hex(512)})
        for n in range(first, first + count)
    ]


# Policy's answer in the first test: three chunks, two datasets, about 1.2 MB of text, so that
# its part spans more than one block of its spool.
LARGE_POLICY_ANSWER: list[list[Record]] = [
    [("insured_person", "p1", {"person_id": PERSON_ID, "first_name": "Jean", "last_name": "Dupont-Émile"})],
    payments(0, 600),
    payments(600, 600),
]
CLAIMS_ANSWER: list[list[Record]] = [
    [("claim", f"c{n}", {"claim_id": f"c{n}", "status": "open", "amount": 100 + n}) for n in range(3)]
]
ATTEMPT_1_ANSWER: list[list[Record]] = [[("insured_person", "old", {"person_id": "old", "first_name": "Jean"})]]
ATTEMPT_2_ANSWER: list[list[Record]] = [
    [("insured_person", "new", {"person_id": "new", "first_name": "Jean"})],
    [("premium_payment", "pay9", {"payment_id": 9})],
]
SMALL_ANSWER: list[list[Record]] = [[("insured_person", "p1", {"person_id": PERSON_ID})]]


@dataclass
class AheadHarness(Harness):
    """test_collection's harness, with a collector that writes ahead, noting the systems it writes."""

    completed_before_others: list[PartKey] = field(default_factory=list)


@pytest.fixture(scope="module")
async def write_ahead_database(settings: Settings) -> AsyncIterator[str]:
    """A service database of this module's own (its connectors' keys are the test's), dropped at the end."""
    async with database_of_its_own(settings.database_url, "dsar_write_ahead") as url:
        yield url


@pytest.fixture
async def h(settings: Settings, write_ahead_database: str) -> AsyncIterator[AheadHarness]:
    """Policy (which discovers person ids) and claims; both are asked at once for a subject whose
    person id is known. Write-ahead threshold: the production one, unless a test lowers it."""
    settings = settings.with_values(
        database_url=write_ahead_database,
        system_timeout_seconds=30.0,
        max_attempts=3,
        subject_requests_per_day=10_000,
    )
    async with open_pool(settings.database_url) as pool, ChangeFeed.listening(settings.database_url) as changes:
        store, bus, clock = RequestStore(pool), RecordingBus(), Clock()
        assembler = Assembler(store, settings)
        collected: list[str] = []
        early: list[PartKey] = []

        def completed_before_others(row: SystemRow) -> None:
            early.append((row.request_id, row.system, row.attempt))
            assembler.write_ahead(row)

        collector = Collector(
            store,
            bus,
            settings,
            on_collected=collected.append,
            on_completed_before_others=completed_before_others,
            on_chunk_stored=assembler.follow,
            clock=clock,
        )
        service = RequestService(store, collector, changes, AuditLog(pool), settings, clock=clock)
        harness = AheadHarness(
            settings, changes, store, bus, collector, service, assembler, clock, collected,
            pyrage.x25519.Identity.generate(), pool, early,
        )  # fmt: skip
        await heartbeat(harness, "policy", discovers=("person_id",))
        await heartbeat(harness, "claims")
        yield harness


# Helpers ----------------------------------------------------------------------------------------


@dataclass
class ChunkReads:
    """Sealed chunks read, as (request, system, attempt): by the build, and by writes ahead."""

    by_build: list[PartKey] = field(default_factory=list)
    ahead: list[PartKey] = field(default_factory=list)

    def of(self, request_id: str) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """(by the build, ahead) for one request, as (system, attempt)."""
        return (
            [(s, a) for r, s, a in self.by_build if r == request_id],
            [(s, a) for r, s, a in self.ahead if r == request_id],
        )


def count_chunk_reads(h: AheadHarness, monkeypatch: pytest.MonkeyPatch) -> ChunkReads:
    """Wrap RequestStore.iter_chunks and chunks_of; a read from the calling task (the test, which
    awaits `assemble` itself) is the build's, any other is a write ahead's."""
    reads = ChunkReads()
    build_task = asyncio.current_task()
    iter_chunks, chunks_of = h.store.iter_chunks, h.store.chunks_of

    def note(request_id: str, system: str, attempt: int) -> None:
        by_build = asyncio.current_task() is build_task
        (reads.by_build if by_build else reads.ahead).append((request_id, system, attempt))

    async def counted_iter_chunks(request_id: str, system: str, attempt: int) -> AsyncIterator[bytes]:
        note(request_id, system, attempt)
        async for chunk in iter_chunks(request_id, system, attempt):
            yield chunk

    async def counted_chunks_of(request_id: str, attempts: Mapping[str, int]) -> dict[str, list[bytes]]:
        for system, attempt in attempts.items():
            note(request_id, system, attempt)
        return await chunks_of(request_id, attempts)

    monkeypatch.setattr(h.store, "iter_chunks", counted_iter_chunks)
    monkeypatch.setattr(h.store, "chunks_of", counted_chunks_of)
    return reads


def record_writes_ahead(h: AheadHarness, monkeypatch: pytest.MonkeyPatch) -> dict[PartKey, str]:
    """Wrap Assembler._write_part: how each write ahead ended ("part", "none", or the error's type)."""
    outcomes: dict[PartKey, str] = {}
    write_part = h.assembler._write_part

    async def recorded(request_id: str, system: str, attempt: int, following: bool = False) -> PartAhead | None:
        key = (request_id, system, attempt)
        try:
            part = await write_part(request_id, system, attempt, following)
        except Exception as error:
            outcomes[key] = type(error).__name__
            raise
        outcomes[key] = "none" if part is None else "part"
        return part

    monkeypatch.setattr(h.assembler, "_write_part", recorded)
    return outcomes


def write_ahead_from(monkeypatch: pytest.MonkeyPatch, threshold: int) -> None:
    """Write ahead the systems whose sealed chunks reach `threshold` bytes."""
    monkeypatch.setattr(assembly, "WRITE_AHEAD_FROM_BYTES", threshold)


def sealed_answer(query: SentQuery, answer: list[list[Record]]) -> list[ChunkReceived]:
    return [sealed_chunk(query, sequence, records) for sequence, records in enumerate(answer)]


async def deliver(h: AheadHarness, query: SentQuery, chunks: list[ChunkReceived]) -> None:
    """The connector's answer to `query`: its chunks, then its completion."""
    for chunk in chunks:
        await h.collector.on_result(chunk)
    await h.collector.on_result(completion(query, len(chunks)))


async def answer(h: AheadHarness, request_id: str, system: str, records: list[list[Record]]) -> SentQuery:
    """The system answers its last query with `records`, in chunks, and completes."""
    query = h.bus.last(request_id, system)
    await deliver(h, query, sealed_answer(query, records))
    return query


async def submit_asking_both(h: AheadHarness) -> str:
    """A request to policy and claims, with the subject's person id known: both are asked at once."""
    request_id = await submit(h, ["claims", "policy"], person_ids=[PERSON_ID])
    assert states((await h.service.get(request_id)).systems) == {
        "claims": SystemState.DISPATCHED,
        "policy": SystemState.DISPATCHED,
    }
    return request_id


async def built_archive(h: AheadHarness, request_id: str) -> bytes:
    """Assemble the request; the decrypted ZIP of its archive, which must be READY."""
    await h.assembler.assemble(request_id)
    view = await h.service.get(request_id)
    assert view.state is RequestState.READY, view.error
    download = await h.service.download(request_id)
    encrypted = b"".join([chunk async for chunk in download.chunks])
    return bytes(pyrage.decrypt(encrypted, [h.identity]))


def zip_names(archive: bytes) -> set[str]:
    with zipfile.ZipFile(io.BytesIO(archive)) as files:
        return set(files.namelist())


def data_and_schemas(archive: bytes) -> dict[str, object]:
    """The archive's data files (JSON parsed, CSV as text) and schemas, by path."""
    found: dict[str, object] = {}
    with zipfile.ZipFile(io.BytesIO(archive)) as files:
        for name in files.namelist():
            if name.startswith(("data/", "schemas/")):
                raw = files.read(name)
                found[name] = raw.decode("utf-8") if name.endswith(".csv") else json.loads(raw)
    return found


def manifest_entries(archive: bytes, prefix: str) -> list[dict[str, object]]:
    """The manifest's entries (path, size, SHA-256…) of the files under `prefix`."""
    with zipfile.ZipFile(io.BytesIO(archive)) as files:
        manifest = json.loads(files.read("manifest.json"))
    return [entry for entry in manifest["files"] if str(entry["path"]).startswith(prefix)]


def json_file(archive: bytes, path: str) -> object:
    with zipfile.ZipFile(io.BytesIO(archive)) as files:
        return json.loads(files.read(path))


def data_files(archive: bytes) -> set[str]:
    return {name for name in zip_names(archive) if name.startswith("data/")}


# Tests ------------------------------------------------------------------------------------------


async def test_a_system_completed_before_the_others_is_spliced_and_the_archive_is_the_same(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)

    write_ahead_from(monkeypatch, 1)
    ahead_id = await submit_asking_both(h)
    await answer(h, ahead_id, "policy", LARGE_POLICY_ANSWER)
    assert h.completed_before_others == [(ahead_id, "policy", 1)], "claims is still at work"
    await answer(h, ahead_id, "claims", CLAIMS_ANSWER)
    assert h.collected == [ahead_id]
    ahead = await built_archive(h, ahead_id)
    assert writes == {(ahead_id, "policy", 1): "part"}
    assert reads.of(ahead_id) == (
        [("claims", 1)],  # the build read claims (both passes from chunks held), never policy
        [("policy", 1)],  # the write ahead read policy once: the CSV twins were written alongside
    )

    write_ahead_from(monkeypatch, 10**12)  # the same answers, written by the build
    inline_id = await submit_asking_both(h)
    await answer(h, inline_id, "policy", LARGE_POLICY_ANSWER)
    await answer(h, inline_id, "claims", CLAIMS_ANSWER)
    inline = await built_archive(h, inline_id)
    # more than HELD_CHUNKS_BYTES in all: the build streams each system, once per pass
    assert reads.of(inline_id) == ([("claims", 1), ("claims", 1), ("policy", 1), ("policy", 1)], [])
    assert len(writes) == 1

    assert zip_names(ahead) == zip_names(inline)
    assert data_files(ahead) == {
        f"data/{path}.{ext}"
        for path in ("policy/insured_person", "policy/premium_payment", "claims/claim")
        for ext in ("json", "csv")
    }
    assert data_and_schemas(ahead) == data_and_schemas(inline)
    assert manifest_entries(ahead, "data/") == manifest_entries(inline, "data/"), "same sizes and SHA-256"
    payments = json_file(ahead, "data/policy/premium_payment.json")
    assert isinstance(payments, list) and [p["payment_id"] for p in payments] == list(range(1200))
    for archive in (ahead, inline):
        report = verify_zip(archive)
        assert report.problems == [] and report.records == 1 + 1200 + 3


async def test_a_part_of_an_earlier_attempt_is_not_used(h: AheadHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Policy's attempt 1 is written ahead; policy is asked again, and its attempt 2 completes
    last: the build writes attempt 2 itself, and drops attempt 1's part."""
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)
    write_ahead_from(monkeypatch, 1)
    request_id = await submit_asking_both(h)
    await answer(h, request_id, "policy", ATTEMPT_1_ANSWER)
    await h.service.retry_system(request_id, "policy")
    assert h.bus.last(request_id, "policy").attempt == 2
    await answer(h, request_id, "claims", CLAIMS_ANSWER)
    await answer(h, request_id, "policy", ATTEMPT_2_ANSWER)
    assert h.completed_before_others == [(request_id, "policy", 1), (request_id, "claims", 1)]
    stale = (request_id, "policy", 1)
    assert stale in h.assembler._ahead

    archive = await built_archive(h, request_id)
    assert writes == {stale: "part", (request_id, "claims", 1): "part"}
    by_build, _ = reads.of(request_id)
    assert by_build == [("policy", 2)], "claims was spliced; policy's attempt 2 read by the build"
    assert stale not in h.assembler._ahead, "the unused part is dropped after the build"
    assert json_file(archive, "data/policy/insured_person.json") == [{"person_id": "new", "first_name": "Jean"}]
    assert json_file(archive, "data/policy/premium_payment.json") == [{"payment_id": 9}]
    assert json_file(archive, "data/claims/claim.json") == [
        {"claim_id": f"c{n}", "status": "open", "status_label": None, "amount": 100 + n} for n in range(3)
    ]  # status_label: the archive puts the code in words, when it knows the code
    assert verify_zip(archive).problems == []


async def test_a_part_whose_write_fails_gives_none_and_the_build_fails_as_usual(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="dsar_service")
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)
    write_ahead_from(monkeypatch, 1)
    request_id = await submit_asking_both(h)
    policy = h.bus.last(request_id, "policy")
    sealed_for_sequence_1 = sealed_chunk(policy, 1, SMALL_ANSWER[0]).sealed_records
    await deliver(h, policy, [ChunkReceived(request_id, "policy", 1, 0, 1, sealed_for_sequence_1)])
    assert h.completed_before_others == [(request_id, "policy", 1)]
    await answer(h, request_id, "claims", CLAIMS_ANSWER)

    await h.assembler.assemble(request_id)  # does not raise
    view = await h.service.get(request_id)
    assert view.state is RequestState.FAILED and "could not be built" in view.error
    assert writes == {(request_id, "policy", 1): "SealError"}
    assert "a part written ahead failed (SealError); the build will write it" in caplog.messages
    by_build, _ = reads.of(request_id)
    assert ("policy", 1) in by_build, "no part: the build read policy's chunks itself"
    assert (request_id, "policy", 1) not in h.assembler._ahead


async def test_a_system_that_completes_last_is_not_written_ahead(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = record_writes_ahead(h, monkeypatch)
    write_ahead_from(monkeypatch, 1)
    alone_id = await submit(h, ["policy"], person_ids=[PERSON_ID])
    await answer(h, alone_id, "policy", SMALL_ANSWER)
    assert h.completed_before_others == [] and h.collected == [alone_id]

    both_id = await submit_asking_both(h)
    await answer(h, both_id, "policy", SMALL_ANSWER)
    await answer(h, both_id, "claims", CLAIMS_ANSWER)
    assert h.completed_before_others == [(both_id, "policy", 1)], "claims, last, is not written ahead"
    assert h.collected == [alone_id, both_id]
    for request_id in (alone_id, both_id):
        assert verify_zip(await built_archive(h, request_id)).problems == []
    assert writes == {(both_id, "policy", 1): "part"}


async def test_a_system_below_the_threshold_is_not_written_ahead(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy's sealed chunks one byte below WRITE_AHEAD_FROM_BYTES: no part; exactly at it: a part."""
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)
    outcomes: dict[str, list[PartKey]] = {}
    for case, margin in (("below", 1), ("at", 0)):
        request_id = await submit_asking_both(h)
        policy = h.bus.last(request_id, "policy")
        chunks = sealed_answer(policy, SMALL_ANSWER)
        write_ahead_from(monkeypatch, sum(len(c.sealed_records) for c in chunks) + margin)
        await deliver(h, policy, chunks)
        await answer(h, request_id, "claims", CLAIMS_ANSWER)
        row = next(s for s in (await h.service.get(request_id)).systems if s.system == "policy")
        assert row.bytes == assembly.WRITE_AHEAD_FROM_BYTES - margin
        archive = await built_archive(h, request_id)
        assert json_file(archive, "data/policy/insured_person.json") == [{"person_id": PERSON_ID}]
        outcomes[case] = [key for key in writes if key[0] == request_id]
        by_build, ahead = reads.of(request_id)
        if case == "below":
            assert (by_build, ahead) == ([("claims", 1), ("policy", 1)], []), "the build wrote policy"
        else:
            assert (by_build, ahead) == ([("claims", 1)], [("policy", 1)])
    assert len(h.completed_before_others) == 2, "the collector offered policy both times"
    assert [len(keys) for keys in outcomes.values()] == [0, 1]


async def test_an_attempt_still_streaming_is_followed_and_the_archive_is_the_same(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)
    monkeypatch.setattr(assembly, "FOLLOW_FROM_SEQUENCE", 1)
    followed_id = await submit_asking_both(h)
    query = h.bus.last(followed_id, "policy")
    chunks = sealed_answer(query, LARGE_POLICY_ANSWER)
    for chunk in chunks[:2]:
        await h.collector.on_result(chunk)  # the second one starts the part
    await asyncio.sleep(5 * assembly.FOLLOW_POLL_SECONDS)  # it reads what is stored, then waits for more
    assert (followed_id, "policy", 1) in h.assembler._ahead and writes == {}, "still writing"
    await h.collector.on_result(chunks[2])
    await h.collector.on_result(completion(query, len(chunks)))
    await answer(h, followed_id, "claims", CLAIMS_ANSWER)
    followed = await built_archive(h, followed_id)
    assert writes == {(followed_id, "policy", 1): "part"}
    assert reads.of(followed_id) == (
        [("claims", 1)],  # the build read claims only
        [],  # the part read nothing more: its JSON files and CSV twins followed the chunks
    )

    monkeypatch.setattr(assembly, "FOLLOW_FROM_SEQUENCE", 10**6)
    write_ahead_from(monkeypatch, 10**12)  # the same answers, written by the build
    inline_id = await submit_asking_both(h)
    await answer(h, inline_id, "policy", LARGE_POLICY_ANSWER)
    await answer(h, inline_id, "claims", CLAIMS_ANSWER)
    inline = await built_archive(h, inline_id)
    assert len(writes) == 1
    assert zip_names(followed) == zip_names(inline)
    assert data_and_schemas(followed) == data_and_schemas(inline)
    assert manifest_entries(followed, "data/") == manifest_entries(inline, "data/")
    assert not verify_zip(followed).problems


async def test_a_followed_attempt_that_fails_gives_no_part_and_the_next_one_is_followed_in_turn(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)
    monkeypatch.setattr(assembly, "FOLLOW_FROM_SEQUENCE", 1)
    request_id = await submit_asking_both(h)
    first = h.bus.last(request_id, "policy")
    for chunk in sealed_answer(first, LARGE_POLICY_ANSWER)[:2]:
        await h.collector.on_result(chunk)
    await h.collector.on_result(completion(first, 0, AttemptOutcome.FAILED, retryable=True, error="source away"))

    # the part following attempt 1 sees it failed at its next look (within FOLLOW_POLL_MAX_SECONDS);
    # otherwise a fast build would end first, and drop it unfinished
    async def attempt_1_written() -> bool:
        return (request_id, "policy", 1) in writes

    await until(attempt_1_written, 5, "the part following attempt 1 ends")
    second = h.bus.last(request_id, "policy")
    assert second.attempt == 2
    await deliver(h, second, sealed_answer(second, ATTEMPT_2_ANSWER))
    await answer(h, request_id, "claims", CLAIMS_ANSWER)
    archive = await built_archive(h, request_id)
    assert writes == {(request_id, "policy", 1): "AssemblyError", (request_id, "policy", 2): "part"}
    assert reads.of(request_id) == ([("claims", 1)], [])  # each attempt's chunks were followed only
    assert json_file(archive, "data/policy/insured_person.json") == [{"person_id": "new", "first_name": "Jean"}]
    assert (request_id, "policy", 1) not in h.assembler._ahead, "dropped after the build"


# Fixes from review (b7d20b5) --------------------------------------------------------------------


def slow_parts(h: AheadHarness, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Wrap Assembler._write_part: a part is handed over `seconds` after it is written."""
    write_part = h.assembler._write_part

    async def slow(request_id: str, system: str, attempt: int, following: bool = False) -> PartAhead | None:
        part = await write_part(request_id, system, attempt, following)
        await asyncio.sleep(seconds)
        return part

    monkeypatch.setattr(h.assembler, "_write_part", slow)


@dataclass
class LeaseSample:
    """The request's row as a watcher saw it while the build ran."""

    state: str
    lease_until: datetime | None
    stale: bool  # listed by store.stale_assemblies()


async def watch_lease(h: AheadHarness, request_id: str, samples: list[LeaseSample]) -> None:
    """Note the request's lease every 50 ms until cancelled."""
    while True:
        row = await h.pool.fetchrow(
            "SELECT state, assembly_lease_until FROM requests WHERE request_id = $1", uuid.UUID(request_id)
        )
        assert row is not None
        stale = request_id in await h.store.stale_assemblies()
        samples.append(LeaseSample(row["state"], row["assembly_lease_until"], stale))
        await asyncio.sleep(0.05)


async def test_a_build_waiting_for_a_part_renews_its_lease(h: AheadHarness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Policy's part is handed over a second after it is written, the lease lasts 0.3 s: while the
    build waits for the part, the lease moves on (renewed every 0.1 s) and the request is never
    stale (another replica would take it over); the build then splices the part."""
    reads = count_chunk_reads(h, monkeypatch)
    slow_parts(h, monkeypatch, 1.0)
    writes = record_writes_ahead(h, monkeypatch)  # noted once handed over
    monkeypatch.setattr(h.assembler, "_lease_seconds", 0.3)
    write_ahead_from(monkeypatch, 1)
    request_id = await submit_asking_both(h)
    await answer(h, request_id, "policy", SMALL_ANSWER)
    await answer(h, request_id, "claims", CLAIMS_ANSWER)
    assert (request_id, "policy", 1) in h.assembler._ahead and writes == {}, "the part is not handed over yet"

    samples: list[LeaseSample] = []
    watcher = asyncio.create_task(watch_lease(h, request_id, samples))
    started = time.monotonic()
    try:
        archive = await built_archive(h, request_id)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    assert time.monotonic() - started >= 0.5, "the build waited for the part"

    assembling = [s for s in samples if s.state == "assembling"]
    assert len(assembling) >= 10, samples
    assert not any(s.stale for s in assembling), "the lease ran out while the build waited for the part"
    leases = [s.lease_until for s in assembling if s.lease_until is not None]
    assert leases == sorted(leases) and len(set(leases)) >= 5, "renewed again and again"
    assert (leases[-1] - leases[0]).total_seconds() >= 0.5
    assert writes == {(request_id, "policy", 1): "part"}
    assert reads.of(request_id)[0] == [("claims", 1)], "the build spliced policy's part"
    assert json_file(archive, "data/policy/insured_person.json") == [{"person_id": PERSON_ID}]


async def test_a_followed_attempt_completed_with_a_chunk_missing_fails_its_part_at_once(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy's chunks 0, 1 and 3 are stored, and its completion announces 3 chunks: the system
    counts as complete. The part following it stops at the missing chunk 2 at once (not at its
    time-to-live); the build writes policy itself and fails the request as it would without
    writing ahead (chunk 3 does not open as the third chunk)."""
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)
    monkeypatch.setattr(assembly, "FOLLOW_FROM_SEQUENCE", 1)
    request_id = await submit_asking_both(h)
    policy = h.bus.last(request_id, "policy")
    answered: list[list[Record]] = [[("insured_person", f"p{n}", {"person_id": f"p{n}"})] for n in range(4)]
    chunks = sealed_answer(policy, answered)
    for chunk in (chunks[0], chunks[1], chunks[3]):
        await h.collector.on_result(chunk)  # chunk 1 starts the part
    key = (request_id, "policy", 1)
    assert key in h.assembler._ahead and writes == {}
    completed = time.monotonic()
    await h.collector.on_result(completion(policy, 3))
    row = next(s for s in (await h.service.get(request_id)).systems if s.system == "policy")
    assert row.state is SystemState.COMPLETED and row.records == 3, "3 chunks stored: whole"
    part = h.assembler._ahead._parts[key]
    await asyncio.wait({part}, timeout=3.0)
    assert part.done() and time.monotonic() - completed < 1.0, "the part failed at once"
    assert writes == {key: "AssemblyError"}

    await answer(h, request_id, "claims", CLAIMS_ANSWER)
    await h.assembler.assemble(request_id)
    view = await h.service.get(request_id)
    assert view.state is RequestState.FAILED
    assert view.error == "the archive could not be built: sealed bytes did not open"
    assert ("policy", 1) in reads.of(request_id)[0], "the build read policy's chunks itself"
    assert key not in h.assembler._ahead


async def announce_policy(h: AheadHarness, description: str, sent_at: datetime | None = None) -> None:
    """Policy's connector announces itself again (by default at the fixture's time), declaring its
    insured_person dataset with `description`."""
    person = DatasetInfo(
        "insured_person",
        "contract_management",
        description,
        ("person_id",),
        (FieldInfo("person_id", "provided", "contract_management", "The insured person's number"),),
    )
    await h.collector.on_heartbeat(
        HeartbeatReceived("policy", "test-instance", "1", CONNECTOR_KEY.public, CONNECTOR_KEY.key_id,
                          sent_at or h.clock(), ("email", "person_id", "nir"), ("person_id",), 5, (person,))
    )  # fmt: skip


async def written_part(h: AheadHarness, key: PartKey) -> PartAhead:
    """The part written ahead for `key`, once written; it stays there for the build to take."""
    part = await asyncio.shield(h.assembler._ahead._parts[key])
    assert part is not None
    return part


async def test_a_part_written_for_another_declaration_of_the_system_is_not_used(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy's part is written while its connector declares no datasets; then the connector is
    redeployed and declares insured_person: the build does not splice the old part, it writes
    policy itself, with the new declaration."""
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)
    write_ahead_from(monkeypatch, 1)
    request_id = await submit_asking_both(h)
    await answer(h, request_id, "policy", SMALL_ANSWER)
    key = (request_id, "policy", 1)
    assert (await written_part(h, key)).info.datasets == ()  # type: ignore[union-attr]
    await announce_policy(h, "The insured person, as the policy system knows them")
    h.assembler._catalog.forget()
    await answer(h, request_id, "claims", CLAIMS_ANSWER)

    archive = await built_archive(h, request_id)
    assert writes == {key: "part"}
    assert reads.of(request_id) == (
        [("claims", 1), ("policy", 1), ("policy", 1)],  # the build read policy itself, once per pass
        [("policy", 1)],  # as the part had, once: its CSV twins written alongside
    )
    schema = json_file(archive, "schemas/policy/insured_person.schema.json")
    assert isinstance(schema, dict)
    assert "The insured person, as the policy system knows them" in str(schema["description"])
    assert json_file(archive, "data/policy/insured_person.json") == [{"person_id": PERSON_ID}]
    assert key not in h.assembler._ahead
    assert verify_zip(archive).problems == []


def record_archive_chunks(h: AheadHarness, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Wrap RequestStore.add_archive_chunk: the archive chunks stored, as (version, sequence)."""
    stored: list[tuple[int, int]] = []
    add_archive_chunk = h.store.add_archive_chunk

    async def recorded(request_id: str, version: int, sequence: int, data: bytes) -> None:
        await add_archive_chunk(request_id, version, sequence, data)
        stored.append((version, sequence))

    monkeypatch.setattr(h.store, "add_archive_chunk", recorded)
    return stored


def big_claims(count: int) -> list[list[Record]]:
    """Claims' answer: `count` claims of a kilobyte of text each, 600 a chunk."""
    claims: list[Record] = [
        ("claim", f"c{n}", {"claim_id": f"c{n}", "note": secrets.token_hex(512)}) for n in range(count)
    ]
    return [claims[first : first + 600] for first in range(0, count, 600)]


async def test_a_part_whose_spool_does_not_read_back_is_dropped_and_the_archive_written_again(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Policy's part is written ahead, then a byte of its spool's file is altered. Claims (written
    by the build, first) is large enough for archive chunks to be stored before the build reaches
    policy's part, whose spool then raises SpoolError: the build logs it, drops that version's
    chunks and the parts, writes the archive again from the sealed chunks, and the request is
    READY with every record; only the published version's chunks remain."""
    caplog.set_level(logging.WARNING, logger="dsar_service")
    reads = count_chunk_reads(h, monkeypatch)
    writes = record_writes_ahead(h, monkeypatch)
    stored = record_archive_chunks(h, monkeypatch)
    monkeypatch.setattr(archive_spool, "SPOOL_BLOCK_BYTES", 64 * 1024)  # blocks on disk before it is read
    write_ahead_from(monkeypatch, 1)
    request_id = await submit_asking_both(h)
    await answer(h, request_id, "policy", LARGE_POLICY_ANSWER)
    key = (request_id, "policy", 1)
    spools = (await written_part(h, key)).spool
    assert isinstance(spools, SpoolChain), "the CSV twins were written alongside, in a spool of their own"
    spool = spools.spools[0]  # the JSON files'
    assert spool._blocks >= 1, "a block of the part is on disk"
    spool._file.flush()
    fd = spool._file.fileno()
    os.pwrite(fd, bytes([os.pread(fd, 1, 100)[0] ^ 0xFF]), 100)
    claims = big_claims(1200)
    await answer(h, request_id, "claims", claims)

    archive = await built_archive(h, request_id)
    assert writes == {key: "part"}
    assert f"a part written ahead failed request={request_id} (SpoolError); building without" in caplog.messages
    assert reads.of(request_id)[0] == 4 * [("claims", 1)] + 2 * [("policy", 1)], (
        "claims written by both tries (streamed: once per pass), policy by the second"
    )
    view = await h.service.get(request_id)
    assert view.archive is not None
    version = view.archive.version
    assert {v for v, _ in stored} == {version}, "both tries write the version claimed"
    tries = [n for n, (_, sequence) in enumerate(stored) if sequence == 0]
    assert len(tries) == 2 and tries[1] > 0, "the first try stored archive chunks before it failed"
    published = await h.pool.fetch(
        "SELECT version, sequence, length(data) AS size FROM archive_chunks WHERE request_id = $1"
        " ORDER BY version, sequence",
        uuid.UUID(request_id),
    )
    assert [(r["version"], r["sequence"]) for r in published] == stored[tries[1] :], "the second try's only"
    assert sum(r["size"] for r in published) == view.archive.size_bytes
    payments = json_file(archive, "data/policy/premium_payment.json")
    assert isinstance(payments, list) and [p["payment_id"] for p in payments] == list(range(1200))
    assert json_file(archive, "data/policy/insured_person.json") == [
        {"person_id": PERSON_ID, "first_name": "Jean", "last_name": "Dupont-Émile"}
    ]
    claimed = json_file(archive, "data/claims/claim.json")
    assert isinstance(claimed, list) and [c["claim_id"] for c in claimed] == [f"c{n}" for n in range(1200)]
    report = verify_zip(archive)
    assert report.problems == [] and report.records == 1 + 1200 + 1200
    assert key not in h.assembler._ahead


async def test_a_part_is_used_after_a_heartbeat_that_declares_the_same(
    h: AheadHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Policy's connector announces itself again, five seconds on, declaring the same datasets (as
    it does every `interval_seconds`): the part still fits the system, and the build splices it."""
    reads = count_chunk_reads(h, monkeypatch)
    write_ahead_from(monkeypatch, 1)
    request_id = await submit_asking_both(h)
    await answer(h, request_id, "policy", SMALL_ANSWER)
    await written_part(h, (request_id, "policy", 1))
    await heartbeat(h, "policy", discovers=("person_id",), sent_at=h.clock() + timedelta(seconds=5))
    h.assembler._catalog.forget()  # as the catalog does by itself a second after its last read
    await answer(h, request_id, "claims", CLAIMS_ANSWER)
    await built_archive(h, request_id)
    assert reads.of(request_id)[0] == [("claims", 1)], "the build spliced policy's part"
