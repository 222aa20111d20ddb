"""`dsar demo`: the main job end to end, on the embedded stack, in one command.

    1. start the embedded stack in the state folder (or use the one already running there);
    2. create the five source systems' schemas and fill them with a small generated population;
    3. start the service and the connectors, as `python -m dsar_service.cli serve` and
       `… connectors run` subprocesses (their logs go to <state>/logs/demo-*.log);
    4. wait until every installed connector has announced itself (ListSystems);
    5. make a fresh age identity, submit an access request for the demo subject (e-mail and NIR);
    6. show each system's progress live, download the encrypted archive, decrypt it;
    7. print what the archive holds (files and sizes, records per system and dataset) and where the
       archive, the decrypted ZIP and the identity were written (<state>/demo/).

Whatever happens, including Ctrl-C, what the demo started is stopped on the way out: the
connectors, then the service, then the stack if the demo started it (unless --keep-stack).
Personal data is only written to <state>/demo/ (owner-only files); nothing of it is printed.
"""

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO, TypeVar
from urllib.parse import urlsplit, urlunsplit

from dsar_common.settings import Settings
from dsar_service.client import (
    UNSUCCESSFUL_REQUEST_STATES,
    ClientError,
    DsarClient,
    ServiceUnavailable,
    SubjectFields,
    build_submit_request,
    decrypt_file,
    follow,
    generate_identity,
    human_bytes,
    make_view,
    request_state_name,
    save_archive,
    summarize_archive,
    summary_lines,
)
from dsar_service.stack._net import free_port

if TYPE_CHECKING:
    from connectors.testing.population import Population

# How long the service and the connectors may take to come up and announce themselves.
STARTUP_SECONDS = 90.0
POLL_SECONDS = 0.5
# How long each child gets to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 15.0
CONNECTOR_GROUP = "dsar.connectors"

T = TypeVar("T")


class DemoError(ClientError):
    """A step of the demo failed; the message says which, and where to look."""


@dataclass(frozen=True)
class DemoOptions:
    """What `dsar demo` can be told (see `dsar demo --help`)."""

    seed: int = 15
    timeout_seconds: float = 300.0
    keep_stack: bool = False
    # Which PostgreSQL a stack the demo starts uses: "auto", "embedded" or a URL (see dsar_service.stack).
    postgres: str = "auto"


