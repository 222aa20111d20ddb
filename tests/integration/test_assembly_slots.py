"""Streaming builds wait for one of a few slots, against the real service database.

A build whose systems' sealed chunks add up to more than HELD_CHUNKS_BYTES streams them, and
first takes one of MAX_CONCURRENT_STREAMING_BUILDS slots (`Assembler._streaming_slots`); a build
that holds its chunks never waits for them. Checked here, with the slots taken by the test:

- a streaming build waits, renewing its lease all the while (no other replica takes it over),
  while a small build goes through; once the slots are free it publishes the whole archive;
- a waiting build whose claim is lost (the request is cancelled) stops without publishing,
  whether it notices while waiting or once it got a slot, and gives its slot back;
- a waiting build whose task is cancelled takes no slot and leaks none, even when a slot is freed
  in the same tick, and its request is built again once its lease runs out.

The threshold is lowered so that a few kilobytes stream; the lease is short (LEASE_SECONDS) so
that renewals come every fifth of a second. The connector's side is played by the test, with
test_collection.py's helpers.
"""

import asyncio
import io
import json
import logging
import uuid
import zipfile
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import pyrage
import pytest

from dsar_common.settings import Settings
from dsar_service.model import RequestState
from dsar_service.requests import assembly
from dsar_service.requests.assembly import MAX_CONCURRENT_STREAMING_BUILDS, Assembler
from dsar_service.requests.collection import Collector
from dsar_service.requests.service import RequestService
from dsar_service.store import AuditLog, ChangeFeed, RequestStore, open_pool
from tests.integration.test_collection import (
    Clock,
    Harness,
    RecordingBus,
    archive_of,
    completion,
    heartbeat,
    sealed_chunk,
    submit,
)
from tests.support.rpc import until
from tests.support.servers import database_of_its_own

Record = tuple[str, str, dict[str, object]]  # (dataset, key, fields), as sealed_chunk takes them
StartBuild = Callable[[str], "asyncio.Task[None]"]

LEASE_SECONDS = 0.6  # renewed every LEASE_SECONDS / 3
WAIT_SECONDS = 5.0  # bound on what should take milliseconds: a test that fails, fails quickly


def payments(first: int, count: int) -> list[Record]:
    return [("premium_payment", f"pay{n}", {"payment_id": n, "amount": n * 1.5}) for n in range(first, first + count)]


LARGE_ANSWER: list[list[Record]] = [payments(0, 40), payments(40, 40), payments(80, 40)]
SMALL_ANSWER: list[list[Record]] = [payments(1000, 1)]


@pytest.fixture(scope="module")
async def slots_database(settings: Settings) -> AsyncIterator[str]:
    """A service database of this module's own (its connector's key is the test's), dropped at the end."""
    async with database_of_its_own(settings.database_url, "dsar_assembly_slots") as url:
        yield url


@pytest.fixture
async def h(settings: Settings, slots_database: str) -> AsyncIterator[Harness]:
    """One system, policy; the assembler's lease is LEASE_SECONDS."""
    settings = settings.with_values(
        database_url=slots_database,
        system_timeout_seconds=30.0,
        max_attempts=3,
        subject_requests_per_day=10_000,
        assembly_lease_seconds=LEASE_SECONDS,
    )
    async with open_pool(settings.database_url) as pool, ChangeFeed.listening(settings.database_url) as changes:
        store, bus, clock = RequestStore(pool), RecordingBus(), Clock()
        collected: list[str] = []
        collector = Collector(store, bus, settings, on_collected=collected.append, clock=clock)
        service = RequestService(store, collector, changes, AuditLog(pool), settings, clock=clock)
        harness = Harness(
            settings, changes, store, bus, collector, service, Assembler(store, settings), clock, collected,
            pyrage.x25519.Identity.generate(), pool,
        )  # fmt: skip
        await heartbeat(harness, "policy")
        yield harness


@pytest.fixture
async def start_build(h: Harness) -> AsyncIterator[StartBuild]:
    """Starts `h.assembler.assemble(request_id)` as a task; those left running are cancelled at the end."""
    tasks: list[asyncio.Task[None]] = []

    def start(request_id: str) -> asyncio.Task[None]:
        tasks.append(asyncio.create_task(h.assembler.assemble(request_id)))
        return tasks[-1]

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# Helpers ----------------------------------------------------------------------------------------


