"""The runtime's sources against real servers: PostgresSource, what a connection carries from one
search to the next (PostgreSQL); MongoSource, what a search's documents hold (SecantusDB)."""

import datetime as dt
import os
from pathlib import Path

import asyncpg
import orjson
import pytest

from connectors.analytics import visits
from connectors.runtime.sources import MongoSource, PostgresSource
from tests.support.local_servers import local_mongodb

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


async def test_a_mongodb_datetime_is_naive_utc_and_its_record_says_the_same_instant(tmp_path: Path) -> None:
    """Naive datetimes decode three times faster than aware ones; the record must not lose the instant."""
    paris = dt.timezone(dt.timedelta(hours=2))
    stored = dt.datetime(2024, 6, 1, 10, 30, 5, 123000, tzinfo=paris)  # MongoDB keeps milliseconds, in UTC
    with local_mongodb(tmp_path) as url:
        source = MongoSource(url, "sources_test", max_size=1)
        try:
            async with source.lend() as db:
                await db.visits.insert_one({"_id": 1, "started_at": stored, "pages": [{"at": stored}]})
                document = await db.visits.find_one({"_id": 1})
        finally:
            await source.aclose()
    assert document["started_at"] == dt.datetime(2024, 6, 1, 8, 30, 5, 123000)  # naive, in UTC
    record = visits.record({"_id": document["_id"], "started_at": document["started_at"], "pages": document["pages"]})
    fields = orjson.loads(record.fields_json())
    utc = "2024-06-01T08:30:05.123000+00:00"
    assert (fields["started_at"], fields["pages"]) == (utc, [{"at": utc}])
    assert dt.datetime.fromisoformat(fields["started_at"]) == stored
