"""`dsar bench`: the scenarios, run on a stack of the bench's own, and the table they fill.

    tenth   load the population with the subject at a tenth of the volumes; start the children;
            one request for him, against the floor (the plain read); peaks; stop the children
    large   the same with the whole volumes (PopulationSizes.benchmark())
    many    on the large population's ordinary subjects, with the large phase's children (peaks
            reset): a warm-up, single requests on the idle stack, then many at once
    crypto  the sealing, ZIP and age floors on the large archive's data files

Each size gets fresh children, so that each one's peak memory is its own. Everything runs in a
fresh temporary folder (the stack's state, logs, the requester's identity, archives), which is
removed at the end, with the stack stopped, whatever happens.
"""

import asyncio
import contextlib
import os
import shutil
import statistics
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TextIO

from connectors.testing.population import Population, PopulationSizes
from dsar_common.settings import Settings
from dsar_service.bench import _crypto
from dsar_service.bench._floor import FloorResult, read_floor
from dsar_service.bench._options import BenchOptions
from dsar_service.bench._postgres import local_postmaster
from dsar_service.bench._proc import cpu_seconds, peak_rss_bytes, reset_peak, tree_cpu_seconds
from dsar_service.bench._processes import Children, bench_environment, running_children
from dsar_service.bench._profile import Profile, find_py_spy, profile_lines, recording, summarize
from dsar_service.bench._requests import BenchError, Timed, require_ready, submit_and_watch, submit_many
from dsar_service.bench._sources import fill_sources, heavy_subject, ordinary_subjects
from dsar_service.bench._table import (
    Table,
    aligned,
    at_least,
    at_most,
    mebibytes,
    percentile,
    rate,
    ratio_of,
    seconds,
)
from dsar_service.client import AgeIdentity, DsarClient, SubjectFields, decrypt_file, generate_identity, save_archive
from dsar_service.demo import _Narrator, _while_alive

TARGET_RATIO = 1.5  # end to end / floor
TARGET_PEAK = 256 << 20  # bytes, per process, at both sizes
TARGET_GROWTH = 1.5  # peak at the large size / peak at a tenth
TARGET_THROUGHPUT = 25.0  # requests per second
TARGET_P99 = 2.0  # seconds
TARGET_SINGLE = 0.3  # seconds
BENCH_DEADLINE_SECONDS = 1800.0
POSTGRES = "postgresql (all databases)"  # the CPU table's row for the PostgreSQL server
BENCH = "bench (client, floor reader)"  # the CPU table's row for this process


@dataclass
class _Run:
    """What the scenarios share: where things go, who to encrypt to, what was measured so far."""

    options: BenchOptions
    narrator: _Narrator
    work: Path
    identity: AgeIdentity
    identity_file: Path
    table: Table = field(default_factory=Table)
    peaks: dict[str, dict[str, int]] = field(default_factory=dict)  # size label -> process -> bytes
    profiles: list[Profile] = field(default_factory=list)
    archive_zip: Path | None = None
    population: Population | None = None
    settings: Settings | None = None
    environ: dict[str, str] = field(default_factory=dict)
    servers: dict[str, int] = field(default_factory=dict)  # the stack's broker and MongoDB server, by name
    postmaster: int | None = None  # the stack's PostgreSQL server, when it is a process of this machine
    cpu: dict[str, tuple[dict[str, float], int]] = field(default_factory=dict)  # scenario -> (seconds, requests)

    @property
    def stack_settings(self) -> Settings:
        assert self.settings is not None, "the stack is not up"
        return self.settings


