"""Figures of a process from Linux's /proc: peak resident memory, CPU time.

`VmHWM` in /proc/<pid>/status is the high-water mark of the resident set since the process started,
or since it was last reset by writing "5" to /proc/<pid>/clear_refs (Linux 4.0 and later; the
process must be ours). Resetting before a scenario measures that scenario's peak alone.
"""

import os
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
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (command) ": state is field 3
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime and stime, fields 14 and 15