class _Narrator:
    """Prints the demo's steps, one line each, with how long each took.

    Output that cannot be written (a closed pipe: `dsar demo | head`) is dropped rather than
    raised, so that it can never stop the cleanup from running.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _write(self, text: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.out.write(text)
            self.out.flush()

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        self._write(f"• {text} … ")
        began = time.monotonic()
        try:
            yield
        except BaseException:
            self._write("failed\n")
            raise
        self._write(f"done ({time.monotonic() - began:.1f}s)\n")

    def say(self, text: str = "") -> None:
        self._write(f"{text}\n")


async def run_demo(
    settings: Settings, options: DemoOptions, out: TextIO, reload_settings: Callable[[], Settings]
) -> int:
    """Run the demo (see the module's docstring); return 0 when the archive was decrypted and summarised.

    `settings` names the state folder; once the stack is up, `reload_settings()` is called to read
    the settings file it wrote (the CLI owns `Settings.load()`). Raises DemoError, or a ClientError
    from a call to the service, on the first step that fails.
    """
    from dsar_service import stack

    narrator = _Narrator(out)
    state_dir = settings.state_dir.expanduser().resolve()
    demo_dir = state_dir / "demo"
    async with contextlib.AsyncExitStack() as cleanup:
        with narrator.step(f"starting the embedded stack in {state_dir}"):
            info = await stack.stack_up(state_dir, postgres=options.postgres)
        if info.already_running:
            narrator.say("  (it was already running: it is left running)")
        elif not options.keep_stack:
            cleanup.push_async_callback(_stop_stack, narrator, state_dir)
        settings = reload_settings()
        try:
            async with asyncio.timeout(options.timeout_seconds):
                return await _run_job(settings, state_dir, demo_dir, options.seed, narrator, cleanup)
        except TimeoutError:
            raise DemoError(f"the demo did not finish within {options.timeout_seconds:.0f}s") from None
    raise AssertionError("unreachable")  # the block returns or raises


async def _run_job(
    settings: Settings,
    state_dir: Path,
    demo_dir: Path,
    seed: int,
    narrator: _Narrator,
    cleanup: contextlib.AsyncExitStack,
) -> int:
    """Everything after the stack is up: the sources, the children (stopped by `cleanup`), the request."""
    with narrator.step("creating the source systems and loading the demo population"):
        subject, rows = await _fill_sources(settings, seed)
    narrator.say(f"  {rows:,} rows in policy, claims (PostgreSQL), crm, recruitment, analytics (MongoDB)")
    _make_private_folder(demo_dir)
    traces = demo_dir / "traces.jsonl"
    traces.unlink(missing_ok=True)
    metrics_address = f"127.0.0.1:{free_port()}"
    observability = {"DSAR_TRACE_EXPORT": str(traces), "DSAR_METRICS_LISTEN": metrics_address}
    children = await cleanup.enter_async_context(_children(settings, state_dir, narrator, observability))
    async with DsarClient.connect(settings) as client:
        with narrator.step("waiting for the service and every connector to announce itself"):
            systems = await _wait_for_systems(client, children, _installed_connectors())
        narrator.say(f"  connectors: {', '.join(systems)}")
        done = await _while_alive(children, _request_archive(client, subject, systems, demo_dir, narrator))
    await _show_observability(demo_dir, traces, metrics_address, narrator)
    return done


async def _show_observability(demo_dir: Path, traces: Path, metrics_address: str, narrator: _Narrator) -> None:
    """Save the service's /metrics, and say what the request's trace holds."""
    for line in await asyncio.to_thread(_observability_lines, demo_dir, traces, metrics_address):
        narrator.say(line)


def _observability_lines(demo_dir: Path, traces: Path, metrics_address: str) -> list[str]:
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    (demo_dir / "metrics.txt").write_text(metrics)
    systems = sorted(
        line.split('system="', 1)[1].split('"', 1)[0]
        for line in metrics.splitlines()
        if line.startswith("dsar_system_duration_seconds_count")
    )
    spans = [json.loads(line) for line in traces.read_text().splitlines() if line.strip()] if traces.exists() else []
    names = sorted({span["name"] for span in spans})
    return [
        f"metrics    {demo_dir / 'metrics.txt'} (duration histograms for {', '.join(systems) or 'no system'})",
        f"traces     {traces} ({len(spans)} spans: {', '.join(names)})",
    ]


async def _request_archive(
    client: DsarClient, subject: SubjectFields, systems: list[str], demo_dir: Path, narrator: _Narrator
) -> int:
    """Submit, watch, download, decrypt and summarise; the files go to `demo_dir`."""
    _make_private_folder(demo_dir)
    with narrator.step("making a fresh age identity for the requester"):
        identity = await generate_identity()
        identity_file = demo_dir / "identity.txt"
        identity.write(identity_file)
    request = build_submit_request("access", subject, identity.recipient, f"demo-{uuid.uuid4().hex[:16]}", systems)
    submitted = await client.submit(request)
    request_id = submitted.request.request_id
    narrator.say(f"• access request {request_id} submitted for the demo subject (by e-mail and NIR)")
    final = await follow(client.watch(request_id), make_view(narrator.out))
    if final.state in UNSUCCESSFUL_REQUEST_STATES:
        reason = f": {final.error}" if final.error else ""
        raise DemoError(f"the request ended {request_state_name(final.state).lower()}{reason}")
    archive_file = demo_dir / f"{request_id}.age"
    zip_file = demo_dir / f"{request_id}.zip"
    with narrator.step("downloading the encrypted archive"):
        archive = await save_archive(client.download(request_id), archive_file)
    with narrator.step("decrypting it with the requester's identity"):
        await decrypt_file(archive_file, zip_file, identity_file)
    summary = summarize_archive(zip_file)
    narrator.say()
    for line in summary_lines(summary):
        narrator.say(line)
    narrator.say()
    narrator.say(f"archive    {archive_file} ({human_bytes(archive.size_bytes)}, sha256 {archive.sha256})")
    narrator.say(f"decrypted  {zip_file}")
    narrator.say(f"identity   {identity_file} (public key {identity.recipient})")
    return 0


async def _fill_sources(settings: Settings, seed: int) -> tuple[SubjectFields, int]:
    """Reset the source systems and load a fresh population: the demo subject's e-mail and NIR, and the rows."""
    from connectors.testing.population import generate

    generated = generate(seed)
    rows = await load_sources(settings, generated)
    return SubjectFields(emails=[generated.demo.email], nir=generated.demo.nir), rows


async def load_sources(settings: Settings, population: "Population") -> int:
    """Drop the five systems' tables and collections, load `population`; how many rows went in.

    Only the tables and collections of world.md are dropped, in the databases the systems are
    named after, on the servers of the stack's settings file. The demo and the benchmark use it.
    """
    import asyncpg
    from pymongo import AsyncMongoClient

    from connectors.testing.population import load_population
    from connectors.testing.population.schemas import MONGO_SYSTEMS, POSTGRES_SYSTEMS, table_names

    dsns = {system: _database_url(settings.source_postgres_url, system) for system in POSTGRES_SYSTEMS}
    for system, dsn in dsns.items():
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f"DROP TABLE IF EXISTS {', '.join(table_names(system))} CASCADE")
        finally:
            await connection.close()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.source_mongodb_url)
    try:
        for system in MONGO_SYSTEMS:
            for collection in table_names(system):
                await mongo[system].drop_collection(collection)
        counts = await load_population(population, dsns, {system: mongo[system] for system in MONGO_SYSTEMS})
    finally:
        await mongo.close()
    return sum(sum(tables.values()) for tables in counts.values())