async def run_bench(options: BenchOptions, out: TextIO) -> int:
    """Run the benchmark (see the module's docstring), print its table to `out`; 0 once it ran.

    A missed target is shown in the table (MISS), not in the exit code: the machines are shared and
    noisy. Raises BenchError (or a ClientError from a call to the service) when a scenario cannot
    be run: a request that does not end READY, a child that exits, a stack that does not start.
    """
    narrator = _Narrator(out)
    py_spy = None
    if options.profile_dir is not None:
        py_spy = find_py_spy()
        if py_spy is None:
            raise BenchError("profiling needs py-spy: pip install py-spy")
    if options.work_dir is not None:
        options.work_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dsar-bench-", dir=options.work_dir))
    try:
        identity = await generate_identity()
        identity_file = work / "identity.txt"
        identity.write(identity_file)
        run = _Run(options, narrator, work, identity, identity_file)
        narrator.say(_preamble(options))
        async with asyncio.timeout(BENCH_DEADLINE_SECONDS):
            if any(options.runs(name) for name in ("large", "tenth", "many")):
                async with _stack(run):
                    if options.runs("tenth"):
                        await _heavy_phase(run, "tenth", options.sizes.tenth, py_spy)
                    if options.runs("large") or options.runs("many"):
                        await _heavy_phase(run, "large", options.sizes.large, py_spy)
                _memory_rows(run)
            if options.runs("crypto"):
                await _crypto_phase(run)
        narrator.say()
        for line in run.table.lines():
            narrator.say(line)
        if run.cpu:
            narrator.say()
            for line in _cpu_lines(run.cpu, postgres_seen=run.postmaster is not None):
                narrator.say(line)
        if run.profiles:
            narrator.say()
            narrator.say(f"profiles (py-spy, {options.profile_dir}):")
            cpu = {f"{label}/{name}": value for label, (used, _) in run.cpu.items() for name, value in used.items()}
            for line in profile_lines(run.profiles, cpu):
                narrator.say(line)
        misses = run.table.misses
        narrator.say()
        narrator.say(f"{len(misses)} target(s) missed" if misses else "every target met")
        return 0
    except BaseException:
        if not options.keep_work_dir:
            narrator.say(f"the run failed; its logs are kept in {_keep_logs(work)}")
        raise
    finally:
        if options.keep_work_dir:
            narrator.say(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _keep_logs(work: Path) -> Path:
    """Copy a failed run's logs (the children's, then the stack servers') to a folder of their
    own, out of the work folder about to be removed; its path. Logs hold no personal data."""
    kept = Path(tempfile.mkdtemp(prefix="dsar-bench-logs-", dir=work.parent))
    for folder, prefix in ((work / "logs", ""), (work / "state" / "logs", "stack-")):
        for log in sorted(folder.glob("*.log")):
            shutil.copy2(log, kept / f"{prefix}{log.name}")
    return kept


def _preamble(options: BenchOptions) -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    mode = "quick (tiny sizes: checks the bench, measures nothing)" if options.quick else "full"
    return f"dsar bench, {mode}: {os.cpu_count()} CPUs, load average {load}"


@contextlib.asynccontextmanager
async def _stack(run: _Run) -> AsyncIterator[None]:
    from dsar_service import stack

    state_dir = run.work / "state"
    with run.narrator.step(f"starting the embedded stack in {state_dir}"):
        info = await stack.stack_up(state_dir, postgres=run.options.postgres)
    run.servers = {name: pid for name, component in (("broker", stack.Component.KAFKA),
                                                     ("mongodb", stack.Component.MONGODB))
                   if (pid := info.get(component).pid) is not None}  # fmt: skip
    run.postmaster = await local_postmaster(info.database_url)
    try:
        run.environ = bench_environment(state_dir)
        run.settings = Settings.load(run.environ)
        run.narrator.say(f"  consumers' fetch wait {run.settings.kafka.fetch_wait_ms} ms (Tansu answers a fetch over"
                         " several partitions only when it is over: every hop may wait that long)")  # fmt: skip
        yield
    finally:
        with run.narrator.step("stopping the embedded stack"):
            await asyncio.shield(stack.stack_down(state_dir))


async def _heavy_phase(run: _Run, label: str, sizes: PopulationSizes, py_spy: str | None) -> None:
    """Load the population, start fresh children, time one request for the heavy subject; then `many`."""
    settings = run.stack_settings
    with run.narrator.step(f"loading the {label} population"):
        loaded = await fill_sources(settings, run.options.seed, sizes)
    demo = loaded.population.demo
    subject_rows = sum(sum(tables.values()) for tables in demo.expected_counts.values())
    run.narrator.say(f"  {loaded.rows:,} rows; the subject's: {subject_rows:,}, with {demo.page_views:,} page views")
    run.population = loaded.population
    async with running_children(settings, run.environ, run.work / "logs", run.narrator, label) as children:
        await _warm_up(run, children, label)
        if label == "tenth" or run.options.runs("large"):
            await _heavy_request(run, label, children, py_spy)
        if label == "large" and run.options.runs("many"):
            await _many(run, children, py_spy)


async def _warm_up(run: _Run, children: Children, label: str) -> None:
    """One request for an ordinary subject, not measured: the service's consumers join their group
    (seconds on a fresh broker), the connectors open their pools, the code paths are warm."""
    settings, population = run.stack_settings, run.population
    assert population is not None
    email = (await ordinary_subjects(settings, population, 1))[0]
    async with DsarClient.connect(settings) as client:
        with run.narrator.step(f"{label}: a warm-up request (not measured)"):
            request = submit_and_watch(client, SubjectFields(emails=[email]), run.identity.recipient)
            require_ready(await _while_alive(list(children.all), request))


async def _heavy_request(run: _Run, label: str, children: Children, py_spy: str | None) -> None:
    """Time the heavy subject's request against the floor, `options.repeat` times (each its
    floor read before and after); the median run is the one the table shows."""
    settings, population = run.stack_settings, run.population
    assert population is not None
    subject = heavy_subject(population)
    floor_subjects = [(subject.emails, subject.nir)]
    for pid in children.pids().values():
        reset_peak(pid)
    runs: list[tuple[Timed, FloorResult]] = []
    archive = run.work / f"{label}.age"
    download_seconds = 0.0
    async with DsarClient.connect(settings) as client:
        for index in range(run.options.repeat):
            first = index == 0
            of = f" ({index + 1} of {run.options.repeat})" if run.options.repeat > 1 else ""
            with run.narrator.step(f"{label}: the floor (plain asyncpg and motor reads){of}"):
                async with _cpu_used(run, children, f"{label} floor", 1) if first else contextlib.nullcontext():
                    floor = await read_floor(settings, floor_subjects)
            with run.narrator.step(f"{label}: one request for the subject, submit to ready{of}"):
                async with _measured(run, py_spy, children, label) if first else contextlib.nullcontext():
                    request = submit_and_watch(client, subject, run.identity.recipient)
                    timed = require_ready(await _while_alive(list(children.all), request))
            if first:
                with run.narrator.step(f"{label}: downloading the archive"):
                    began = asyncio.get_running_loop().time()
                    await save_archive(client.download(timed.request_id), archive)
                    download_seconds = asyncio.get_running_loop().time() - began
            with run.narrator.step(f"{label}: the floor again{of}"):
                again = await read_floor(settings, floor_subjects)
            runs.append((timed, min(floor, again, key=lambda result: result.seconds)))
    run.peaks[label] = {name: peak_rss_bytes(pid) or 0 for name, pid in children.pids().items()}
    if label == "large" and run.options.runs("crypto"):
        run.archive_zip = run.work / f"{label}.zip"
        with run.narrator.step(f"{label}: decrypting the archive (for the crypto floors)"):
            await decrypt_file(archive, run.archive_zip, run.identity_file)
    archive.unlink(missing_ok=True)
    ratios = [timed.seconds / floor.seconds if floor.seconds else float("inf") for timed, floor in runs]
    timed, floor = runs[ratios.index(statistics.median_high(ratios))]  # of an even count, the worse middle one
    _heavy_rows(run.table, label, timed, floor, download_seconds)
    if len(runs) > 1:
        listed = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        run.table.add(label, "  ratio of each run", f"{listed} (the median run is shown)")


@contextlib.asynccontextmanager
async def _measured(run: _Run, py_spy: str | None, children: Children, label: str) -> AsyncIterator[None]:
    """The CPU the request uses, and its profile if one was asked for."""
    async with _maybe_recording(run, py_spy, children, label), _cpu_used(run, children, label, 1):
        yield


def _heavy_rows(table: Table, label: str, timed: Timed, floor: FloorResult, download_seconds: float) -> None:
    assemble = timed.seconds - timed.collected_seconds if timed.collected_seconds is not None else None
    judged = label == "large"  # the target is the large subject's; at a tenth, fixed costs weigh more
    table.add(label, "submit → ready", seconds(timed.seconds), reference=f"floor {seconds(floor.seconds)}",
              ratio=ratio_of(timed.seconds, floor.seconds), target=f"ratio ≤ {TARGET_RATIO}" if judged else "",
              check=at_most(TARGET_RATIO) if judged else None)  # fmt: skip
    if timed.collected_seconds is not None and assemble is not None:
        table.add(label, "  collect + assemble", f"{seconds(timed.collected_seconds)} + {seconds(assemble)}")
    if timed.systems_ended:
        ended = sorted(timed.systems_ended.items(), key=lambda item: item[1])
        table.add(label, "  systems ended after", ", ".join(f"{name} {value:.2f}" for name, value in ended) + " s")
    table.add(label, "records/s", rate(timed.records / timed.seconds, "records/s"),
              reference=rate(floor.rows / floor.seconds if floor.seconds else 0.0, "rows/s"))  # fmt: skip
    table.add(label, "  records / rows", f"{timed.records:,}", reference=f"{floor.rows:,} rows")
    table.add(label, "archive MB/s (assembly)", rate(timed.archive_bytes / 1e6 / (assemble or timed.seconds), "MB/s"),
              reference=f"{mebibytes(timed.archive_bytes)} encrypted")  # fmt: skip
    table.add(label, "download MB/s", rate(timed.archive_bytes / 1e6 / download_seconds, "MB/s"))


def _memory_rows(run: _Run) -> None:
    """One row per process: its peak at the large size against its peak at a tenth."""
    large, tenth = run.peaks.get("large", {}), run.peaks.get("tenth", {})
    for name in dict.fromkeys([*large, *tenth]):
        big, small = large.get(name), tenth.get(name)
        values = [value for value in (big, small) if value]
        growth = ratio_of(big, small) if big and small else None

        def met(_: float, values: list[int] = values, growth: float | None = growth) -> bool:
            return all(value <= TARGET_PEAK for value in values) and (growth is None or growth <= TARGET_GROWTH)

        run.table.add("memory", f"peak RSS {name}", f"large {mebibytes(big)}" if big else "-",
                      reference=f"tenth {mebibytes(small)}" if small else "", ratio=growth,
                      target=f"≤ {TARGET_PEAK >> 20} MiB, ratio ≤ {TARGET_GROWTH}", check=met,
                      judged=growth or 0.0)  # fmt: skip


async def _many(run: _Run, children: Children, py_spy: str | None) -> None:
    settings, sizes, population = run.stack_settings, run.options.sizes, run.population
    assert population is not None
    emails = await ordinary_subjects(settings, population, sizes.many_requests + sizes.single_requests + 1)
    warmup, singles, batch = emails[0], emails[1 : 1 + sizes.single_requests], emails[1 + sizes.single_requests :]
    subjects = [SubjectFields(emails=[email]) for email in batch]
    alive = list(children.all)
    recipient = run.identity.recipient
    async with DsarClient.connect(settings) as client:
        with run.narrator.step(f"many: a warm-up, then {len(singles)} request(s) alone on the idle stack"):
            single_times = []
            for email in [warmup, *singles]:
                timed = await _while_alive(alive, submit_and_watch(client, SubjectFields(emails=[email]), recipient))
                single_times.append(require_ready(timed).seconds)
            single_times = single_times[1:]  # the warm-up's is not counted
        with run.narrator.step("many: the floor of the single subjects"):
            single_floor = await read_floor(settings, [([email], "") for email in singles])
        for pid in children.pids().values():
            reset_peak(pid)
        with run.narrator.step(f"many: {len(subjects)} requests, {sizes.many_in_flight} in flight"):
            recorded = _maybe_recording(run, py_spy, children, "many")
            async with recorded, _cpu_used(run, children, "many", len(subjects)):
                lot = submit_many(client, subjects, recipient, sizes.many_in_flight)
                timings, wall = await _while_alive(alive, lot)
    peaks = {name: peak_rss_bytes(pid) or 0 for name, pid in children.pids().items()}
    with run.narrator.step("many: the floor (the same subjects, read one after the other)"):
        floor = await read_floor(settings, [([email], "") for email in batch])
    latencies = [timed.seconds for timed in timings]
    throughput = len(timings) / wall
    table = run.table
    table.add("many", "throughput", rate(throughput, "requests/s"),
              reference=f"floor {rate(len(batch) / floor.seconds, 'subjects/s')}", ratio=ratio_of(wall, floor.seconds),
              target=f"≥ {TARGET_THROUGHPUT:.0f} requests/s", check=at_least(TARGET_THROUGHPUT),
              judged=throughput)  # fmt: skip
    lot_size = f"{len(timings)}, {sizes.many_in_flight}"
    table.add("many", "  requests, in flight", lot_size, reference=f"in {seconds(wall)}")
    table.add("many", "latency p50", seconds(percentile(latencies, 0.5)))
    table.add("many", "latency p99", seconds(percentile(latencies, 0.99)), target=f"≤ {seconds(TARGET_P99)}",
              check=at_most(TARGET_P99), judged=percentile(latencies, 0.99))  # fmt: skip
    # Where the tail comes from: the first `in_flight` requests arrive at once on an idle stack.
    later = latencies[sizes.many_in_flight :]
    if later:
        table.add("many", "  p99 after the first wave", seconds(percentile(later, 0.99)),
                  reference=f"p50 {seconds(percentile(later, 0.5))}")  # fmt: skip
    single = statistics.median(single_times)
    per_subject = single_floor.seconds / max(1, len(singles))
    table.add("many", "single request (idle)", seconds(single), reference=f"floor {seconds(per_subject)}",
              ratio=ratio_of(single, per_subject), target=f"≤ {seconds(TARGET_SINGLE)}", check=at_most(TARGET_SINGLE),
              judged=single)  # fmt: skip
    for name, peak in peaks.items():
        table.add("many", f"peak RSS {name}", mebibytes(peak), target=f"≤ {TARGET_PEAK >> 20} MiB",
                  check=at_most(TARGET_PEAK), judged=float(peak))  # fmt: skip


@contextlib.asynccontextmanager
async def _cpu_used(run: _Run, children: Children, label: str, requests: int) -> AsyncIterator[None]:
    """Record the CPU time each child and stack server uses while the body runs (from /proc)."""
    processes = {**children.pids(), **run.servers, BENCH: os.getpid()}
    readers = {name: partial(cpu_seconds, pid) for name, pid in processes.items()}
    if run.postmaster is not None:
        readers[POSTGRES] = partial(tree_cpu_seconds, run.postmaster)
    before = {name: read() for name, read in readers.items()}
    yield
    used = {}
    for name, read in readers.items():
        start, end = before[name], read()
        if start is not None and end is not None:
            used[name] = end - start
    run.cpu[label] = (used, requests)


def _cpu_lines(cpu: Mapping[str, tuple[dict[str, float], int]], *, postgres_seen: bool) -> list[str]:
    """CPU time (user + system, from /proc) by process in each scenario of `cpu` (scenario -> (seconds
    by process, requests)), per request when there were many; PostgreSQL's "n/a" when not `postgres_seen`."""
    names = [*dict.fromkeys(name for used, _ in cpu.values() for name in used if name != POSTGRES), POSTGRES]
    columns = [(used, *(("ms/request", 1000 / requests, 0) if requests > 1 else ("s", 1.0, 1)))
               for used, requests in cpu.values()]  # fmt: skip
    rows = [["CPU (/proc)", *(f"{label} ({unit})" for label, (_, unit, _, _) in zip(cpu, columns, strict=True))]]
    for name in [*names, "all"]:
        missing = "n/a" if name == POSTGRES else "-"
        values = [sum(used.values()) if name == "all" else used.get(name) for used, *_ in columns]
        rows.append([name, *(missing if value is None else f"{value * scale:.{digits}f}"
                             for value, (_, _, scale, digits) in zip(values, columns, strict=True))])  # fmt: skip
    if postgres_seen:
        note = "its postmaster and backends; it serves the source systems' databases (policy, claims) too"
    else:
        note = "n/a: the server is not a process of this machine (a remote URL), and 'all' leaves it out"
    return [*aligned(rows), f"{POSTGRES}: {note}"]


@contextlib.asynccontextmanager
async def _maybe_recording(run: _Run, py_spy: str | None, children: Children, label: str) -> AsyncIterator[None]:
    """Profile the children while the body runs, if profiling was asked for (else nothing)."""
    if py_spy is None or run.options.profile_dir is None:
        yield
        return
    pids = children.pids()
    async with recording(py_spy, pids, run.options.profile_dir, label) as files:
        yield
    run.profiles.extend(summarize(f"{label}/{name}", path) for name, path in zip(pids, files, strict=True))


async def _crypto_phase(run: _Run) -> None:
    limit = run.options.sizes.crypto_bytes
    with run.narrator.step("crypto: seal, open, zip, age and the archive writer, on archive bytes"):
        if run.archive_zip is not None and run.archive_zip.exists():
            payload = _crypto.archive_payload(run.archive_zip, limit)
        else:
            from connectors.testing.population import generate

            population = run.population or generate(run.options.seed, run.options.sizes.large)
            payload = await asyncio.to_thread(_crypto.population_payload, population, limit)
        speeds = await asyncio.to_thread(_crypto.measure, payload, run.identity.recipient)
        zipped = await asyncio.to_thread(_crypto.compressed_sizes, payload)
    run.narrator.say(f"  on {payload.origin}")
    reference = speeds[0]
    run.table.add("crypto", reference.stage, rate(reference.bytes_per_second / 1e6, "MB/s"), reference="(reference)")
    for speed in speeds[1:]:
        # Seconds per byte against SHA-256's: how many times slower than hashing the same bytes.
        slower = ratio_of(speed.seconds / speed.size, reference.seconds / reference.size) if speed.size else None
        value = rate(speed.bytes_per_second / 1e6, "MB/s")
        out = f" → {mebibytes(zipped[speed.stage])}" if speed.stage in zipped else ""
        run.table.add("crypto", speed.stage, value, reference=f"{mebibytes(speed.size)} in{out}", ratio=slower)
