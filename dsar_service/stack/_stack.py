"""`up`, `down` and `status` of the embedded stack in one state folder, and `running_stack` for tests.

`stack_up` starts what is not running (all three servers at once, each on a free loopback port),
waits until each answers its own protocol, makes the databases, writes `stack.toml`, and
returns: the servers run on, detached, until `stack_down`. Components already up are kept, so
a second `up` starts nothing. If anything fails, what this call started is stopped again and
the error names the component and its log.
"""

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from dsar_service.stack import _postgres
from dsar_service.stack._layout import Layout
from dsar_service.stack._model import (
    Component,
    ComponentStatus,
    StackDatabases,
    StackError,
    StackInfo,
    StackStatus,
    State,
)
from dsar_service.stack._net import LOOPBACK, free_port, port_accepts
from dsar_service.stack._processes import PidRecord, child_runs, is_alive, spawn, stop
from dsar_service.stack._readiness import (
    ProcessExited,
    kafka_answers,
    mongodb_answers,
    postgres_answers,
    wait_ready,
)
from dsar_service.stack._servers import secantus_argv, tansu_argv
from dsar_service.stack._settings_file import KeptValues, write_settings

DEFAULT_DEADLINE_SECONDS = 60.0
DEFAULT_GRACE_SECONDS = 5.0  # SecantusDB needs ~2 s; now and then it deadlocks on SIGTERM, then SIGKILL
_START_ATTEMPTS = 3  # a server that exits at once (its free port taken meanwhile) is retried on a new port
_LOCK_POLL_SECONDS = 0.1


def service_database_for(master_key: bytes) -> str:
    """The service database of a stack: one per master key, so that two stacks sharing a
    PostgreSQL server (5432, say) never see each other's requests, which they could not open."""
    return f"dsar_{hashlib.sha256(master_key).hexdigest()[:10]}"


async def stack_up(
    state_dir: Path,
    *,
    postgres: str = _postgres.AUTO,
    databases: StackDatabases | None = None,
    environ: Mapping[str, str] | None = None,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
) -> StackInfo:
    """Start the stack in `state_dir` (made if missing), or report it if it already runs.

    `postgres` is "auto" (DSAR_STACK_POSTGRES_URL, else 127.0.0.1:5432 if it answers, else
    embedded), "embedded", or a server's URL. `databases` are made if missing (default: dsar,
    policy, claims). `environ` is where DSAR_STACK_POSTGRES_URL is looked up (os.environ by
    default). Raises StackError if a component is not ready within `deadline_seconds`.
    """
    began = time.monotonic()
    deadline = began + deadline_seconds
    layout = Layout.of(state_dir)
    layout.create()
    kept = KeptValues.load_or_fresh(layout.settings_file)
    wanted = databases or StackDatabases(service=service_database_for(kept.master_key))
    env = os.environ if environ is None else environ
    async with _locked(layout, deadline):
        records: dict[Component, PidRecord] = {}
        startup: dict[Component, float] = {}
        to_start = []
        for component in Component:
            record = PidRecord.read(layout.pid_record(component))
            state = _state_of(record)
            if record is not None and state is State.UP:
                records[component] = record
                continue
            if record is not None and state is State.UNRESPONSIVE and record.pid is not None:
                await stop(record.pid, record.marker, record.stop_signal, DEFAULT_GRACE_SECONDS)
            layout.pid_record(component).unlink(missing_ok=True)
            to_start.append(component)

        spawned: list[PidRecord] = []
        starters: dict[Component, Callable[[], Awaitable[PidRecord]]] = {
            Component.KAFKA: lambda: _start_kafka(layout, deadline, spawned),
            Component.MONGODB: lambda: _start_mongodb(layout, deadline, spawned),
            Component.POSTGRES: lambda: _start_postgres(layout, deadline, spawned, postgres, wanted, env),
        }
        try:
            async with asyncio.TaskGroup() as group:
                tasks = {c: group.create_task(_timed(starters[c])) for c in to_start}
        except BaseExceptionGroup as failures:
            await _stop_records(layout, spawned, DEFAULT_GRACE_SECONDS)
            raise _first_stack_error(failures) or failures from None
        except BaseException:
            await _stop_records(layout, spawned, DEFAULT_GRACE_SECONDS)
            raise
        for component, task in tasks.items():
            records[component], startup[component] = task.result()

        kafka, mongodb, pg = records[Component.KAFKA], records[Component.MONGODB], records[Component.POSTGRES]
        database_url = _postgres.database_url(pg.url, wanted.service)
        write_settings(
            layout.settings_file,
            kept=kept,
            kafka_bootstrap=kafka.url,
            database_url=database_url,
            source_postgres_url=pg.url,
            source_mongodb_url=mongodb.url,
        )
        return StackInfo(
            state_dir=layout.root,
            settings_file=layout.settings_file,
            kafka_bootstrap=kafka.url,
            mongodb_url=mongodb.url,
            postgres_url=pg.url,
            database_url=database_url,
            grpc_address=kept.grpc_address,
            components=tuple(_status_of(c, records[c], layout, startup.get(c)) for c in Component),
            already_running=not to_start,
            startup_seconds=time.monotonic() - began,
        )


