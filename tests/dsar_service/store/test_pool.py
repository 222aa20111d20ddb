"""open_pool against real PostgreSQL: every connection open at once, each knowing the store's array types.

A pool that grew, and learnt types, under a burst of requests did that work on the requests' path.
"""

import asyncio
import datetime as dt
import os
import uuid

import asyncpg
import pytest

from dsar_service.store import open_pool
from tests.support.servers import database_of_its_own

pytestmark = pytest.mark.integration

POSTGRES = os.environ.get("DSAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")

# Every array type the store binds, and the row type it reads back in arrays.
USES_EVERY_ARRAY_TYPE = """
    SELECT $1::uuid[], $2::bytea[], $3::int4[], $4::int8[], $5::bool[], $6::timestamptz[], $7::jsonb[],
           ARRAY(SELECT s FROM request_systems s WHERE false)
"""
ARGUMENTS = ([uuid.uuid4()], [b"x"], [1], [2], [True], [dt.datetime.now(dt.UTC)], ['{"a": 1}'])


async def test_every_connection_is_open_and_knows_the_array_types_before_any_request() -> None:
    async with database_of_its_own(POSTGRES, "dsar_pool") as url, open_pool(url, size=3) as pool:
        assert (pool.get_size(), pool.get_idle_size()) == (3, 3)
        connections: list[asyncpg.Connection] = [await pool.acquire() for _ in range(3)]
        try:
            for connection in connections:
                queries: list[str] = []
                connection.add_query_logger(lambda record, seen=queries: seen.append(record.query))
                await connection.fetchrow(USES_EVERY_ARRAY_TYPE, *ARGUMENTS)
                await asyncio.sleep(0)  # asyncpg calls query loggers soon, not at once
                assert queries, "the logger sees the connection's statements"
                assert not [q for q in queries if "typeinfo" in q], "a type was looked up on the request's path"
        finally:
            for connection in connections:
                await pool.release(connection)
