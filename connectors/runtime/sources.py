"""The stores connectors read: pools opened lazily, connections lent to searches, errors translated.

This is the only runtime module that imports asyncpg or pymongo. A PostgreSQL store gets an
asyncpg pool (a search borrows one connection for its duration); a MongoDB store gets a PyMongo
`AsyncMongoClient` (a search gets the database). Neither connects before the first search, so a
runtime starts even when a store is down, and a search then fails with a retryable TemporaryError.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pymongo.errors
from pymongo import AsyncMongoClient

from connectors.sdk import ConnectorError, PermanentError, Store, TemporaryError
from dsar_common.postgres import array_types_learner
from dsar_common.settings import Settings

_PG_TEMPORARY: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.AdminShutdownError,
)
_MONGO_TEMPORARY: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    pymongo.errors.ConnectionFailure,
    pymongo.errors.ExecutionTimeout,
)


class Source(Protocol):
    """A store as the runtime uses it."""

    def lend(self) -> Any:
        """An async context manager giving a search its `db` argument."""

    def translate(self, error: Exception) -> ConnectorError:
        """The SDK error for an error raised by the store's driver (the message holds no data)."""

    async def aclose(self) -> None: ...


# Each connection learns the array types searches commonly bind (`= ANY($1::uuid[])`) when it
# opens, rather than in a search.
_learn_array_types = array_types_learner(
    "uuid", "int4", "int8", "numeric", "bool", "date", "timestamptz", "bytea", "jsonb"
)


class PostgresSource:
    """An asyncpg pool on one database, created at the first search with all its connections
    (kept open, idle or not): a burst of commands finds them ready. A connection is lent inside
    a read-only, repeatable-read transaction: one snapshot for everything read with it."""

    def __init__(self, dsn: str, database: str, max_size: int) -> None:
        self.database = database
        self._dsn = _with_database(dsn, database)
        self._max_size = max_size
        self._pool: Any = None
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[Any]:
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=self._max_size,
                    max_size=self._max_size,
                    max_inactive_connection_lifetime=0,
                    timeout=10,
                    command_timeout=300,
                    init=_learn_array_types,
                    reset=_keep_session,
                )
        async with (
            self._pool.acquire(timeout=30) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            yield connection

    def translate(self, error: Exception) -> ConnectorError:
        name = type(error).__name__
        if isinstance(error, _PG_TEMPORARY):
            return TemporaryError(f"postgresql database {self.database} unavailable ({name})")
        return PermanentError(f"postgresql database {self.database} refused the search ({name})")

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.close()


async def _keep_session(connection: Any) -> None:
    """What a connection released to the pool runs besides asyncpg's own checks: nothing.

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release, one more statement per search. A search changes none of that:
    it only reads, in the read-only transaction `lend` opens around it, with cursors that live
    inside it; it takes no advisory lock, listens to nothing and sets nothing
    for the session (a transaction's own isolation and read-only mode end with it). And asyncpg
    still does the part that matters before calling this (`Connection._reset`): a transaction
    left open, by a search cancelled in the middle say, is rolled back, and listeners are
    dropped; if that fails, the connection is closed instead of going back to the pool.
    """
    del connection


class MongoSource:
    """A PyMongo asyncio client; searches get the database, with naive datetimes in UTC.

    Naive, as PyMongo gives them by default: decoding timezone-aware ones costs two to three
    times as much (a visit with its ten pages, 7 µs against 17 to 21 µs), and a large subject's
    visits are read by the tens of thousands. The records' JSON is the same either way: the SDK
    encodes a naive datetime as UTC (`encode_json`).

    PyMongo's native asyncio client runs on the event loop itself. Motor, used before, ran every
    operation (each `find` batch, each `distinct`) on a thread pool and woke the loop from the
    thread: 4 to 18% of a search's CPU on SecantusDB, for the same results. The client opens its
    connections at the first operation, as motor did, and belongs to the event loop that first uses it.
    """

    def __init__(self, url: str, database: str, max_size: int) -> None:
        self.database = database
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            url, tz_aware=False, maxPoolSize=max_size, serverSelectionTimeoutMS=10_000
        )

    @asynccontextmanager
    async def lend(self) -> AsyncIterator[Any]:
        yield self._client[self.database]

    def translate(self, error: Exception) -> ConnectorError:
        name = type(error).__name__
        if isinstance(error, _MONGO_TEMPORARY):
            return TemporaryError(f"mongodb database {self.database} unavailable ({name})")
        return PermanentError(f"mongodb database {self.database} refused the search ({name})")

    async def aclose(self) -> None:
        await self._client.close()


def open_source(store: Store, settings: Settings, database: str | None, max_size: int) -> Source:
    """The source for a connector's store; `database` replaces the declared name (tests, staging)."""
    database = database or store.database
    if store.kind == "postgresql":
        return PostgresSource(settings.source_postgres_url, database, max_size)
    return MongoSource(settings.source_mongodb_url, database, max_size)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))
