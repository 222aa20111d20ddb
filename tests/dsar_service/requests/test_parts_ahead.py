"""PartsAhead: parts of archives written in the background, taken by the build, or dropped.

- take() waits for a part being written and hands it over once; a second take() finds nothing.
- start() refuses a key already there, and more than `limit` parts being written; at the limit,
  the oldest part already written gives way.
- A write that raises gives None, logged with the error's type only (its message may hold
  personal data).
- drop_request() cancels the request's running writes and closes the spools of its finished
  parts, and leaves other requests' parts alone.
- A part not taken within `ttl` of being written is dropped, its spool closed; a write still
  running is not cut short.
- A caller cancelled while waiting in take() leaks nothing: the write is cancelled, or the part
  it finished anyway has its spool closed.

The parts are real (an ArchiveBuilder over a SectionWriter into a SealedSpool); the spools record
whether they were closed.
"""

import asyncio
import contextlib
import gc
import logging
import weakref
from collections.abc import Awaitable, Callable

import pytest

from dsar_service.archive import ArchiveBuilder, SealedSpool, SectionWriter
from dsar_service.requests.ahead import PartAhead, PartKey, PartsAhead

REQUEST = "11111111-1111-4111-8111-111111111111"
OTHER_REQUEST = "22222222-2222-4222-8222-222222222222"
SECRET = "jean.dupont@example.com"

Write = Callable[[], Awaitable[PartAhead | None]]


class RecordingSpool(SealedSpool):
    """A real sealed spool that remembers whether it was closed."""

    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


def written_part(system: str = "policy") -> tuple[PartAhead, RecordingSpool]:
    """A system's part with one record, written as the assembler writes one ahead."""
    spool = RecordingSpool()
    builder = ArchiveBuilder(SectionWriter(spool.write), portability=False)
    builder.begin_system(system, ())
    builder.json_record("insured_person", b'{"person_id": "p1"}')
    builder.end_json_pass()
    builder.csv_record("insured_person", b'{"person_id": "p1"}')
    return PartAhead(builder.take_part(builder.end_system()), spool), spool


def key(request_id: str = REQUEST, system: str = "policy", attempt: int = 1) -> PartKey:
    return (request_id, system, attempt)


def ready(part: PartAhead | None) -> Write:
    """A write that gives `part` at once."""

    async def write() -> PartAhead | None:
        return part

    return write


@pytest.fixture
def release() -> asyncio.Event:
    """Set to let the writes of `blocked_write` finish."""
    return asyncio.Event()


def blocked_write(release: asyncio.Event, part: PartAhead, events: list[str]) -> Write:
    """A write that waits for `release`, then gives `part`; it records how it ended in `events`
    and, when cancelled, closes the part's spool itself (as Assembler._write_part does)."""

    async def write() -> PartAhead | None:
        try:
            await release.wait()
        except asyncio.CancelledError:
            events.append("cancelled")
            part.spool.close()
            raise
        events.append("finished")
        return part

    return write


