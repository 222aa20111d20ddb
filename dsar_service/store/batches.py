"""Concurrent calls of one statement, run as one statement: group commit for the store.

Under load the service makes the same small statement for many requests at once: the results
of a Kafka batch are handled request by request, concurrently, and each stores its chunk, notes
its completion and checks it. Every statement is a round trip with its own pool checkout, its
own parse and its own commit. A `Batches` runs the calls that arrive together as one statement
over arrays (`unnest`), and each caller gets its own row's answer:

- a call made while no batch runs starts one at the next turn of the event loop, so the calls
  made in the same turn (a whole Kafka batch's requests) go together;
- a call made while a batch runs waits for it to end and goes with the next one;
- a batch holds at most one call per key (a request's system, say): a second call with the same
  key goes with the next batch, after the first has committed, as it would have without
  batching. Calls with different keys never depend on each other's order.

Each caller still awaits its own statement's commit before it goes on, so whatever a step relied
on ("the chunk is stored before its check starts") holds as it did. A batch that fails is run
again one call at a time, so that a call whose values the database refuses fails alone, as its
own statement would have (only after an error that `alone_after` says was a refusal of the whole
batch, nothing of it written; any other error fails every call in the batch). A read is run
again call by call after any error (`read_batches`): it wrote nothing. A cancelled caller leaves
its batch running.
"""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg

Item = TypeVar("Item")
Answer = TypeVar("Answer")

MAX_BATCH = 500  # calls in one statement at most: bounds a statement's arrays


class Batches(Generic[Item, Answer]):
    """`await batches(item)`: `run` is called with the items of calls made together, and returns
    one answer per item, in order. Without a `key`, any calls may share a batch (reads). After an
    error for which `alone_after` is true, the batch's calls are run again one at a time."""

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[Sequence[Answer]]],
        key: Callable[[Item], Hashable] | None = None,
        max_batch: int = MAX_BATCH,
        alone_after: Callable[[Exception], bool] | None = None,
    ) -> None:
        self._run = run
        self._key = key
        self._alone_after = alone_after
        self._max_batch = max_batch
        self._waiting: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def __call__(self, item: Item) -> Answer:
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if self._runner is None:
            # A context of its own: the batch is no one caller's (its log fields, its trace).
            self._runner = asyncio.create_task(self._run_batches(), context=contextvars.Context())
        return await future

    async def _run_batches(self) -> None:
        batch: list[tuple[Item, asyncio.Future[Answer]]] = []
        try:
            await asyncio.sleep(0)  # the calls of this turn of the loop join the first batch
            while self._waiting:
                batch = self._next_batch()
                if not batch:
                    continue
                try:
                    await self._answer(batch)
                except Exception as error:
                    if len(batch) > 1 and self._alone_after and self._alone_after(error):
                        await self._answer_alone(batch)  # one call's bad value must not fail the others
                    else:
                        _fail(batch, error)
        finally:
            self._runner = None
            for _, future in [*batch, *self._waiting]:  # only when cancelled (the service stopping)
                if not future.done():
                    future.cancel()
            self._waiting.clear()

    async def _answer_alone(self, batch: list[tuple[Item, "asyncio.Future[Answer]"]]) -> None:
        for call in batch:
            if call[1].done():  # its caller was cancelled meanwhile
                continue
            try:
                await self._answer([call])
            except Exception as error:
                _fail([call], error)

    async def _answer(self, batch: list[tuple[Item, "asyncio.Future[Answer]"]]) -> None:
        """Run the batch and give each call its answer; raises if it fails (the calls wait on)."""
        try:
            answers = list(await self._run([item for item, _ in batch]))
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        if len(answers) != len(batch):
            raise RuntimeError(f"a batch of {len(batch)} calls got {len(answers)} answers")
        for (_, future), answer in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(answer)

    def _next_batch(self) -> list[tuple[Item, "asyncio.Future[Answer]"]]:
        """The oldest waiting calls, at most one per key and `max_batch` in all; the rest stay."""
        batch: list[tuple[Item, asyncio.Future[Answer]]] = []
        later: list[tuple[Item, asyncio.Future[Answer]]] = []
        keys: set[Hashable] = set()
        for call in self._waiting:
            item, future = call
            if future.done():  # its caller was cancelled
                continue
            key = self._key(item) if self._key else None
            if len(batch) >= self._max_batch or (key is not None and key in keys):
                later.append(call)
            else:
                keys.add(key)
                batch.append(call)
        self._waiting = later
        return batch


def _fail(batch: list[tuple[Any, "asyncio.Future[Any]"]], error: Exception) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(error)


def statement_batches(
    run: Callable[[list[Item]], Awaitable[Sequence[Answer]]], key: Callable[[Item], Hashable] | None = None
) -> Batches[Item, Answer]:
    """Batches of one SQL statement: a batch the database refused is run again call by call."""
    return Batches(run, key, alone_after=refused_whole)


def read_batches(run: Callable[[list[Item]], Awaitable[Sequence[Answer]]]) -> Batches[Item, Answer]:
    """Batches of one read: a batch that fails for any reason is run again call by call. A read
    writes nothing, so running it again is harmless, and one request's row that cannot be
    decoded then fails its own caller only."""
    return Batches(run, alone_after=_any_error)


def _any_error(error: Exception) -> bool:
    return True


def refused_whole(error: Exception) -> bool:
    """Whether a statement was refused whole, nothing of it written: by the server (a lost
    connection aside: the statement may have been committed), or before it was sent (asyncpg's
    InterfaceError: a value it cannot encode, say)."""
    if isinstance(error, asyncpg.PostgresConnectionError):
        return False
    return isinstance(error, asyncpg.PostgresError | asyncpg.InterfaceError)


def columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    """A batch's rows (never none) as column lists, for `unnest($1::…[], $2::…[], …)`."""
    return [list(column) for column in zip(*rows, strict=True)]
