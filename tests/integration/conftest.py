"""Shared fixtures of the integration tests: real servers, started once per test session.

`integration_stack` starts Tansu and SecantusDB on free loopback ports in a temporary folder,
and uses the PostgreSQL the stack picks (DSAR_STACK_POSTGRES_URL, else 127.0.0.1:5432, else an
embedded one) with database names unique to the session: `dsar_test_<tag>`, `policy_test_<tag>`,
`claims_test_<tag>`, dropped at the end. `settings` is the Settings object the service and the
connectors get, read from the stack's own stack.toml (fresh master and connector keys) with a
topic prefix unique to the session.

Source systems are named through `source_databases` (system -> database). PostgreSQL's are
unique per session; MongoDB's keep their production names, since the SecantusDB server itself
is new each session. Code under test must take database names from there, never hard-code
`policy` or `claims`.

Every test under tests/integration/ is marked `integration`.
"""

import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import MappingProxyType

import asyncpg
import pytest

from dsar_common.settings import Settings
from dsar_service.stack import Component, StackDatabases, StackInfo, running_stack

POSTGRES_SYSTEMS = ("policy", "claims")
MONGODB_SYSTEMS = ("crm", "recruitment", "analytics")
_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected under this folder as `integration`."""
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def session_tag() -> str:
    """A random tag (8 hex digits) naming this session's databases and topics."""
    return secrets.token_hex(4)


@pytest.fixture(scope="session")
def source_databases(session_tag: str) -> Mapping[str, str]:
    """The database of each source system in this session: `policy_test_<tag>`, `claims_test_<tag>`, `crm`…"""
    names = {system: f"{system}_test_{session_tag}" for system in POSTGRES_SYSTEMS}
    names.update({system: system for system in MONGODB_SYSTEMS})
    return MappingProxyType(names)


@pytest.fixture(scope="session")
async def integration_stack(
    tmp_path_factory: pytest.TempPathFactory, session_tag: str, source_databases: Mapping[str, str]
) -> AsyncIterator[StackInfo]:
    """The running servers of the session; stopped, and its PostgreSQL databases dropped, at the end."""
    databases = StackDatabases(
        service=f"dsar_test_{session_tag}",
        sources={system: source_databases[system] for system in POSTGRES_SYSTEMS},
    )
    async with running_stack(tmp_path_factory.mktemp("stack"), databases=databases) as info:
        try:
            yield info
        finally:
            if not info.get(Component.POSTGRES).managed:  # an embedded server's data goes with its folder
                await _drop_databases(info.postgres_url, databases.all())


@pytest.fixture(scope="session")
def settings(integration_stack: StackInfo, session_tag: str) -> Settings:
    """Settings pointing at the session's servers: its stack.toml, plus a topic prefix of its own."""
    return Settings.load(
        {
            "DSAR_STATE_DIR": str(integration_stack.state_dir),
            "DSAR_TOPIC_PREFIX": f"dsar-test-{session_tag}",
        }
    )


async def _drop_databases(server_url: str, names: tuple[str, ...]) -> None:
    connection = await asyncpg.connect(f"{server_url}/postgres")
    try:
        for name in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
