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
      - mongodb: a PyMongo `AsyncDatabase` (`pymongo.asynchronous.database`, timezone-aware
        datetimes). Stream a collection's documents with `documents(db.name, filter, ...)`,
        which reads the next batch while you handle this one; `distinct`, `find_one`,
        `count_documents` and `aggregate` are coroutines to await.
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
    memory stays a few batches. Closing the iteration early (a break, an error, a cancelled
    attempt) stops the task and closes the cursor. The documents are the search's to change.
    """
    cursor = collection.find(filter, projection, batch_size=batch_size)
    if sort is not None:
        cursor = cursor.sort(list(sort))
    try:
        first = await cursor.to_list(batch_size)
        if not cursor.alive:  # the whole answer: nothing to read ahead
            for document in first:
                yield document
            return
        async for document in _read_ahead(cursor, first, batch_size):
            yield document
    finally:
        await cursor.close()


async def _read_ahead(cursor: Any, first: list[Any], batch_size: int) -> AsyncIterator[Any]:
    """`first`, then the cursor's next batches, read by a task up to `BATCHES_AHEAD` ahead."""
    batches: asyncio.Queue[list[Any] | BaseException] = asyncio.Queue(BATCHES_AHEAD)

    async def read() -> None:
        try:
            while batch := await cursor.to_list(batch_size):
                await batches.put(batch)
            await batches.put([])
        except Exception as error:  # handed to the search, where it is raised
            await batches.put(error)

    reader = asyncio.create_task(read())
    try:
        batch: list[Any] | BaseException = first
        while True:
            if isinstance(batch, BaseException):
                raise batch
            if not batch:
                return
            for document in batch:
                yield document
            batch = await batches.get()
    finally:
        reader.cancel()
        await asyncio.wait([reader])  # its outcome is the search's already, or nobody's
