"""Real servers for the population loader's tests: a SecantusDB started here, the local PostgreSQL.

SecantusDB runs on a free loopback port with its storage in a temporary folder, for this module's
tests only. PostgreSQL databases get names unique to the run (`policy_test_<tag>`, `claims_test_<tag>`)
and are dropped afterwards.
"""

import os
import secrets
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import MongoClient

from dsar_service.stack._servers import secantus_binary

POSTGRES_SERVER = os.environ.get("DSAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
SECANTUSD = secantus_binary()
STARTUP_SECONDS = 30


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB server of this module's own; its URL, once it answers `ping`."""
    folder = tmp_path_factory.mktemp("secantus")
    port = _free_port()
    url = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    with (folder / "secantusd.log").open("wb") as log:
        server = subprocess.Popen(
            [str(SECANTUSD), "--host", "127.0.0.1", "--port", str(port), "--storage-path", str(folder / "data")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        # pymongo retries server selection until it answers or the deadline passes.
        client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=STARTUP_SECONDS * 1000)
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


@pytest.fixture(scope="module")
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncIOMotorClient[dict[str, object]]]:
    client: AsyncIOMotorClient[dict[str, object]] = AsyncIOMotorClient(mongo_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
async def postgres_dsns() -> AsyncIterator[dict[str, str]]:
    """DSNs of fresh, empty `policy_test_<tag>` and `claims_test_<tag>` databases, dropped afterwards."""
    tag = secrets.token_hex(4)
    names = {system: f"{system}_test_{tag}" for system in ("policy", "claims")}
    admin = await asyncpg.connect(f"{POSTGRES_SERVER}/postgres")
    try:
        for name in names.values():
            await admin.execute(f'CREATE DATABASE "{name}"')
        yield {system: f"{POSTGRES_SERVER}/{name}" for system, name in names.items()}
    finally:
        for name in names.values():
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