async def stack_down(state_dir: Path, *, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
    """Stop every server the stack started in `state_dir` and remove their pid records.

    Each gets its stop signal (SIGTERM; SIGINT, a fast shutdown, for PostgreSQL), then SIGKILL
    with its whole process group after `grace_seconds`. An external PostgreSQL is left running.
    Data (SecantusDB's, the embedded PostgreSQL's) and stack.toml stay. Stopping a stopped
    stack does nothing.
    """
    layout = Layout.of(state_dir)
    if not layout.run_dir.exists():
        return
    async with _locked(layout, time.monotonic() + grace_seconds * 2 + 10):
        records = [r for c in Component if (r := PidRecord.read(layout.pid_record(c))) is not None]
        await _stop_records(layout, records, grace_seconds)


def stack_status(state_dir: Path) -> StackStatus:
    """Each component's state, port and pid, read from the pid records and checked against the live system."""
    layout = Layout.of(state_dir)
    return StackStatus(
        state_dir=layout.root,
        components=tuple(_status_of(c, PidRecord.read(layout.pid_record(c)), layout, None) for c in Component),
    )


@contextlib.asynccontextmanager
async def running_stack(
    state_dir: Path,
    *,
    postgres: str = _postgres.AUTO,
    databases: StackDatabases | None = None,
    environ: Mapping[str, str] | None = None,
    deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
) -> AsyncIterator[StackInfo]:
    """Start fresh servers in `state_dir` for the body of an `async with`, and always stop them after.

    Refuses a folder where a stack already runs: a test must own the servers it stops.
    """
    if stack_status(state_dir).any_running:
        raise StackError(f"a stack already runs in {state_dir}; stop it first")
    try:
        yield await stack_up(
            state_dir,
            postgres=postgres,
            databases=databases,
            environ=environ,
            deadline_seconds=deadline_seconds,
        )
    finally:
        await stack_down(state_dir)


async def _start_kafka(layout: Layout, deadline: float, spawned: list[PidRecord]) -> PidRecord:
    def record(pid: int, port: int) -> PidRecord:
        url = f"{LOOPBACK}:{port}"
        return PidRecord(Component.KAFKA, pid, port, url, f"tcp://{url}", "Tansu (memory storage)")

    return await _start_server(
        Component.KAFKA, layout, deadline, spawned, tansu_argv, record, kafka_answers, "Tansu (Kafka)"
    )


async def _start_mongodb(layout: Layout, deadline: float, spawned: list[PidRecord]) -> PidRecord:
    layout.mongodb_storage.mkdir(mode=0o700, exist_ok=True)
    layout.mongodb_config.touch(mode=0o600, exist_ok=True)

    def argv(port: int) -> list[str]:
        return secantus_argv(port, layout.mongodb_storage, layout.mongodb_config)

    def record(pid: int, port: int) -> PidRecord:
        url = f"mongodb://{LOOPBACK}:{port}"
        return PidRecord(Component.MONGODB, pid, port, url, str(layout.mongodb_storage), "SecantusDB")

    return await _start_server(
        Component.MONGODB, layout, deadline, spawned, argv, record, mongodb_answers, "SecantusDB (MongoDB)"
    )


async def _start_postgres(
    layout: Layout,
    deadline: float,
    spawned: list[PidRecord],
    postgres: str,
    databases: StackDatabases,
    environ: Mapping[str, str],
) -> PidRecord:
    external = await _postgres.choose_external(postgres, environ)
    if external is not None:
        parts = urlsplit(external)
        where = f"{parts.hostname}:{parts.port or 5432}"
        await wait_ready(
            lambda: postgres_answers(_postgres.database_url(external, "postgres")),
            what=f"PostgreSQL at {where}",
            deadline=deadline,
            log=None,
        )
        record = PidRecord(
            Component.POSTGRES, None, parts.port or 5432, external, "", f"external PostgreSQL at {where}"
        )
    else:
        data = layout.postgres_data
        await _postgres.init_data_dir(data, layout.initdb_log)

        def argv(port: int) -> list[str]:
            return _postgres.server_argv(port, data)

        def make(pid: int, port: int) -> PidRecord:
            url = _postgres.embedded_url(port)
            return PidRecord(
                Component.POSTGRES, pid, port, url, str(data), "embedded PostgreSQL", _postgres.STOP_SIGNAL
            )

        async def probe(url: str) -> None:
            await postgres_answers(_postgres.database_url(url, "postgres"))

        record = await _start_server(
            Component.POSTGRES, layout, deadline, spawned, argv, make, probe, "embedded PostgreSQL"
        )
    await _postgres.ensure_databases(record.url, databases.all())
    record.write(layout.pid_record(Component.POSTGRES))
    return record


async def _start_server(
    component: Component,
    layout: Layout,
    deadline: float,
    spawned: list[PidRecord],
    argv: Callable[[int], list[str]],
    make_record: Callable[[int, int], PidRecord],
    probe: Callable[[str], Awaitable[None]],
    what: str,
) -> PidRecord:
    """Spawn a server on a free port, record it, and wait until `probe` gets an answer from it."""
    log = layout.log(component)
    for attempt in range(1, _START_ATTEMPTS + 1):
        port = free_port()
        record = make_record(spawn(argv(port), log), port)
        spawned.append(record)
        record.write(layout.pid_record(component))
        pid = record.pid
        assert pid is not None
        try:
            await wait_ready(
                functools.partial(probe, record.url),
                what=what,
                deadline=deadline,
                log=log,
                alive=functools.partial(child_runs, pid),
            )
        except ProcessExited:
            if attempt == _START_ATTEMPTS:
                raise
            continue
        return record
    raise AssertionError("unreachable")


async def _timed(start: Callable[[], Awaitable[PidRecord]]) -> tuple[PidRecord, float]:
    began = time.monotonic()
    record = await start()
    return record, time.monotonic() - began


async def _stop_records(layout: Layout, records: list[PidRecord], grace_seconds: float) -> None:
    """Stop the managed servers among `records`, all at once, and remove every record's file."""
    await asyncio.gather(*(stop(r.pid, r.marker, r.stop_signal, grace_seconds) for r in records if r.pid is not None))
    for record in records:
        layout.pid_record(record.component).unlink(missing_ok=True)


def _state_of(record: PidRecord | None) -> State:
    if record is None:
        return State.DOWN
    if record.pid is None:  # external: it is up if it accepts connections
        host = urlsplit(record.url).hostname or LOOPBACK
        return State.UP if port_accepts(record.port, host) else State.DOWN
    if not is_alive(record.pid, record.marker):
        return State.DOWN
    return State.UP if port_accepts(record.port) else State.UNRESPONSIVE


def _status_of(
    component: Component, record: PidRecord | None, layout: Layout, startup_seconds: float | None
) -> ComponentStatus:
    if record is None:
        return ComponentStatus(component, State.DOWN, log=layout.log(component))
    state = _state_of(record)
    return ComponentStatus(
        component=component,
        state=state,
        port=record.port,
        pid=record.pid if state is not State.DOWN else None,
        managed=record.managed,
        description=record.description,
        log=layout.log(component) if record.managed else None,
        startup_seconds=startup_seconds,
    )


def _first_stack_error(group: BaseExceptionGroup[BaseException]) -> StackError | None:
    for error in group.exceptions:
        if isinstance(error, StackError):
            return error
        if isinstance(error, BaseExceptionGroup) and (inner := _first_stack_error(error)):
            return inner
    return None


@contextlib.asynccontextmanager
async def _locked(layout: Layout, deadline: float) -> AsyncIterator[None]:
    """Hold `stack.lock` (flock) so that two `up`/`down` on one folder never interleave."""
    with _lock_file(layout.lock_file) as fd:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StackError(f"another stack command holds {layout.lock_file}") from None
                await asyncio.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def _lock_file(path: Path) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        yield fd
    finally:
        os.close(fd)
