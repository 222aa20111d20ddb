"""The databases of a test run: the embedded stack's PostgreSQL and SecantusDB, and the population in them.

The stack runs with its own embedded PostgreSQL, so that connectors run by the real CLI read
the databases their connectors declare (`policy`, `claims`, `crm`, …) without touching those of
any other run on the machine. Its Tansu is left unused: tests that kill a broker bring their
own (see broker.py).
"""

import contextlib
import secrets
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pymongo import AsyncMongoClient

from connectors.testing.population import Population, load_population
from connectors.testing.population.schemas import MONGO_SYSTEMS, POSTGRES_SYSTEMS, table_names
from dsar_service.stack import StackInfo, running_stack


@contextlib.asynccontextmanager
async def running_servers(folder: Path) -> AsyncIterator[StackInfo]:
    """The embedded stack in `folder`, with a PostgreSQL of its own; stopped after."""
    async with running_stack(folder, postgres="embedded") as info:
        yield info


def database_url(server_url: str, database: str) -> str:
    """The URL of `database` on the server at `server_url` (any path in it replaced)."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@contextlib.asynccontextmanager
async def database_of_its_own(server_url: str, prefix: str) -> AsyncIterator[str]:
    """The URL of a fresh database name on the server (the service creates it when it opens its
    pool), dropped on the way out: a test module whose connectors' keys are its own keeps them
    out of the session's service database."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    yield database_url(server_url, name)
    connection = await asyncpg.connect(database_url(server_url, "postgres"))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def load_sources(servers: StackInfo, population: Population, systems: Iterable[str]) -> dict[str, int]:
    """Empty the named systems' tables and collections, then load `population` into them.

    Returns the rows loaded per system. The databases are those the connectors declare, on the
    stack's servers (the embedded PostgreSQL has `policy` and `claims`).
    """
    wanted = set(systems)
    postgres = {s: database_url(servers.postgres_url, s) for s in POSTGRES_SYSTEMS if s in wanted}
    for dsn, system in ((dsn, s) for s, dsn in postgres.items()):
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f"DROP TABLE IF EXISTS {', '.join(table_names(system))} CASCADE")
        finally:
            await connection.close()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(servers.mongodb_url)
    try:
        databases = {s: mongo[s] for s in MONGO_SYSTEMS if s in wanted}
        for system, database in databases.items():
            for collection in table_names(system):
                await database.drop_collection(collection)
        counts = await load_population(population, postgres, databases)
    finally:
        await mongo.close()
    return {system: sum(tables.values()) for system, tables in counts.items()}


async def create_database(servers: StackInfo, name: str) -> str:
    """Create an empty database on the stack's PostgreSQL; returns its URL."""
    connection = await asyncpg.connect(database_url(servers.postgres_url, "postgres"))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return database_url(servers.postgres_url, name)
