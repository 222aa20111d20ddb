"""Real servers for the population loader's tests: a SecantusDB started here, the local PostgreSQL.

SecantusDB runs on a free loopback port with its storage in a temporary folder, for this module's
tests only. PostgreSQL databases get names unique to the run (`policy_test_<tag>`, `claims_test_<tag>`)
and are dropped afterwards.
"""

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from pymongo import AsyncMongoClient

from tests.support.local_servers import local_mongodb

POSTGRES_SERVER = os.environ.get("DSAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")


@pytest.fixture(scope="module")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB server of this module's own; its URL."""
    with local_mongodb(tmp_path_factory.mktemp("secantus")) as url:
        yield url


@pytest.fixture(scope="module")
async def mongo_client(mongo_url: str) -> AsyncIterator[AsyncMongoClient[dict[str, object]]]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongo_url)
    try:
        yield client
    finally:
        await client.close()


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
