"""Child processes of a test: `python -m dsar_service.cli …`, their logs, their deaths.

Each child leads its own session (a signal to the test run does not reach it) and writes stdout
and stderr to one log file of its own, which tests read back: to wait for a line, or to search
every line for personal data.
"""

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_SECONDS = 10.0
POLL_SECONDS = 0.05


class ChildExited(AssertionError):
    """A child a test needs is not running any more; the message ends with its log's last lines."""


@dataclass
class Child:
    """A running (or ended) child process and the file its output goes to."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check(self) -> None:
        """Raise ChildExited if the process has ended."""
        if not self.running:
            tail = "\n".join(self.log_text().splitlines()[-15:])
            raise ChildExited(f"{self.name} exited with code {self.process.returncode}; log {self.log}:\n{tail}")

    async def kill(self) -> None:
        """SIGKILL, as a crash: no cleanup runs, nothing is committed, nothing is said goodbye."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> int:
        """SIGTERM (a graceful stop), then SIGKILL after `grace_seconds`; returns the exit code."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), grace_seconds)
            except TimeoutError:
                await self.kill()
        return await self.process.wait()

    async def wait_for_log(self, text: str, within: float) -> None:
        """Until `text` appears in the log; fails if the child exits or the time is up first."""
        deadline = time.monotonic() + within
        while text not in self.log_text():
            self.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not log {text!r} within {within:.0f}s")
            await asyncio.sleep(POLL_SECONDS)


async def start_child(name: str, argv: Sequence[str], environment: Mapping[str, str], log: Path) -> Child:
    """Start `argv` with `environment`, stdout and stderr to `log` (created owner-only)."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=descriptor,
            stderr=descriptor,
            env=dict(environment),
            start_new_session=True,
        )
    finally:
        os.close(descriptor)
    return Child(name, process, log)


async def start_dsar(name: str, arguments: Sequence[str], environment: Mapping[str, str], log: Path) -> Child:
    """`python -m dsar_service.cli <arguments>` with this interpreter, as `dsar` would run it."""
    return await start_child(name, [sys.executable, "-m", "dsar_service.cli", *arguments], environment, log)
