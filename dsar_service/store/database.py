"""The connection pool and the schema migrations of the service's PostgreSQL database."""

import contextlib
from collections.abc import AsyncIterator
from importlib import resources

import asyncpg

from dsar_common.postgres import array_types_learner
from dsar_service.errors import Unavailable

_MIGRATION_LOCK = 0x64736172  # "dsar": one migrator at a time across replicas


async def create_database_if_missing(dsn: str) -> None:
    """Create the database named in `dsn` when the server lacks it (development convenience)."""
    base, _, name = dsn.rpartition("/")
    name = name.split("?", 1)[0]
    conn = await _connect(f"{base}/postgres")
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _connect(dsn: str) -> asyncpg.Connection:
    """One connection outside the pool; Unavailable when the server cannot be reached."""
    try:
        return await asyncpg.connect(dsn)
    except (OSError, asyncpg.PostgresError) as error:
        raise Unavailable(f"PostgreSQL cannot be reached: {type(error).__name__}") from error


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply the migrations not applied yet, in order, each in its own transaction."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}
        folder = resources.files("dsar_service.store") / "migrations"
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".sql") and entry.name not in done:
                await conn.execute(entry.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", entry.name)
                applied.append(entry.name)
    return applied


# Each connection learns the array types the store's statements bind (`unnest`, `= ANY`) or read
# back (a system's rows) when it opens, rather than on a request's path.
_learn_array_types = array_types_learner(
    "uuid", "bytea", "int4", "int8", "bool", "timestamptz", "jsonb", "request_systems"
)


async def _migrated(dsn: str) -> None:
    """Apply the migrations, on a connection of their own (the pool's learn the schema's types)."""
    conn = await _connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset on release (a round trip each time): the service's connections keep no
    session state (transactions are closed by their blocks, locks are transaction locks, and LISTEN
    lives on the change feed's own connection)."""


@contextlib.asynccontextmanager
async def open_pool(dsn: str, *, size: int = 10) -> AsyncIterator[asyncpg.Pool]:
    """A pool of `size` connections to the migrated database, closed on exit.

    Every connection opens now and stays open, idle or not, each knowing the store's array
    types: a burst of requests finds them ready, where a pool growing under it opened and taught
    its connections on the requests' path.
    """
    await create_database_if_missing(dsn)
    await _migrated(dsn)
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=size,
            max_size=size,
            max_inactive_connection_lifetime=0,  # kept: a connection closed when idle opens again under load
            init=_learn_array_types,
            reset=_keep_session,
        )
    except (OSError, asyncpg.PostgresError) as error:
        raise Unavailable(f"PostgreSQL cannot be reached: {type(error).__name__}") from error
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()
