"""PostgresSource against real PostgreSQL: what a connection carries from one search to the next."""

import os

import pytest

from connectors.runtime.sources import PostgresSource

pytestmark = pytest.mark.integration

POSTGRES = os.environ.get("DSAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


async def test_a_released_connection_is_not_reset_but_its_open_transaction_is_rolled_back() -> None:
    source = PostgresSource(POSTGRES, "postgres", max_size=1)  # one connection: the next search gets it
    try:
        async with source.lend() as db:
            pid = await db.fetchval("SELECT pg_backend_pid()")
            await db.execute("SET application_name = 'kept'")  # a search never does this: it shows no reset ran
            transaction = db.transaction(readonly=True, isolation="repeatable_read")
            await transaction.start()  # left open, as by a search cancelled in the middle
            await db.fetchval("SELECT 1")
        async with source.lend() as db:
            assert await db.fetchval("SELECT pg_backend_pid()") == pid
            assert not db.is_in_transaction()  # asyncpg still rolls back before lending it again
            assert await db.fetchval("SHOW application_name") == "kept"  # no RESET ALL: one statement less
            async with db.transaction(readonly=True, isolation="repeatable_read"):
                assert [r[0] async for r in db.cursor("SELECT generate_series(1, 3)")] == [1, 2, 3]
    finally:
        await source.aclose()
