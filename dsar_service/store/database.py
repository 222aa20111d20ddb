"""The connection pool and the schema migrations of the service's PostgreSQL database."""

import contextlib
from collections.abc import AsyncIterator
from importlib import resources

import asyncpg

from dsar_service.errors import Unavailable

_MIGRATION_LOCK = 0x64736172  # "dsar": one migrator at a time across replicas


async def create_database_if_missing(dsn: str) -> None:
    """Create the database named in `dsn` when the server lacks it (development convenience)."""
    base, _, name = dsn.rpartition("/")
    name = name.split("?", 1)[0]
    try:
        conn = await asyncpg.connect(f"{base}/postgres")
    except (OSError, asyncpg.PostgresError) as error:
        raise Unavailable(f"PostgreSQL cannot be reached: {type(error).__name__}") from error
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


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


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset on release (a round trip each time): the service's connections keep no
    session state (transactions are closed by their blocks, locks are transaction locks, and LISTEN
    lives on the change feed's own connection)."""


@contextlib.asynccontextmanager
async def open_pool(dsn: str, *, min_size: int = 2, max_size: int = 10) -> AsyncIterator[asyncpg.Pool]:
    """A migrated connection pool, closed on exit."""
    await create_database_if_missing(dsn)
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, reset=_keep_session)
    except (OSError, asyncpg.PostgresError) as error:
        raise Unavailable(f"PostgreSQL cannot be reached: {type(error).__name__}") from error
    assert pool is not None
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        yield pool
    finally:
        await pool.close()
