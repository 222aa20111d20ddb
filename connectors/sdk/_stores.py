"""Where a connector's data lives. The runtime opens the store and lends a connection to each search."""

import re
from collections.abc import AsyncIterator
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
        datetimes): `find` returns a cursor to read with `async for`; `distinct`, `find_one`,
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