async def collected_request(h: Harness, answer: list[list[Record]]) -> str:
    """A request to policy, which answers with `answer` (one chunk per list) and completes."""
    request_id = await submit(h, ["policy"])
    query = h.bus.last(request_id, "policy")
    for sequence, records in enumerate(answer):
        await h.collector.on_result(sealed_chunk(query, sequence, records))
    await h.collector.on_result(completion(query, len(answer)))
    assert request_id in h.collected
    return request_id


async def sealed_bytes(h: Harness, request_id: str) -> int:
    return sum(system.bytes for system in (await h.service.get(request_id)).systems)


async def large_streams_small_is_held(h: Harness, monkeypatch: pytest.MonkeyPatch, large: str, small: str) -> None:
    """Lower HELD_CHUNKS_BYTES to the small request's sealed bytes: it is held, the large one streams."""
    monkeypatch.setattr(assembly, "HELD_CHUNKS_BYTES", await sealed_bytes(h, small))
    assert await sealed_bytes(h, large) > assembly.HELD_CHUNKS_BYTES


async def take_every_slot(slots: asyncio.Semaphore) -> None:
    for _ in range(MAX_CONCURRENT_STREAMING_BUILDS):
        await slots.acquire()
    assert slots.locked()


def release_every_slot(slots: asyncio.Semaphore) -> None:
    for _ in range(MAX_CONCURRENT_STREAMING_BUILDS):
        slots.release()


def waiting_builds(slots: asyncio.Semaphore) -> int:
    return sum(1 for waiter in slots._waiters or () if not waiter.done())


async def until_waiting_for_a_slot(slots: asyncio.Semaphore) -> None:
    async def a_build_waits() -> bool:
        return waiting_builds(slots) > 0

    await until(a_build_waits, WAIT_SECONDS, "a build waiting for a slot")


async def until_no_one_waits(slots: asyncio.Semaphore) -> None:
    """The slots' waiters gone (a cancelled acquire leaves a tick after its task is cancelled)."""

    async def no_waiters() -> bool:
        return not slots._waiters

    await until(no_waiters, WAIT_SECONDS, "no waiter left on the slots")


async def until_lease_runs_out(h: Harness, request_id: str) -> None:
    async def stale() -> bool:
        return request_id in await h.store.stale_assemblies()

    await until(stale, WAIT_SECONDS, "the lease of the cancelled build running out")


async def can_take_every_slot_at_once(slots: asyncio.Semaphore) -> bool:
    """Take every slot without waiting, then give them back."""
    try:
        async with asyncio.timeout(0.1):
            await take_every_slot(slots)
    except TimeoutError:
        return False
    release_every_slot(slots)
    return True


async def lease_until(h: Harness, request_id: str) -> datetime:
    lease = await h.pool.fetchval(
        "SELECT assembly_lease_until FROM requests WHERE request_id = $1", uuid.UUID(request_id)
    )
    assert isinstance(lease, datetime), "the request is not held by a build"
    return lease


async def archive_chunks(h: Harness, request_id: str) -> int:
    count = await h.pool.fetchval("SELECT count(*) FROM archive_chunks WHERE request_id = $1", uuid.UUID(request_id))
    return int(count)


async def state_of(h: Harness, request_id: str) -> RequestState:
    return (await h.service.get(request_id)).state


async def downloaded_archive(h: Harness, request_id: str) -> zipfile.ZipFile:
    """The decrypted ZIP of a request already READY."""
    download = await h.service.download(request_id)
    encrypted = b"".join([chunk async for chunk in download.chunks])
    return zipfile.ZipFile(io.BytesIO(pyrage.decrypt(encrypted, [h.identity])))


def payments_in(files: zipfile.ZipFile) -> list[object]:
    return list(json.loads(files.read("data/policy/premium_payment.json")))


def fields_of(answer: list[list[Record]]) -> list[object]:
    return [fields for chunk in answer for _, _, fields in chunk]


# Tests ------------------------------------------------------------------------------------------


