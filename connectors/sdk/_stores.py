"""Where a connector's data lives. The runtime opens the store and lends a connection to each search."""

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from connectors.sdk._errors import ConnectorDefinitionError

StoreKind = Literal["postgresql", "mongodb"]
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Store:
    """A store kind and a database name. Build one with `postgresql(...)` or `mongodb(...)`.

    What a search receives as `db`:
      - postgresql: an `asyncpg.Connection` borrowed from a pool for the whole attempt, inside a
        read-only, repeatable-read transaction the runtime opens: every dataset of one answer is
        read from one snapshot. Stream rows with `rows(db, sql, ...)` (a cursor); open no
        transaction of your own (it would be a savepoint: two more round trips for nothing).
      - mongodb: a PyMongo `AsyncDatabase` (`pymongo.asynchronous.database`). Its datetimes are
        naive, in UTC (PyMongo's default, about three times cheaper to decode than aware ones):
        a record encodes them as UTC; to compare one with an aware datetime, first
        `value.replace(tzinfo=datetime.UTC)`. Stream a collection's documents with
        `documents(db.name, filter, ...)`, which reads the next batch while you handle this one;
        `distinct`, `find_one`, `count_documents` and `aggregate` are coroutines to await.
    """

    kind: StoreKind
    database: str

    def __post_init__(self) -> None:
        if not _DATABASE_NAME.match(self.database):
            raise ConnectorDefinitionError(f"invalid database name {self.database!r}")


def postgresql(database: str) -> Store:
    """A PostgreSQL database, reached at `DSAR_SOURCE_POSTGRES_URL` + `/database`."""
    return Store("postgresql", database)


def mongodb(database: str) -> Store:
    """A MongoDB database on the server at `DSAR_SOURCE_MONGODB_URL`."""
    return Store("mongodb", database)


async def rows(db: Any, sql: str, *args: object, prefetch: int = 500) -> AsyncIterator[Any]:
    """A PostgreSQL query's rows, streamed by a cursor (`prefetch` rows per round trip) in the
    snapshot transaction the runtime lent `db` in."""
    async for row in db.cursor(sql, *args, prefetch=prefetch):
        yield row


BATCHES_AHEAD = 2  # MongoDB batches `documents` holds read ahead, at most
STOP_SECONDS = 2.0  # how long closing a search early waits for a batch being read


async def documents(
    collection: Any,
    filter: Mapping[str, Any],
    projection: Mapping[str, Any] | None = None,
    *,
    sort: Sequence[tuple[str, int]] | None = None,
    batch_size: int = 1000,
) -> AsyncIterator[dict[str, Any]]:
    """A MongoDB query's documents, streamed `batch_size` per round trip, reading ahead.

    A plain cursor asks for its next batch only once the last one is used up: the server then
    waits while the search handles the batch, and the search waits while the server reads the
    next. Here, when the answer does not fit in the first batch, a task keeps up to
    `BATCHES_AHEAD` batches read in advance, so the server's work and the search's overlap;
    memory stays a few batches. Closing the iteration (its end, a break, an error, a cancelled
    attempt) stops the task, then closes the cursor. The documents are the search's to change.
    """
    cursor = collection.find(filter, projection, batch_size=batch_size)
    if sort is not None:
        cursor = cursor.sort(list(sort))
    ahead: _ReadAhead | None = None
    try:
        batch = await cursor.to_list(batch_size)
        if cursor.alive:  # more than the first batch: read the next ones ahead
            ahead = _ReadAhead(cursor, batch_size)
        while batch:
            for document in batch:
                yield document
            if ahead is None:
                return
            batch = await ahead.next_batch()
    finally:
        if ahead is not None:
            await ahead.stop()
        await cursor.close()


class _ReadAhead:
    """A cursor's next batches, read by a task while the search handles the current one."""

    def __init__(self, cursor: Any, batch_size: int) -> None:
        self._cursor = cursor
        self._batch_size = batch_size
        self._batches: asyncio.Queue[list[Any] | BaseException] = asyncio.Queue()
        self._room = asyncio.Semaphore(BATCHES_AHEAD)
        self._reading = False  # a batch is being read (a round trip to the server)
        self._stopping = False
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while not self._stopping:
                await self._room.acquire()
                self._reading = True
                batch = await self._cursor.to_list(self._batch_size)
                self._reading = False
                self._batches.put_nowait(batch)
                if not batch:
                    return
        except BaseException as error:  # handed to the search, which raises it
            self._batches.put_nowait(error)
            if not isinstance(error, Exception):
                raise

    async def next_batch(self) -> list[Any]:
        """The next batch (empty at the end), or the error that stopped the reading."""
        taken = await self._batches.get()
        self._room.release()
        if isinstance(taken, BaseException):
            raise taken
        return taken

    async def stop(self) -> None:
        """Stop reading. A batch being read is let finish first (up to `STOP_SECONDS`): PyMongo
        leaves the socket of an operation cancelled midway open."""
        self._stopping = True
        if self._reading:
            await asyncio.wait([self._task], timeout=STOP_SECONDS)
        self._task.cancel()
        await asyncio.wait([self._task])  # its outcome is the search's already, or nobody's