async def settle() -> None:
    """Let tasks and done-callbacks scheduled so far run (cancellations, spools closed)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_take_waits_for_the_part_being_written_then_finds_nothing(release: asyncio.Event) -> None:
    parts = PartsAhead()
    part, spool = written_part()
    events: list[str] = []
    assert parts.start(key(), blocked_write(release, part, events))
    taking = asyncio.create_task(parts.take(key()))
    await settle()
    assert not taking.done(), "take() waits for the write"
    release.set()
    assert await asyncio.wait_for(taking, 1) is part
    assert events == ["finished"] and not spool.closed, "the caller owns the part, and closes it"
    assert key() not in parts
    assert await parts.take(key()) is None
    spool.close()


async def test_take_of_an_unknown_key_or_another_attempt_is_none() -> None:
    parts = PartsAhead()
    part, spool = written_part()
    assert parts.start(key(attempt=1), ready(part))
    assert await parts.take(key(attempt=2)) is None
    assert await parts.take(key(system="claims")) is None
    assert await parts.take(key(attempt=1)) is part
    spool.close()


async def test_start_refuses_a_key_already_there_and_more_than_the_limit_being_written() -> None:
    parts = PartsAhead(limit=2)
    release = asyncio.Event()
    first, first_spool = written_part()
    second, second_spool = written_part("claims")
    third, third_spool = written_part("crm")
    assert parts.start(key(), blocked_write(release, first, []))
    assert not parts.start(key(), ready(third)), "the key is already there"
    assert parts.start(key(system="claims"), blocked_write(release, second, []))
    assert not parts.start(key(system="crm"), ready(third)), "beyond the limit, both being written"
    assert key(system="crm") not in parts
    release.set()
    await settle()
    assert await parts.take(key()) is first, "the refused write did not replace the first"
    assert parts.start(key(system="crm"), ready(third)), "a part taken frees its place"
    assert await parts.take(key(system="crm")) is third
    assert await parts.take(key(system="claims")) is second
    for spool in (first_spool, second_spool, third_spool):
        spool.close()


async def test_at_the_limit_the_oldest_part_written_gives_way() -> None:
    parts = PartsAhead(limit=2)
    release = asyncio.Event()
    oldest, oldest_spool = written_part()
    writing, writing_spool = written_part("claims")
    newest, newest_spool = written_part("crm")
    assert parts.start(key(), ready(oldest))
    assert parts.start(key(system="claims"), blocked_write(release, writing, []))
    await settle()
    assert parts.start(key(system="crm"), ready(newest)), "the written part gives way"
    await settle()
    assert key() not in parts and oldest_spool.closed
    assert key(system="claims") in parts, "a part being written does not give way"
    release.set()
    assert await parts.take(key(system="claims")) is writing
    assert await parts.take(key(system="crm")) is newest
    for spool in (writing_spool, newest_spool):
        spool.close()


async def test_a_failing_write_gives_none_and_logs_its_type_only(caplog: pytest.LogCaptureFixture) -> None:
    async def failing() -> PartAhead | None:
        raise ValueError(f"no record for {SECRET}")

    parts = PartsAhead()
    with caplog.at_level(logging.WARNING, logger="dsar_service.requests.ahead"):
        assert parts.start(key(), failing)
        assert await parts.take(key()) is None
    (logged,) = [r for r in caplog.records if r.name == "dsar_service.requests.ahead"]
    assert logged.levelno == logging.WARNING and "ValueError" in logged.getMessage()
    assert logged.exc_info is None, "no traceback: it would carry the message"
    assert SECRET not in caplog.text and SECRET not in logging.Formatter().format(logged)


async def test_drop_request_cancels_running_writes_closes_finished_parts_and_spares_others(
    release: asyncio.Event,
) -> None:
    parts = PartsAhead()
    running, running_spool = written_part()
    finished, finished_spool = written_part("claims")
    other, other_spool = written_part()
    events: list[str] = []
    assert parts.start(key(), blocked_write(release, running, events))
    assert parts.start(key(system="claims"), ready(finished))
    assert parts.start(key(OTHER_REQUEST), ready(other))
    await settle()  # the ready writes have finished; the blocked one waits

    parts.drop_request(REQUEST)
    await settle()
    assert events == ["cancelled"] and running_spool.closed
    assert finished_spool.closed, "a finished part that was not taken has its spool closed"
    assert key() not in parts and key(system="claims") not in parts
    assert await parts.take(key(system="claims")) is None

    assert await parts.take(key(OTHER_REQUEST)) is other
    assert not other_spool.closed, "another request's part is left alone"
    other_spool.close()


async def test_drop_all_cancels_and_closes_every_part(release: asyncio.Event) -> None:
    parts = PartsAhead()
    running, running_spool = written_part()
    finished, finished_spool = written_part()
    events: list[str] = []
    assert parts.start(key(), blocked_write(release, running, events))
    assert parts.start(key(OTHER_REQUEST), ready(finished))
    await settle()
    parts.drop_all()
    await settle()
    assert events == ["cancelled"] and running_spool.closed and finished_spool.closed
    assert await parts.take(key()) is None and await parts.take(key(OTHER_REQUEST)) is None


async def test_a_part_not_taken_within_its_ttl_of_being_written_is_dropped_and_its_spool_closed(
    release: asyncio.Event,
) -> None:
    parts = PartsAhead(ttl=0.05)
    finished, finished_spool = written_part()
    running, running_spool = written_part("claims")
    events: list[str] = []
    assert parts.start(key(), ready(finished))
    assert parts.start(key(system="claims"), blocked_write(release, running, events))
    await asyncio.sleep(0.1)
    await settle()
    assert finished_spool.closed
    assert key() not in parts and await parts.take(key()) is None
    assert events == [] and key(system="claims") in parts, "a write still running (following) is not cut short"
    release.set()
    await settle()
    assert not running_spool.closed
    await asyncio.sleep(0.1)
    await settle()
    assert running_spool.closed and key(system="claims") not in parts, "its ttl counts from when it was written"


async def test_a_part_taken_before_its_ttl_is_not_closed_by_the_expiry() -> None:
    parts = PartsAhead(ttl=0.05)
    part, spool = written_part()
    assert parts.start(key(), ready(part))
    assert await parts.take(key()) is part
    await asyncio.sleep(0.1)
    await settle()
    assert not spool.closed, "the build holds the part: the expiry must not close it under it"
    spool.close()


async def test_a_part_taken_or_dropped_is_not_held_until_its_ttl() -> None:
    """Its expiry is cancelled: the timer held the part (a large answer's records: 13 MiB of
    redaction notes, measured) for `ttl` after the build took it."""
    parts = PartsAhead(ttl=600)
    for let_go in ("take", "drop_request"):
        part, spool = written_part()
        held = weakref.ref(part)
        assert parts.start(key(), ready(part))
        await settle()  # written: its expiry is set
        if let_go == "take":
            assert await parts.take(key()) is part
        else:
            parts.drop_request(REQUEST)
            await settle()
        spool.close()
        del part
        gc.collect()
        assert held() is None, f"the part is still held after {let_go}"


async def test_a_caller_cancelled_in_take_cancels_the_write(release: asyncio.Event) -> None:
    parts = PartsAhead()
    part, spool = written_part()
    events: list[str] = []
    assert parts.start(key(), blocked_write(release, part, events))
    taking = asyncio.create_task(parts.take(key()))
    await settle()
    taking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taking
    await settle()
    assert events == ["cancelled"] and spool.closed
    assert key() not in parts and await parts.take(key()) is None


async def test_a_caller_cancelled_in_take_closes_a_part_finished_regardless() -> None:
    """A write that completes its part as the cancellation arrives: the part's spool is closed."""
    parts = PartsAhead()
    part, spool = written_part()
    started = asyncio.Event()

    async def finishes_even_when_cancelled() -> PartAhead | None:
        started.set()
        with contextlib.suppress(asyncio.CancelledError):  # its last block is written: it gives the part
            await asyncio.Event().wait()
        return part

    assert parts.start(key(), finishes_even_when_cancelled)
    taking = asyncio.create_task(parts.take(key()))
    await asyncio.wait_for(started.wait(), 1)
    await settle()
    taking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await taking
    await settle()
    assert spool.closed, "nobody will take the part: its spool must not be left open"