def _database_url(server_url: str, database: str) -> str:
    """`postgresql://user@host:port/<database>`, from the server's URL (any path in it replaced)."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def _make_private_folder(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _open_log(path: Path) -> BinaryIO:
    """The child's log file, truncated (its folder made owner-only if missing)."""
    _make_private_folder(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # also when the file was there from an earlier run
    return os.fdopen(descriptor, "wb")


def _installed_connectors() -> list[str]:
    """The systems whose connectors are installed (the `dsar.connectors` entry points), sorted."""
    return sorted({entry.name for entry in entry_points(group=CONNECTOR_GROUP)})


# --- the service and the connectors, as child processes -----------------------------------------


@dataclass
class _Child:
    """A child process of the demo and the log file its output goes to."""

    name: str
    process: asyncio.subprocess.Process
    log: Path

    def check(self) -> None:
        """Raise DemoError if the process has exited."""
        if self.process.returncode is not None:
            raise DemoError(f"the {self.name} exited (code {self.process.returncode}); see {self.log}{_tail(self.log)}")


def _tail(log: Path, lines: int = 1) -> str:
    """The log's last line, after a colon, to show why a child died (logs hold no personal data)."""
    try:
        last = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    except (OSError, IndexError):
        return ""
    return f": {' / '.join(last)}" if last else ""


@contextlib.asynccontextmanager
async def _children(
    settings: Settings, state_dir: Path, narrator: _Narrator, extra_env: dict[str, str]
) -> AsyncIterator[list[_Child]]:
    """Start `dsar serve` and `dsar connectors run`; stop them (connectors first) on the way out."""
    environ = {**os.environ, "DSAR_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1", **extra_env}
    children: list[_Child] = []
    try:
        for name, argv in (("service", ["serve"]), ("connectors", ["connectors", "run"])):
            log = state_dir / "logs" / f"demo-{name}.log"
            with _open_log(log) as output:
                process = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "dsar_service.cli", *argv,
                    stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output, env=environ,
                    start_new_session=True,  # Ctrl-C reaches the demo only, which stops them in order
                )  # fmt: skip
            children.append(_Child(name, process, log))
        narrator.say(f"• started the service (pid {children[0].process.pid}) and the connectors "
                     f"(pid {children[1].process.pid}); logs in {state_dir / 'logs'}")  # fmt: skip
        yield children
    finally:
        with narrator.step("stopping the connectors and the service"):
            for child in reversed(children):
                await asyncio.shield(_stop_child(child))


async def _while_alive(children: list[_Child], work: Coroutine[Any, Any, T]) -> T:
    """Run `work`, failing it with a DemoError as soon as one of the children exits."""
    task = asyncio.ensure_future(work)
    exits = [asyncio.ensure_future(child.process.wait()) for child in children]
    try:
        await asyncio.wait([task, *exits], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in exits:
            waiting.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.done() and not task.cancelled():
        return task.result()
    for child in children:
        child.check()
    raise AssertionError("unreachable")  # a child exited, so check() raised


async def _stop_child(child: _Child) -> None:
    """SIGTERM, then SIGKILL after the grace period; waits until the process is gone."""
    process = child.process
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def _stop_stack(narrator: _Narrator, state_dir: Path) -> None:
    from dsar_service import stack

    with narrator.step("stopping the embedded stack"):
        await asyncio.shield(stack.stack_down(state_dir))


async def _wait_for_systems(client: DsarClient, children: list[_Child], expected: list[str]) -> list[str]:
    """Poll ListSystems until every expected system is alive; fail at once if a child exits."""
    if not expected:
        raise DemoError(f"no connector is installed (no `{CONNECTOR_GROUP}` entry point)")
    deadline = time.monotonic() + STARTUP_SECONDS
    alive: set[str] = set()
    while True:
        for child in children:
            child.check()
        with contextlib.suppress(ServiceUnavailable):
            alive = {info.name for info in await client.list_systems() if info.alive}
            if alive >= set(expected):
                return sorted(expected)
        if time.monotonic() > deadline:
            missing = ", ".join(sorted(set(expected) - alive))
            raise DemoError(
                f"after {STARTUP_SECONDS:.0f}s, still waiting for: {missing or 'the service'}; "
                f"see {children[0].log.parent}"
            )
        await asyncio.sleep(POLL_SECONDS)
