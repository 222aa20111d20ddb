"""The kit's databases: created with a unique name, lent to searches as the runtime lends them, dropped.

Searches receive their `db` from the runtime's own sources (an asyncpg pool connection, or a
PyMongo asyncio database with naive datetimes in UTC), so what passes here behaves the same in production.
PostgreSQL runs where `DSAR_TEST_POSTGRES_URL` says (default: the local server); MongoDB where
`DSAR_TEST_MONGODB_URL` says, or else in an embedded SecantusDB that the kit starts when the
`dsar[stack]` extra is installed (development only: never rely on its quirks).
"""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
from pymongo import AsyncMongoClient, MongoClient

from connectors.runtime.sources import MongoSource, PostgresSource, Source
from connectors.sdk import Store
from connectors.testing.kit._cases import SeededStore

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432"
_STARTUP_SECONDS = 30


def postgres_url() -> str:
    """The PostgreSQL server tests use: `DSAR_TEST_POSTGRES_URL`, or the local one."""
    return os.environ.get("DSAR_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)


def mongodb_url() -> str | None:
    """The MongoDB server tests use (`DSAR_TEST_MONGODB_URL`), or None to start an embedded one."""
    return os.environ.get("DSAR_TEST_MONGODB_URL") or None


def open_source(store: SeededStore, max_size: int = 4) -> Source:
    """The runtime's source for the store: what lends a search its `db`. Close it with `aclose()`."""
    if store.kind == "postgresql":
        return PostgresSource(store.url, store.database, max_size)
    return MongoSource(store.url, store.database, max_size)


@contextlib.asynccontextmanager
async def temporary_database(declared: Store, url: str) -> AsyncIterator[SeededStore]:
    """A new, empty database on the server at `url`, named after the declared one, then dropped.

    The name is `<declared database>_kit_<random>`, so several runs can share a server.
    """
    name = f"{declared.database}_kit_{secrets.token_hex(4)}"
    store = SeededStore(declared.kind, url, name)
    if declared.kind == "postgresql":
        admin = await asyncpg.connect(f"{url.rstrip('/')}/postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield store
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
        return
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, serverSelectionTimeoutMS=10_000)
    try:
        yield store  # MongoDB creates the database on the first write
    finally:
        try:
            await client.drop_database(name)
        finally:
            await client.close()


def _secantusd() -> Path | None:
    configured = os.environ.get("DSAR_TEST_SECANTUSD")
    if configured:
        return Path(configured)
    beside = Path(sys.executable).parent / "secantusd-py"
    if beside.exists():
        return beside
    found = shutil.which("secantusd-py")
    return Path(found) if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def embedded_mongodb() -> Iterator[str | None]:
    """An embedded SecantusDB on a free loopback port, its URL once it answers; None if not installed."""
    binary = _secantusd()
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="dsar-kit-mongo-") as folder:
        port = _free_port()
        url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
        with (Path(folder) / "secantusd.log").open("wb") as log:
            server = subprocess.Popen(
                [str(binary), "--host", "127.0.0.1", "--port", str(port), "--storage-path", f"{folder}/data"],
                stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            # pymongo retries server selection until the server answers or the deadline passes.
            client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=_STARTUP_SECONDS * 1000)
            with client:
                client.admin.command("ping")
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
