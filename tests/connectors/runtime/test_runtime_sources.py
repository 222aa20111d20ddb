"""PostgresSource against real PostgreSQL: what a connection carries from one search to the next."""

import os

import asyncpg
import pytest

from connectors.runtime.sources import PostgresSource

pytestmark = pytest.mark.integration

POSTGRES = os.environ.get("DSAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


async def test_a_lent_connection_is_one_read_only_snapshot_and_is_not_reset() -> None:
    source = PostgresSource(POSTGRES, "postgres", max_size=1)  # one connection: the next search gets it
    try:
        async with source.lend() as db:
            pid = await db.fetchval("SELECT pg_backend_pid()")
            assert await db.fetchval("SHOW transaction_isolation") == "repeatable read"
            assert await db.fetchval("SHOW transaction_read_only") == "on"
            with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
                await db.execute("CREATE TABLE written_by_a_search (id int)")
        async with source.lend() as db:
            assert await db.fetchval("SELECT pg_backend_pid()") == pid
            await db.execute("SET application_name = 'kept'")  # a search never does this: it shows no reset ran
            # a cursor needs no transaction of the search's own
            assert [r[0] async for r in db.cursor("SELECT generate_series(1, 3)")] == [1, 2, 3]
        async with source.lend() as db:
            assert await db.fetchval("SELECT pg_backend_pid()") == pid
            assert await db.fetchval("SHOW application_name") == "kept"  # no RESET ALL: one statement less
    finally:
        await source.aclose()
