"""The service's database as a test reads it: one value, or every row of every table as bytes."""

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg


@contextlib.asynccontextmanager
async def connected(url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url)
    try:
        yield connection
    finally:
        await connection.close()


async def fetchval(url: str, query: str, *args: Any) -> Any:
    """One value of one query, on a connection of its own."""
    async with connected(url) as connection:
        return await connection.fetchval(query, *args)


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


async def dump_tables(url: str) -> dict[str, bytes]:
    """Every row of every table of the public schema: per table, its rows' values as raw bytes.

    Bytea columns are kept raw (a personal value stored in clear in one would show as itself),
    the others as their text; one line per row, values separated by tabs.
    """
    async with connected(url) as connection:
        tables = [
            r["tablename"]
            for r in await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        dumped: dict[str, bytes] = {}
        for table in tables:
            rows = await connection.fetch(f'SELECT * FROM "{table}"')
            dumped[table] = b"\n".join(b"\t".join(_as_bytes(v) for v in row.values()) for row in rows)
        return dumped
