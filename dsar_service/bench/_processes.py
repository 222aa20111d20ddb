"""The service and one process per connector, as the benchmark runs them (the demo's pieces, reused).

Each connector runs alone in its process (`dsar connectors run --system NAME`), so each one's memory
and CPU can be told apart. The children's environment is the bench's own without any `DSAR_`
variable, so that nothing from the caller's shell points them elsewhere than the bench's stack,
plus the state folder and the service's rate limits raised out of the way (see `bench_environment`).
"""

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from dsar_common.settings import Settings
from dsar_service.client import DsarClient
from dsar_service.demo import _Child, _installed_connectors, _Narrator, _open_log, _stop_child, _wait_for_systems

# Far beyond what the bench submits: 500 requests in seconds, the same subject many times.
LIMITS = {"DSAR_SUBJECT_REQUESTS_PER_DAY": "1000000", "DSAR_CALLER_REQUESTS_PER_MINUTE": "1000000"}


def bench_environment(state_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the bench's children: `base` without DSAR_ variables, the state folder, the limits."""
    base = os.environ if base is None else base
    environ = {name: value for name, value in base.items() if not name.startswith("DSAR_")}
    return {**environ, "DSAR_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1", **LIMITS}


@dataclass(frozen=True)
class Children:
    """The running service and connectors: their processes by name ("service", "policy", …)."""

    service: _Child
    connectors: tuple[_Child, ...]

    @property
    def all(self) -> tuple[_Child, ...]:
        return (self.service, *self.connectors)

    def pids(self) -> dict[str, int]:
        """Process ids by name, the service first."""
        return {child.name: child.process.pid for child in self.all}


@contextlib.asynccontextmanager
async def running_children(
    settings: Settings, environ: Mapping[str, str], log_dir: Path, narrator: _Narrator, label: str
) -> AsyncIterator[Children]:
    """Start `dsar serve` and one `dsar connectors run --system NAME` per installed connector, wait
    until every connector is announced; stop them (connectors first) on the way out."""
    started: list[_Child] = []
    try:
        with narrator.step(f"starting the service and the connectors ({label})"):
            for name, argv in (("service", ["serve"]),
                               *((system, ["connectors", "run", "--system", system])
                                 for system in _installed_connectors())):  # fmt: skip
                log = log_dir / f"bench-{label}-{name}.log"
                with _open_log(log) as output:
                    process = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "dsar_service.cli", *argv,
                        stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output, env=dict(environ),
                        start_new_session=True,
                    )  # fmt: skip
                started.append(_Child(name, process, log))
            async with DsarClient.connect(settings) as client:
                await _wait_for_systems(client, started, _installed_connectors())
        yield Children(started[0], tuple(started[1:]))
    finally:
        for child in reversed(started):
            await asyncio.shield(_stop_child(child))
