"""One test's dsar: the service and the connectors as `python -m dsar_service.cli` children.

    settings = deployment_settings(servers, broker, folder, system_timeout_seconds=3)
    async with Deployment.started(settings, folder, systems=["policy"]) as deployment:
        await deployment.connectors["policy"].kill()
        await deployment.start_connector("policy")
        await deployment.service.kill()
        await deployment.start_service()

The service gets a database of its own (`dsar_<hex>`) on the stack's PostgreSQL, insecure mode
on a free loopback port, fresh master and connector keys, and 1 s heartbeats. Every child's log
is a file in `<folder>/logs/`, named after it and how many times it was started.
"""

import asyncio
import contextlib
import secrets
import signal
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from dsar.v1 import dsar_pb2_grpc
from dsar_common.sealing import KeyPair
from dsar_common.settings import Settings
from dsar_service.stack import StackInfo
from dsar_service.stack._net import free_port
from tests.support.broker import Broker
from tests.support.environment import child_environment, empty_state_dir, with_known
from tests.support.local_servers import tansu_settings
from tests.support.processes import Child, start_dsar
from tests.support.rpc import wait_for_systems
from tests.support.servers import create_database

STARTUP_SECONDS = 60.0

# Limits of newer versions that tests submitting many requests for one subject must lift.
GENEROUS_LIMITS = {"caller_requests_per_minute": 100_000, "subject_requests_per_day": 100_000}


async def deployment_settings(servers: StackInfo, broker: Broker, folder: Path, **values: Any) -> Settings:
    """Settings for one deployment: a new service database, the broker, fresh keys; then `values`."""
    database = f"dsar_{secrets.token_hex(4)}"
    port = free_port()
    settings = Settings(
        state_dir=empty_state_dir(folder / "state"),
        database_url=await create_database(servers, database),
        listen=f"127.0.0.1:{port}",
        server=f"127.0.0.1:{port}",
        insecure=True,
        master_key=secrets.token_bytes(32),
        connector_key=KeyPair.generate().private,
        source_postgres_url=servers.postgres_url,
        source_mongodb_url=servers.mongodb_url,
        heartbeat_seconds=1,
        kafka=tansu_settings(broker.bootstrap),
    )
    return with_known(settings, **{**GENEROUS_LIMITS, **values})


@dataclass
class Deployment:
    """The service and connector children of one test, and a gRPC channel to the service."""

    settings: Settings
    folder: Path
    channel: grpc.aio.Channel
    service: Child | None = None
    connectors: dict[str, Child] = field(default_factory=dict)
    children: list[Child] = field(default_factory=list)

    @property
    def stub(self) -> dsar_pb2_grpc.DsarServiceStub:
        return dsar_pb2_grpc.DsarServiceStub(self.channel)

    @property
    def logs(self) -> list[Path]:
        """Every log file a child of this deployment wrote."""
        return sorted((self.folder / "logs").glob("*.log"))

    def _log(self, name: str) -> Path:
        started = sum(1 for child in self.children if child.name == name)
        return self.folder / "logs" / f"{name}-{started + 1}.log"

    async def start_service(self) -> Child:
        """Start `dsar serve` and wait until it answers (a new child after a kill: same database)."""
        child = await start_dsar("service", ["serve"], child_environment(self.settings), self._log("service"))
        self.children.append(child)
        self.service = child
        await child.wait_for_log("serving on", STARTUP_SECONDS)
        return child

    async def start_connector(self, system: str, wait: bool = True) -> Child:
        """Start `dsar connectors run --system <system>`; with `wait`, until the service sees it alive."""
        name = f"connector-{system}"
        child = await start_dsar(
            name, ["connectors", "run", "--system", system], child_environment(self.settings), self._log(name)
        )
        self.children.append(child)
        self.connectors[system] = child
        if wait:
            await wait_for_systems(self.stub, {system}, STARTUP_SECONDS, children=[child])
        return child

    async def start_connectors(self, systems: Iterable[str]) -> Child:
        """One `dsar connectors run --system A --system B …` process for several systems."""
        names = list(systems)
        arguments = ["connectors", "run", *(a for name in names for a in ("--system", name))]
        child = await start_dsar("connectors", arguments, child_environment(self.settings), self._log("connectors"))
        self.children.append(child)
        self.connectors.update(dict.fromkeys(names, child))
        await wait_for_systems(self.stub, set(names), STARTUP_SECONDS, children=[child])
        return child

    def check_alive(self) -> None:
        """Fail at once when the service or a current connector has died unexpectedly."""
        for child in [self.service, *self.connectors.values()]:
            if child is not None:
                child.check()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Every running child stopped (SIGSTOP) for the body of the `with`, resumed (SIGCONT) after.

        For a test that changes the world under the children in a step they must not see half-done:
        they wake to the finished change, with every connection they held broken or stale.
        """
        stopped: list[Child] = []
        try:
            for child in self.children:
                if child.running:
                    child.process.send_signal(signal.SIGSTOP)
                    stopped.append(child)
            yield
        finally:
            for child in stopped:
                with contextlib.suppress(ProcessLookupError):
                    child.process.send_signal(signal.SIGCONT)

    @classmethod
    @contextlib.asynccontextmanager
    async def started(
        cls, settings: Settings, folder: Path, systems: Iterable[str] = ()
    ) -> AsyncIterator["Deployment"]:
        """The service, then one connector process per system; every child stopped on the way out."""
        empty_state_dir(folder)
        async with grpc.aio.insecure_channel(settings.server) as channel:
            deployment = cls(settings, folder, channel)
            try:
                await deployment.start_service()
                await asyncio.gather(*(deployment.start_connector(s) for s in systems))
                yield deployment
            finally:
                for child in reversed(deployment.children):
                    await child.stop()


def elapsed_since(began: float) -> float:
    """Seconds since `began` (a `time.monotonic()` reading)."""
    return time.monotonic() - began
