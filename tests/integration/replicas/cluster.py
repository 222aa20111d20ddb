"""Several replicas of the service and several connector processes on one database and one broker.

    async with running_cluster(settings, folder) as cluster:
        first, second = await cluster.start_replicas(2)       # `dsar serve` twice, same database
        await cluster.start_connectors(["claims"])              # `dsar connectors run --system claims`
        await cluster.start_connectors(["claims"])              # a second member of claims' group
        victim = await busiest(cluster.connectors)              # the process doing the work
        await cluster.kill(victim)

tests.support.Deployment runs one service; replicas differ from it only by their listening port
(each its own `listen`, every other setting shared). A child killed on purpose is remembered, so
that `check_alive` fails only for children that died on their own.
"""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from dsar.v1 import dsar_pb2_grpc
from dsar_common.settings import Settings
from dsar_service.stack._net import free_port
from tests.support.environment import child_environment, empty_state_dir
from tests.support.processes import Child, start_dsar
from tests.support.rpc import wait_for_systems

STARTUP_SECONDS = 60.0
CPU_SAMPLE_SECONDS = 0.5
BUSY_SAMPLE_SECONDS = 0.1


@dataclass
class Replica:
    """One `dsar serve` process and a channel to it."""

    name: str
    settings: Settings
    child: Child
    channel: grpc.aio.Channel

    @property
    def stub(self) -> dsar_pb2_grpc.DsarServiceStub:
        return dsar_pb2_grpc.DsarServiceStub(self.channel)


@dataclass
class Cluster:
    """The service replicas and connector processes of one test."""

    settings: Settings
    folder: Path
    replicas: list[Replica] = field(default_factory=list)
    connectors: list[Child] = field(default_factory=list)
    killed: list[Child] = field(default_factory=list)
    _started: dict[str, int] = field(default_factory=dict)

    def _log(self, name: str) -> Path:
        self._started[name] = self._started.get(name, 0) + 1
        return self.folder / "logs" / f"{name}-{self._started[name]}.log"

    @property
    def children(self) -> list[Child]:
        return [*(r.child for r in self.replicas), *self.connectors]

    @property
    def alive_replicas(self) -> list[Replica]:
        return [r for r in self.replicas if r.child not in self.killed]

    async def start_replica(self) -> Replica:
        """Start one more `dsar serve` on a port of its own and wait until it serves."""
        port = free_port()
        settings = self.settings.with_values(listen=f"127.0.0.1:{port}", server=f"127.0.0.1:{port}")
        name = f"service-{len(self.replicas) + 1}"
        child = await start_dsar(name, ["serve"], child_environment(settings), self._log(name))
        replica = Replica(name, settings, child, grpc.aio.insecure_channel(settings.server))
        self.replicas.append(replica)
        await child.wait_for_log("serving on", STARTUP_SECONDS)
        return replica

    async def start_connectors(self, systems: Iterable[str], wait: bool = True) -> Child:
        """One `dsar connectors run --system A --system B …`; with `wait`, until every replica sees them alive."""
        names = list(systems)
        label = "connector-" + "+".join(names) if len(names) < 3 else "connectors"
        arguments = ["connectors", "run", *(a for name in names for a in ("--system", name))]
        child = await start_dsar(label, arguments, child_environment(self.settings), self._log(label))
        self.connectors.append(child)
        if wait:
            for replica in self.alive_replicas:
                await wait_for_systems(replica.stub, set(names), STARTUP_SECONDS, children=[child])
        return child

    async def kill(self, child: Child) -> float:
        """SIGKILL `child`; returns the `time.monotonic()` reading just after it died."""
        self.killed.append(child)
        await child.kill()
        return time.monotonic()

    def check_alive(self) -> None:
        """Fail at once when a child that was not killed on purpose has exited."""
        for child in self.children:
            if child not in self.killed:
                child.check()

    async def close(self) -> None:
        for replica in self.replicas:
            await replica.channel.close()
        for child in reversed(self.children):
            await child.stop()


@contextlib.asynccontextmanager
async def running_cluster(settings: Settings, folder: Path) -> AsyncIterator[Cluster]:
    """An empty cluster for the `async with`; every child it started is stopped on the way out."""
    cluster = Cluster(settings, empty_state_dir(folder))
    try:
        yield cluster
    finally:
        await cluster.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def busiest(children: Sequence[Child], window: float = CPU_SAMPLE_SECONDS) -> tuple[Child, list[float]]:
    """The child that used the most CPU over `window` seconds, and every child's share of it.

    The process streaming a large result (or storing and assembling one) works; its idle twin
    only heartbeats. Which member of a consumer group holds a partition is the broker's choice:
    this finds out from the outside, as an operator's `top` would.
    """
    before = [cpu_seconds(child.pid) for child in children]
    await asyncio.sleep(window)  # a measuring window, not a wait for an event
    used = [cpu_seconds(child.pid) - b for child, b in zip(children, before, strict=True)]
    return children[used.index(max(used))], [u / window for u in used]


async def first_busy(children: Sequence[Child], share: float, within: float) -> Child:
    """The first child seen using more than `share` of a core over a short window (polled until `within`).

    For a stream too short to wait for its first stored chunk: the connector that took the
    command starts working at once, its twin stays idle.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        child, shares = await busiest(children, BUSY_SAMPLE_SECONDS)
        if max(shares) > share:
            return child
    raise TimeoutError(f"none of {[c.name for c in children]} got busy within {within:.0f}s")
