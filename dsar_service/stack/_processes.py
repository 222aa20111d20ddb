"""Detached server processes: spawn in their own session, record their pid, tell if they live, stop them.

A server is spawned with `os.posix_spawn(setsid=True)`: it leads its own session and process group
(pgid == pid), so a Ctrl-C in the terminal that ran `dsar stack up` does not reach it, and `down`
can stop it with every child it forked. `posix_spawn` rather than `subprocess.Popen` because the
caller returns while the server runs on: a `Popen` object dropped while its process runs warns.

A pid alone is not an identity (pids are reused), so the record also keeps a marker, the
executable's name, that `/proc/<pid>/cmdline` must contain for the pid to count as ours.
"""

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from dsar_service.stack._model import Component

_POLL_SECONDS = 0.05
_HAS_PROC = Path("/proc/self").exists()


@dataclass(frozen=True)
class PidRecord:
    """What `run/<component>.json` holds about one component.

    `pid` is None for a server the stack uses but did not start (an external PostgreSQL).
    `url` is the endpoint clients use; `marker` must appear in the process's command line.
    """

    component: Component
    pid: int | None
    port: int
    url: str
    marker: str
    description: str
    stop_signal: int = signal.SIGTERM

    @property
    def managed(self) -> bool:
        return self.pid is not None

    def write(self, path: Path) -> None:
        """Write the record atomically, owner-only (an external URL may carry a password)."""
        data = asdict(self)
        data["component"] = self.component.value
        data["stop_signal"] = int(self.stop_signal)
        write_private(path, json.dumps(data, indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> "PidRecord | None":
        """The record at `path`, or None if there is none or it cannot be read (treated as not running)."""
        try:
            data = json.loads(path.read_text())
            return cls(
                component=Component(data["component"]),
                pid=None if data["pid"] is None else int(data["pid"]),
                port=int(data["port"]),
                url=str(data["url"]),
                marker=str(data["marker"]),
                description=str(data["description"]),
                stop_signal=int(data.get("stop_signal", signal.SIGTERM)),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def spawn(argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> int:
    """Start `argv` detached: own session, stdin from /dev/null, stdout and stderr to `log` (truncated).

    Signals Python ignores (SIGPIPE, SIGXFSZ) are reset to their defaults in the child, as
    `subprocess` does. Returns the pid, which is also the process group id.
    """
    file_actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    defaults = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    return os.posix_spawn(
        argv[0],
        list(argv),
        dict(os.environ if env is None else env),
        file_actions=file_actions,
        setsid=True,
        setsigdef=defaults,
        setsigmask=set(),
    )


def is_alive(pid: int, marker: str) -> bool:
    """True if `pid` runs, is not a zombie, and (where /proc exists) its command line holds `marker`."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by someone else; /proc decides below
    if not _HAS_PROC:
        return True
    thread = _running_thread(Path("/proc") / str(pid))
    if thread is None:
        return False
    try:
        cmdline = (thread / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return marker in cmdline


def _running_thread(proc: Path) -> Path | None:
    """The /proc folder of a thread of the process that is not dead, or None.

    A multi-threaded process whose main thread has exited shows as a zombie (with an empty
    command line) while its other threads still run and hold its files and locks: the process
    is gone only when every thread is.
    """
    try:
        tasks = list((proc / "task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            return task
    return None


def child_runs(pid: int) -> bool:
    """True while `pid`, a child this process spawned, has not exited (its exit status is then collected).

    For a child just spawned this is the reliable test: its pid cannot be reused before it is
    reaped, and its command line is briefly unreadable while it execs (as `unshare` does).
    """
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return is_alive(pid, "")
    return done == 0


def group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes whose process group is `pgid` (Linux: read from /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and _running_thread(entry) is not None:
            members.append(int(entry.name))
    return members


async def stop(pid: int, marker: str, stop_signal: int, grace_seconds: float) -> None:
    """Stop a server: `stop_signal` to it, wait up to `grace_seconds`, then SIGKILL its whole group.

    Returns once the process is gone. Its group is then sent SIGKILL too, and awaited, so that
    no child it forked (PostgreSQL's backends) outlives it. A pid no longer ours is left alone.
    """
    if not is_alive(pid, marker):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, stop_signal)
    if not await wait_until_dead(pid, marker, grace_seconds):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        await wait_until_dead(pid, marker, grace_seconds)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    await _wait_group_empty(pid, grace_seconds)


async def wait_until_dead(pid: int, marker: str, within_seconds: float) -> bool:
    """Poll until `pid` is gone or `within_seconds` pass; True if it is gone."""
    deadline = time.monotonic() + within_seconds
    while is_alive(pid, marker):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL_SECONDS)
    return True


async def _wait_group_empty(pgid: int, within_seconds: float) -> None:
    """Poll until no live process is left in group `pgid` (where /proc tells), or `within_seconds` pass."""
    if not _HAS_PROC:
        return
    deadline = time.monotonic() + within_seconds
    while group_members(pgid):
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(_POLL_SECONDS)


def _reap(pid: int) -> None:
    """Collect the exit status of `pid` if it is our own exited child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, mode 0600, through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