async def test_a_streaming_build_waits_for_a_slot_renewing_its_lease_while_a_small_one_goes_through(
    h: Harness, monkeypatch: pytest.MonkeyPatch, start_build: StartBuild
) -> None:
    large_id = await collected_request(h, LARGE_ANSWER)
    small_id = await collected_request(h, SMALL_ANSWER)
    await large_streams_small_is_held(h, monkeypatch, large_id, small_id)
    slots = h.assembler._streaming_slots
    await take_every_slot(slots)

    large = start_build(large_id)
    await until_waiting_for_a_slot(slots)
    claimed_until = await lease_until(h, large_id)

    async with asyncio.timeout(WAIT_SECONDS):  # the small build does not queue behind the large one
        small_files = await archive_of(h, small_id)
    assert payments_in(small_files) == fields_of(SMALL_ANSWER)

    await asyncio.sleep(2 * LEASE_SECONDS)  # without renewals, the lease would have run out by now
    assert not large.done() and waiting_builds(slots) == 1
    assert await state_of(h, large_id) is RequestState.ASSEMBLING
    assert await lease_until(h, large_id) > claimed_until, "the lease moved forward while waiting"
    assert large_id not in await h.store.stale_assemblies(), "no other replica may take it over"
    assert await archive_chunks(h, large_id) == 0, "nothing written before a slot is free"

    release_every_slot(slots)
    async with asyncio.timeout(WAIT_SECONDS):
        await large
    assert await state_of(h, large_id) is RequestState.READY
    assert payments_in(await downloaded_archive(h, large_id)) == fields_of(LARGE_ANSWER)
    assert await can_take_every_slot_at_once(slots), "the large build gave its slot back"


@pytest.mark.parametrize("slots_freed_after_cancel", [False, True], ids=["noticed-while-waiting", "noticed-in-slot"])
async def test_a_waiting_build_whose_claim_is_lost_stops_without_publishing(
    h: Harness,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    start_build: StartBuild,
    slots_freed_after_cancel: bool,
) -> None:
    """The request is cancelled while its build waits for a slot (which moves the archive version
    on). The build notices at its next lease renewal, the slots still taken; or, the slots freed
    at once, it gets one and finds its claim gone when it writes."""
    caplog.set_level(logging.WARNING, logger="dsar_service")
    large_id = await collected_request(h, LARGE_ANSWER)
    monkeypatch.setattr(assembly, "HELD_CHUNKS_BYTES", 1)
    slots = h.assembler._streaming_slots
    await take_every_slot(slots)
    build = start_build(large_id)
    await until_waiting_for_a_slot(slots)

    await h.service.cancel(large_id)
    if slots_freed_after_cancel:
        release_every_slot(slots)
    async with asyncio.timeout(WAIT_SECONDS):
        await build  # stops by itself, without raising
    if not slots_freed_after_cancel:
        await until_no_one_waits(slots)
        assert slots._value == 0, "the slots are still the test's"
        release_every_slot(slots)

    assert await state_of(h, large_id) is RequestState.CANCELLED
    assert await archive_chunks(h, large_id) == 0
    assert any("its claim is gone" in message for message in caplog.messages)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "a lost claim is no failure"
    assert slots._value == MAX_CONCURRENT_STREAMING_BUILDS
    assert await can_take_every_slot_at_once(slots)


@pytest.mark.parametrize(
    "slot_freed",
    ["never", "just-before-cancel", "just-after-cancel"],
    ids=["slots-still-taken", "slot-freed-then-cancelled", "cancelled-then-slot-freed"],
)
async def test_a_build_cancelled_while_waiting_takes_no_slot_and_leaks_none(
    h: Harness, monkeypatch: pytest.MonkeyPatch, start_build: StartBuild, slot_freed: str
) -> None:
    """The build's task is cancelled (as at shutdown) while it waits; a slot freed in the same
    tick (no await in between) is handed to the build's acquire, which must give it back."""
    large_id = await collected_request(h, LARGE_ANSWER)
    monkeypatch.setattr(assembly, "HELD_CHUNKS_BYTES", 1)
    slots = h.assembler._streaming_slots
    await take_every_slot(slots)
    build = start_build(large_id)
    await until_waiting_for_a_slot(slots)

    if slot_freed == "just-before-cancel":
        slots.release()
    build.cancel()
    if slot_freed == "just-after-cancel":
        slots.release()
    with pytest.raises(asyncio.CancelledError):
        await build
    await until_no_one_waits(slots)

    freed_by_test = 0 if slot_freed == "never" else 1
    assert slots._value == freed_by_test, "the build holds no slot"
    for _ in range(MAX_CONCURRENT_STREAMING_BUILDS - freed_by_test):
        slots.release()
    assert slots._value == MAX_CONCURRENT_STREAMING_BUILDS
    assert await can_take_every_slot_at_once(slots)

    # The request is not stuck: once its lease runs out, a build takes it over and publishes it.
    assert await state_of(h, large_id) is RequestState.ASSEMBLING
    await until_lease_runs_out(h, large_id)
    files = await archive_of(h, large_id)
    assert payments_in(files) == fields_of(LARGE_ANSWER)
