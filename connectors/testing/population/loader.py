"""Load a generated population into real PostgreSQL and MongoDB databases, fast and in bounded memory.

Each system's rows stream from the generator into per-table buffers. When one buffer is full, all
are flushed in schema order (parents first, so the foreign key of `policy` holds): PostgreSQL with
`COPY` (asyncpg `copy_records_to_table`), MongoDB with unordered `insert_many`. A PostgreSQL
database is analyzed once loaded, as autovacuum would a minute later: without statistics, the
planner takes a typical person's few claims for hundreds, and joins their documents by scanning
the whole table (9 ms a search instead of 0.1 ms, measured). At most `batch_size`
rows per table are held at a time; the default, 2,000, loads as fast as larger batches on
PostgreSQL and faster on SecantusDB. The systems load concurrently.

Database names are the caller's: it passes one connection (or DSN) per PostgreSQL system and one
PyMongo `AsyncDatabase` per MongoDB system, so tests can use `policy_test_ab12` and the demo
`policy`. A system left out of both mappings is not loaded.
"""

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from typing import Any

import asyncpg

from .generator import Population
from .schemas import (
    MONGO_SYSTEMS,
    POSTGRES_SYSTEMS,
    MongoDatabase,
    create_mongo_indexes,
    create_postgres_schema,
    postgres_table,
    table_names,
)

LoadCounts = dict[str, dict[str, int]]
"""Rows inserted, by system, then by table or collection."""

_Flush = Callable[[str, list[dict[str, Any]]], Awaitable[None]]


async def load_population(
    population: Population,
    postgres: Mapping[str, asyncpg.Connection | str],
    mongo_db_by_system: Mapping[str, MongoDatabase],
    *,
    batch_size: int = 2_000,
) -> LoadCounts:
    """Create the schemas of the given systems, then insert the population's rows into them.

    `postgres` maps "policy" and/or "claims" to an open asyncpg connection or a DSN (then opened and
    closed here); `mongo_db_by_system` maps "crm", "recruitment" and/or "analytics" to a PyMongo
    `AsyncDatabase`. The databases must exist (MongoDB creates them on first write) and be empty, or
    at least not hold this population already: primary keys would collide. Returns the rows inserted.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    unknown = (set(postgres) - set(POSTGRES_SYSTEMS)) | (set(mongo_db_by_system) - set(MONGO_SYSTEMS))
    if unknown:
        raise ValueError(f"unknown systems: {', '.join(sorted(unknown))}")
    async with AsyncExitStack() as stack:
        jobs = []
        for system, target in postgres.items():
            if isinstance(target, str):
                conn = await asyncpg.connect(target)
                stack.push_async_callback(conn.close)
            else:
                conn = target
            jobs.append(_load_postgres(population, system, conn, batch_size))
        for system, db in mongo_db_by_system.items():
            jobs.append(_load_mongo(population, system, db, batch_size))
        results = await asyncio.gather(*jobs)
    return {system: counts for system, counts in results}


async def _load_postgres(
    population: Population, system: str, conn: asyncpg.Connection, batch_size: int
) -> tuple[str, dict[str, int]]:
    await create_postgres_schema(conn, system)

    async def flush(table: str, rows: list[dict[str, Any]]) -> None:
        columns = postgres_table(system, table).column_names
        records = [tuple(row[column] for column in columns) for row in rows]
        await conn.copy_records_to_table(table, records=records, columns=columns)

    counts = await _stream(population, system, flush, batch_size)
    await conn.execute("ANALYZE")  # the statistics a database in service has (see the module's docstring)
    return system, counts


async def _load_mongo(
    population: Population, system: str, db: MongoDatabase, batch_size: int
) -> tuple[str, dict[str, int]]:
    await create_mongo_indexes(db, system)

    async def flush(collection: str, documents: list[dict[str, Any]]) -> None:
        await db[collection].insert_many(documents, ordered=False)

    return system, await _stream(population, system, flush, batch_size)


async def _stream(population: Population, system: str, flush: _Flush, batch_size: int) -> dict[str, int]:
    """Buffer the rows by table; when a buffer fills, flush every buffer, parents first."""
    order = table_names(system)
    buffers: dict[str, list[dict[str, Any]]] = {table: [] for table in order}
    counts = dict.fromkeys(order, 0)

    async def flush_all() -> None:
        for table in order:
            if buffers[table]:
                rows, buffers[table] = buffers[table], []
                await flush(table, rows)
                counts[table] += len(rows)

    for table, row in population.rows(system):
        buffer = buffers[table]
        buffer.append(row)
        if len(buffer) >= batch_size:
            await flush_all()
    await flush_all()
    return counts
