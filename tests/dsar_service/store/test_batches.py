"""Calls made together run as one batch; a key is in a batch once; errors and cancellations stay contained."""

import asyncio

import asyncpg
import pytest

from dsar_service.store.batches import Batches, read_batches, refused_whole


class Recorder:
    """A batch function that notes each batch it ran, and answers each item doubled."""

    def __init__(self, fail_on: int | None = None, hold: asyncio.Event | None = None) -> None:
        self.batches: list[list[int]] = []
        self._fail_on = fail_on
        self._hold = hold

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        if self._hold is not None:
            await self._hold.wait()
        if self._fail_on in items:
            raise RuntimeError(f"item {self._fail_on} broke the statement")
        return [2 * item for item in items]


async def test_calls_made_together_run_as_one_batch_and_each_gets_its_own_answer() -> None:
    run = Recorder()
    batches = Batches(run, key=lambda item: item)
    assert await asyncio.gather(*(batches(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1, 2, 3, 4]]
    assert await batches(7) == 14  # alone: a batch of one
    assert run.batches[-1] == [7]


async def test_a_key_goes_once_in_a_batch_and_its_second_call_waits_for_the_next() -> None:
    run = Recorder()
    batches = Batches(run, key=lambda item: item % 10)
    assert list(await asyncio.gather(batches(1), batches(11), batches(2), batches(21))) == [2, 22, 4, 42]
    assert run.batches == [[1, 2], [11], [21]]


async def test_without_a_key_any_calls_go_together() -> None:
    run = Recorder()
    batches = Batches(run)
    assert list(await asyncio.gather(batches(1), batches(1), batches(2))) == [2, 2, 4]
    assert run.batches == [[1, 1, 2]]


async def test_calls_made_while_a_batch_runs_go_together_in_the_next() -> None:
    hold = asyncio.Event()
    run = Recorder(hold=hold)
    batches = Batches(run, key=lambda item: item)
    first = asyncio.ensure_future(batches(1))
    await asyncio.sleep(0.01)
    assert run.batches == [[1]]  # running, held
    later = asyncio.ensure_future(asyncio.gather(batches(2), batches(3)))
    await asyncio.sleep(0.01)
    hold.set()
    assert await first == 2 and list(await later) == [4, 6]
    assert run.batches == [[1], [2, 3]]


async def test_a_call_that_breaks_its_batch_fails_alone() -> None:
    """The batch is run again one call at a time: only the call the database refuses fails."""
    hold = asyncio.Event()
    run = Recorder(fail_on=2, hold=hold)
    batches = Batches(run, key=lambda item: item, alone_after=lambda error: isinstance(error, RuntimeError))
    failing = asyncio.ensure_future(asyncio.gather(batches(1), batches(2), batches(3), return_exceptions=True))
    await asyncio.sleep(0.01)
    next_one = asyncio.ensure_future(batches(4))
    hold.set()
    one, two, three = await failing
    assert (one, three) == (2, 6) and isinstance(two, RuntimeError)
    assert await next_one == 8
    assert run.batches == [[1, 2, 3], [1], [2], [3], [4]]


async def test_another_error_fails_every_call_of_the_batch() -> None:
    """A connection lost, say: the statement may have been written, so its calls are not run again."""
    run = Recorder(fail_on=2)
    batches = Batches(run, key=lambda item: item, alone_after=lambda error: isinstance(error, KeyError))
    outcomes = await asyncio.gather(batches(1), batches(2), return_exceptions=True)
    assert all(isinstance(outcome, RuntimeError) for outcome in outcomes)
    assert run.batches == [[1, 2]]


async def test_a_read_that_fails_is_run_again_call_by_call_whatever_the_error() -> None:
    """One request's row that cannot be decoded (a ValueError, not the database's refusal) fails
    its own caller only: a read wrote nothing, so the others' reads are simply made again."""

    class Undecodable(Recorder):
        async def __call__(self, items: list[int]) -> list[int]:
            self.batches.append(items)
            if 2 in items:
                raise ValueError("request 2's row has a state this version does not know")
            return [2 * item for item in items]

    run = Undecodable()
    batches = read_batches(run)
    one, two, three = await asyncio.gather(batches(1), batches(2), batches(3), return_exceptions=True)
    assert (one, three) == (2, 6) and isinstance(two, ValueError)
    assert run.batches == [[1, 2, 3], [1], [2], [3]]


def test_a_refusal_is_told_from_a_lost_connection() -> None:
    assert refused_whole(asyncpg.UniqueViolationError("duplicate key")) and refused_whole(asyncpg.DataError("bad"))
    assert refused_whole(asyncpg.InterfaceError("cannot perform operation: another operation is in progress"))
    assert not refused_whole(asyncpg.ConnectionDoesNotExistError("connection was closed"))
    assert not refused_whole(OSError("reset by peer"))


async def test_a_cancelled_caller_leaves_the_others_their_answers() -> None:
    run = Recorder()
    batches = Batches(run, key=lambda item: item)
    cancelled = asyncio.ensure_future(batches(1))
    others = asyncio.ensure_future(asyncio.gather(batches(2), batches(3)))
    cancelled.cancel()
    assert list(await others) == [4, 6]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert run.batches == [[2, 3]]


async def test_stopping_the_batches_cancels_every_call_waiting_for_an_answer() -> None:
    """The service stopping while a refused batch is run again call by call: the calls not run
    yet end cancelled too, as do those waiting for the next batch."""
    hold = asyncio.Event()

    async def refuse_pairs(items: list[int]) -> list[int]:
        if len(items) > 1:
            raise RuntimeError("refused")
        await hold.wait()
        return items

    batches = Batches(refuse_pairs, key=lambda item: item, alone_after=lambda error: True)
    calls = [asyncio.ensure_future(batches(item)) for item in (1, 2)]
    await asyncio.sleep(0.01)  # the pair refused; 1 runs alone, held
    calls.append(asyncio.ensure_future(batches(3)))
    await asyncio.sleep(0.01)
    runner = batches._runner
    assert runner is not None
    runner.cancel()
    for call in calls:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, 1)


async def test_a_batch_is_cut_at_its_size_and_a_wrong_count_of_answers_is_an_error() -> None:
    run = Recorder()
    batches = Batches(run, key=lambda item: item, max_batch=2)
    assert await asyncio.gather(*(batches(i) for i in range(5))) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1], [2, 3], [4]]

    async def one_short(items: list[int]) -> list[int]:
        return items[1:]

    short = Batches(one_short, key=lambda item: item)
    with pytest.raises(RuntimeError, match="a batch of 2 calls got 1 answers"):
        await asyncio.gather(short(1), short(2))
