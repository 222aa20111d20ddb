"""The embedded stack against the real binaries: up, status, a second up, the settings file, down.

Each test owns a fresh state folder. The PostgreSQL tests run both ways the stack can use it:
an embedded server (the wheel's binaries, started and stopped by the stack) and an external one
(127.0.0.1:5432, or DSAR_STACK_POSTGRES_URL), which `down` must leave running.
"""

import asyncio
import base64
import json
import os
import secrets
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from dsar_common.settings import Settings
from dsar_service.stack import (
    POSTGRES_URL_VARIABLE,
    TANSU_FETCH_WAIT_MS,
    Component,
    StackDatabases,
    StackError,
    State,
    running_stack,
    stack_down,
    stack_status,
    stack_up,
)
from dsar_service.stack._stack import service_database_for

pytestmark = pytest.mark.integration

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432"


def external_postgres() -> str:
    """The external server the tests may use: DSAR_STACK_POSTGRES_URL, else the local one."""
    return os.environ.get(POSTGRES_URL_VARIABLE, LOCAL_POSTGRES)


def _live_members(pgid: int) -> list[int]:
    """Processes of group `pgid` that still run (a zombie awaiting its parent's wait() has ended)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(entry.name))
    return members


async def group_gone(pgid: int, within_seconds: float = 15.0) -> bool:
    """True once no process of group `pgid` still runs (polled: the kernel ends them asynchronously;
    a server that ignores SIGTERM is killed after the 5 s grace, hence the margin)."""
    deadline = time.monotonic() + within_seconds
    while time.monotonic() < deadline:
        if not _live_members(pgid):
            return True
        await asyncio.sleep(0.05)
    return False


async def kafka_broker_ports(bootstrap: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return [broker["port"] for broker in cluster["brokers"]]
    finally:
        await admin.close()


async def mongodb_ping(url: str) -> float:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url, serverSelectionTimeoutMS=2000)
    try:
        reply = await client.admin.command("ping")
        return float(reply["ok"])
    finally:
        await client.close()


async def databases_on(server_url: str) -> set[str]:
    connection = await asyncpg.connect(f"{server_url}/postgres")
    try:
        return {row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")}
    finally:
        await connection.close()


async def drop_databases(server_url: str, names: tuple[str, ...]) -> None:
    connection = await asyncpg.connect(f"{server_url}/postgres")
    try:
        for name in names:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture
async def unique_databases() -> AsyncIterator[StackDatabases]:
    """Database names of this test only, dropped from the external server afterwards."""
    tag = secrets.token_hex(4)
    databases = StackDatabases(
        service=f"dsar_stack_{tag}", sources={"policy": f"policy_stack_{tag}", "claims": f"claims_stack_{tag}"}
    )
    yield databases
    await drop_databases(external_postgres(), databases.all())


async def test_embedded_stack_up_status_second_up_and_down(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"

    info = await stack_up(state_dir, postgres="embedded")

    try:
        assert not info.already_running
        status = stack_status(state_dir)
        assert status.up
        for component in Component:
            running = status.get(component)
            assert running.state is State.UP
            assert running.managed and running.pid is not None and running.port is not None
            assert info.get(component).startup_seconds is not None
        # Each server answers its own protocol on the port the status reports.
        assert await kafka_broker_ports(info.kafka_bootstrap) == [status.get(Component.KAFKA).port]
        assert await mongodb_ping(info.mongodb_url) == 1.0
        assert info.postgres_url.endswith(f":{status.get(Component.POSTGRES).port}")
        service_database = info.database_url.rpartition("/")[2]
        assert service_database.startswith("dsar_"), "one service database per stack"
        assert {service_database, "policy", "claims"} <= await databases_on(info.postgres_url)

        again = await stack_up(state_dir, postgres="embedded")

        assert again.already_running
        assert [c.pid for c in again.components] == [c.pid for c in status.components]
        assert all(c.startup_seconds is None for c in again.components)
        assert again.kafka_bootstrap == info.kafka_bootstrap
    finally:
        await stack_down(state_dir)

    after = stack_status(state_dir)
    assert all(c.state is State.DOWN for c in after.components)
    assert list((state_dir / "run").iterdir()) == []
    for component in Component:
        pid = status.get(component).pid
        assert pid is not None
        assert await group_gone(pid), f"{component} left a process behind"
    # Data stays for the next `up`: PostgreSQL's cluster and SecantusDB's storage.
    assert (state_dir / "postgres" / "PG_VERSION").exists()
    assert any((state_dir / "mongodb").iterdir())


async def test_settings_file_loads_and_keeps_its_keys_across_restarts(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    async with running_stack(state_dir, postgres="embedded") as info:
        settings = Settings.load({"DSAR_STATE_DIR": str(state_dir)})
        mode = stat.S_IMODE(info.settings_file.stat().st_mode)

    assert mode == 0o600
    assert settings.kafka.bootstrap == info.kafka_bootstrap
    assert settings.kafka.fetch_wait_ms == TANSU_FETCH_WAIT_MS  # Tansu's fetches wait out their time
    expected = f"{info.postgres_url}/{service_database_for(settings.master_key)}"
    assert settings.database_url == info.database_url == expected
    assert settings.source_postgres_url == info.postgres_url
    assert settings.source_mongodb_url == info.mongodb_url
    assert settings.listen == settings.server == info.grpc_address
    assert settings.insecure is True
    assert len(settings.require_master_key()) == 32
    assert len(settings.require_connector_key()) == 32

    async with running_stack(state_dir, postgres="embedded") as restarted:
        reloaded = Settings.load({"DSAR_STATE_DIR": str(state_dir)})

    assert reloaded.master_key == settings.master_key
    assert reloaded.connector_key == settings.connector_key
    assert restarted.grpc_address == info.grpc_address
    # Another folder is another stack, with keys of its own.
    async with running_stack(tmp_path / "other", postgres="embedded"):
        other = Settings.load({"DSAR_STATE_DIR": str(tmp_path / "other")})
    assert other.master_key != settings.master_key
    assert base64.b64encode(other.connector_key) != base64.b64encode(settings.connector_key)


async def test_external_postgres_is_used_and_left_running(tmp_path: Path, unique_databases: StackDatabases) -> None:
    server = external_postgres()
    environ = {POSTGRES_URL_VARIABLE: f"{server}/ignored_database"}

    async with running_stack(tmp_path, databases=unique_databases, environ=environ) as info:
        postgres = info.get(Component.POSTGRES)
        assert info.postgres_url == server
        assert info.database_url == f"{server}/{unique_databases.service}"
        assert not postgres.managed and postgres.pid is None
        assert set(unique_databases.all()) <= await databases_on(server)

    assert stack_status(tmp_path).get(Component.POSTGRES).state is State.DOWN
    assert set(unique_databases.all()) <= await databases_on(server)  # `down` stopped nothing external


async def test_running_stack_stops_the_servers_when_its_body_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="body failed"):
        async with running_stack(tmp_path, postgres="embedded") as info:
            pids = [c.pid for c in info.components]
            raise RuntimeError("body failed")

    assert not stack_status(tmp_path).any_running
    for pid in pids:
        assert pid is not None and await group_gone(pid)


async def test_running_stack_refuses_a_folder_where_a_stack_runs(tmp_path: Path) -> None:
    async with running_stack(tmp_path, postgres="embedded"):
        with pytest.raises(StackError, match="already runs"):
            async with running_stack(tmp_path, postgres="embedded"):
                pass
        assert stack_status(tmp_path).up  # the refused call stopped nothing


async def test_a_dead_component_is_restarted_by_the_next_up(tmp_path: Path) -> None:
    async with running_stack(tmp_path, postgres="embedded") as info:
        kafka = info.get(Component.KAFKA)
        assert kafka.pid is not None
        os.kill(kafka.pid, signal.SIGKILL)
        for _ in range(100):  # the kernel delivers SIGKILL at once; the status sees it after the reap
            if stack_status(tmp_path).get(Component.KAFKA).state is State.DOWN:
                break
            await asyncio.sleep(0.05)
        assert stack_status(tmp_path).get(Component.KAFKA).state is State.DOWN

        again = await stack_up(tmp_path, postgres="embedded")

        assert not again.already_running
        assert again.get(Component.KAFKA).pid != kafka.pid
        assert again.get(Component.MONGODB).pid == info.get(Component.MONGODB).pid
        assert await kafka_broker_ports(again.kafka_bootstrap) == [again.get(Component.KAFKA).port]
        assert Settings.load({"DSAR_STATE_DIR": str(tmp_path)}).kafka.bootstrap == again.kafka_bootstrap


async def test_down_leaves_alone_a_recorded_pid_that_is_no_longer_the_server(tmp_path: Path) -> None:
    bystander = await asyncio.create_subprocess_exec(sys.executable, "-c", "import time; time.sleep(60)")
    try:
        record = tmp_path / "run" / "kafka.json"
        record.parent.mkdir()
        record.write_text(
            json.dumps(
                {
                    "component": "kafka",
                    "pid": bystander.pid,  # a pid the server once had, now another program's
                    "port": 1,
                    "url": "127.0.0.1:1",
                    "marker": "tcp://127.0.0.1:1",
                    "description": "Tansu",
                    "stop_signal": signal.SIGTERM,
                }
            )
        )

        assert stack_status(tmp_path).get(Component.KAFKA).state is State.DOWN
        await stack_down(tmp_path)

        with pytest.raises(TimeoutError):  # still running: no signal reached it
            await asyncio.wait_for(bystander.wait(), timeout=0.3)
        assert not record.exists()
    finally:
        bystander.kill()
        await bystander.wait()


async def test_a_server_that_cannot_start_fails_up_with_its_log_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    (tmp_path / "secantusd.toml").write_text("this is [not toml\n")  # SecantusDB exits on it

    with pytest.raises(StackError, match="SecantusDB") as failure:
        await stack_up(tmp_path, postgres="embedded")

    assert str(tmp_path / "logs" / "mongodb.log") in str(failure.value)
    assert not stack_status(tmp_path).any_running
    assert list((tmp_path / "run").iterdir()) == []
