"""Figures of a process from Linux's /proc: peak resident memory, CPU time (of a process tree too).

`VmHWM` in /proc/<pid>/status is the high-water mark of the resident set since the process started,
or since it was last reset by writing "5" to /proc/<pid>/clear_refs (Linux 4.0 and later; the
process must be ours). Resetting before a scenario measures that scenario's peak alone.
"""

import os
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def peak_rss_bytes(pid: int) -> int | None:
    """The process's peak resident memory in bytes, or None if it cannot be read (gone, not Linux)."""
    try:
        text = (_PROC / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            kilobytes = line.split()[1]
            return int(kilobytes) * 1024
    return None


def reset_peak(pid: int) -> bool:
    """Reset the process's peak to its current resident memory; False if the kernel refused."""
    try:
        (_PROC / str(pid) / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> float | None:
    """CPU time the process has used so far (user + system, its threads included), or None if unreadable."""
    stat = _stat(pid)
    return None if stat is None else (stat.utime + stat.stime) / _TICKS


def tree_cpu_seconds(root: int) -> float | None:
    """CPU time used so far by `root` and all its descendants, the exited ones included, or None if
    `root` is unreadable. A child that exited and was waited for is counted in its parent's cutime and
    cstime (PostgreSQL's postmaster waits for its backends), so a difference over a scenario counts
    the backends that came and went during it."""
    stats = {pid: stat for pid in _pids() if (stat := _stat(pid)) is not None}
    if root not in stats:
        return None
    children: dict[int, list[int]] = {}
    for pid, stat in stats.items():
        children.setdefault(stat.ppid, []).append(pid)
    ticks, frontier = 0, [root]
    while frontier:
        stat = stats[pid := frontier.pop()]
        ticks += stat.utime + stat.stime + stat.cutime + stat.cstime
        frontier.extend(children.get(pid, []))
    return ticks / _TICKS


def ancestor_named(pid: int, command: str) -> int | None:
    """The furthest ancestor of `pid` (itself included) in an unbroken line of processes named `command`
    (a PostgreSQL backend's postmaster, for "postgres"); None if `pid` is not such a process."""
    found = None
    stat = _stat(pid)
    while stat is not None and stat.command == command:
        found, pid = pid, stat.ppid
        stat = _stat(pid) if pid > 1 else None
    return found


@dataclass(frozen=True)
class _Stat:
    """The fields of /proc/<pid>/stat the bench reads (times in clock ticks)."""

    command: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int


def _stat(pid: int) -> _Stat | None:
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    command = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command) ": state is field 3
    ppid, utime, stime, cutime, cstime = (int(fields[i]) for i in (1, 11, 12, 13, 14))  # fields 4, 14 to 17
    return _Stat(command, ppid, utime, stime, cutime, cstime)


def _pids() -> list[int]:
    try:
        return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []
