"""Optional profiles of the bench's children with py-spy, and where their CPU went.

py-spy (`pip install py-spy`) samples a running Python process from outside, without changing it.
The bench records each child in the raw "collapsed stacks" format (`frame;frame;… count`, full file
names, idle threads left out), stops it with SIGINT at the end of the scenario, and summarises each
file three ways.

Samples are not CPU time: a thread py-spy counts as active may be waiting for a core (on a loaded
machine, much of the time), and with `--nonblocking` its idle test is a guess. The shares say where
a process's active time went; its CPU time is the bench's CPU table (from /proc).

- self: the function on top of the stack (where the samples were, library code included);
- within: dsar's own functions (dsar_service, dsar_common, connectors; not the CLI's entry point)
  by the share of samples they are on the stack for, callees included;
- ours: the deepest of dsar's own frames on the stack, i.e. the project function responsible for
  that sample, whatever library it was in; samples with none are the event loop's own work and the
  libraries' callbacks (protocol parsing, Kafka fetches, socket writes).
"""

import asyncio
import contextlib
import functools
import shutil
import signal
import sys
import sysconfig
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

RATE = 100  # samples per second
OWN_CODE = ("dsar_service/", "dsar_common/", "connectors/")
ENTRY_POINT = "dsar_service/cli.py"  # on every stack: not a cost of its own
NO_FRAME_OF_OURS = "(no dsar frame: event loop, library callbacks)"
_STOP_SECONDS = 20.0
_ROOT = Path(__file__).resolve().parents[2]  # the folder holding dsar_service, dsar_common and connectors
# Files are shown relative to the deepest of these that holds them: our code, the libraries, the standard library.
_FOLDERS = {str(_ROOT), *(sysconfig.get_paths()[key] for key in ("purelib", "platlib", "platstdlib", "stdlib"))}
_PREFIXES = tuple(sorted((f"{folder}/" for folder in _FOLDERS), key=len, reverse=True))


def find_py_spy() -> str | None:
    """The py-spy executable: beside this Python's, else on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass(frozen=True)
class Profile:
    """One process's profile: samples of active threads in all, and the top functions (name, samples)."""

    process: str
    samples: int
    top_self: list[tuple[str, int]]
    top_within: list[tuple[str, int]]
    top_ours: list[tuple[str, int]]

    @property
    def sampled_seconds(self) -> float:
        """Thread-seconds py-spy saw active (running or waiting for a core): not CPU time."""
        return self.samples / RATE


@contextlib.asynccontextmanager
async def recording(py_spy: str, pids: Mapping[str, int], folder: Path, label: str) -> AsyncIterator[list[Path]]:
    """Record every process in `pids` while the body runs; yields the files (written once it ends)."""
    _make_folder(folder)
    recorders: list[asyncio.subprocess.Process] = []
    files: list[Path] = []
    try:
        for name, pid in pids.items():
            output = folder / f"{label}-{name}.txt"
            argv = ["record", "--pid", str(pid), "--output", str(output), "--format", "raw", "--nolineno",
                    "--rate", str(RATE), "--nonblocking", "--full-filenames"]  # fmt: skip
            quiet = asyncio.subprocess.DEVNULL
            recorders.append(
                await asyncio.create_subprocess_exec(py_spy, *argv, stdin=quiet, stdout=quiet, stderr=quiet)
            )
            files.append(output)
        yield files
    finally:
        for recorder in recorders:
            if recorder.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    recorder.send_signal(signal.SIGINT)
        for recorder in recorders:
            try:
                await asyncio.wait_for(recorder.wait(), _STOP_SECONDS)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    recorder.kill()
                await recorder.wait()


def _make_folder(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)


def summarize(process: str, path: Path, top: int = 8) -> Profile:
    """The profile in `path` (py-spy's raw format), its `top` functions each way."""
    own: Counter[str] = Counter()
    within: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    try:
        text = path.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_relative(frame) for frame in stack.split(";")]
        total += count
        leaf[frames[-1]] += count
        ours = [frame for frame in frames if _is_ours(frame)]
        own[ours[-1] if ours else NO_FRAME_OF_OURS] += count
        within.update(dict.fromkeys(ours, count))
    return Profile(process, total, leaf.most_common(top), within.most_common(top), own.most_common(top))


@functools.cache
def _relative(frame: str) -> str:
    """`function (file)` with the file relative to the first of _PREFIXES that holds it, if any."""
    function, paren, file = frame.rpartition(" (")
    prefix = next((prefix for prefix in _PREFIXES if file.startswith(prefix)), None)
    return f"{function}{paren}{file.removeprefix(prefix)}" if paren and prefix else frame


@functools.cache
def _is_ours(frame: str) -> bool:
    """Whether the frame is in dsar's own code, its file named relative to _ROOT (`dsar_service/x/y.py`),
    absolute, or as py-spy shortens it without `--full-filenames` (`y.py`, `x/y.py`): a tail of one
    of our files' paths."""
    _, paren, file = _relative(frame).rpartition(" (")
    file = file.removesuffix(")")
    if not paren or file.startswith("/") or file == ENTRY_POINT or ENTRY_POINT.endswith(f"/{file}"):
        return False
    return file.startswith(OWN_CODE) or any(path.endswith(f"/{file}") for path in _own_files())


@functools.cache
def _own_files() -> tuple[str, ...]:
    """Our source files, relative to _ROOT (`dsar_service/requests/collection.py`, …)."""
    return tuple(str(path.relative_to(_ROOT)) for part in OWN_CODE for path in (_ROOT / part).rglob("*.py"))


def profile_lines(profiles: list[Profile], cpu: Mapping[str, float] | None = None) -> list[str]:
    """The profiles as text: per process, the samples (and its CPU time from `cpu`, by process name,
    when given), then the top functions with their share of the samples."""
    lines: list[str] = []
    for profile in profiles:
        used = (cpu or {}).get(profile.process)
        measured = "" if used is None else f"; CPU {used:.1f} s (/proc)"
        lines.append(f"{profile.process}: {profile.samples:,} samples, {profile.sampled_seconds:.1f} s active"
                     f" (running or waiting for a core){measured}")  # fmt: skip
        if not profile.samples:
            continue
        for title, top in (("self", profile.top_self), ("within", profile.top_within), ("ours", profile.top_ours)):
            lines.append(f"  {title}:")
            lines.extend(f"    {count / profile.samples:6.1%}  {name}" for name, count in top)
    return lines
