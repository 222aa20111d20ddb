"""The conformance checks, as plain async functions: each raises ConformanceFailure, or returns figures.

`ConformanceSuite` calls them from pytest; they can be called from anywhere else too (a benchmark,
a notebook). Messages name datasets, identifier kinds and counts, never identifier values or keys.
"""

import asyncio
import contextlib
import inspect
import time
import tracemalloc
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from connectors.runtime.sources import Source
from connectors.sdk import (
    REDACTIONS,
    Connector,
    ConnectorDefinitionError,
    Field,
    Ident,
    Identifier,
    Provenance,
    Query,
    RequestKind,
)
from connectors.testing.kit._attempt import AttemptResult, run_attempt
from connectors.testing.kit._cases import Expected, NegativeCase, SubjectCase
from connectors.testing.kit._search import count_records, found_keys, stream_records
from dsar.bus.v1 import bus_pb2

ENTRY_POINT_GROUP = "dsar.connectors"
NOBODYS_BIRTH_DATE = "1900-01-01"
"""Paired with a subject's weak identifiers, this birth date must find nothing."""


class ConformanceFailure(AssertionError):
    """The connector breaks a rule of the contract; the message says which, and where."""


def _fail(rule: str, problems: Iterable[str]) -> None:
    listed = list(problems)
    if listed:
        raise ConformanceFailure(rule + ":\n  - " + "\n  - ".join(listed))


def _kinds(kinds: Iterable[Ident]) -> str:
    return "+".join(sorted(k.value for k in kinds))


# --- declaration ------------------------------------------------------------------------------


def check_declaration(connector: Connector) -> None:
    """The declaration as plain data: what `Connector.check()` checks, and what it cannot.

    Every dataset has a search taking `(q, db)`; every field a provenance and an activity; every
    accepted identifier is alone only when strong, and in a combination only with a strong one or
    the birth date; `discovers` lists strong identifiers; no other installed connector (entry
    point group `dsar.connectors`) uses the same name for a different object.
    """
    try:
        connector.check()
    except ConnectorDefinitionError as error:
        raise ConformanceFailure(f"Connector.check() refused the declaration: {error}") from None
    problems: list[str] = []
    for dataset in connector.datasets:
        parameters = list(inspect.signature(dataset.searcher).parameters.values())
        if len(parameters) != 2:
            problems.append(f"the search of {dataset.name} takes {len(parameters)} parameters, not (q, db)")
        if not dataset.fields:
            problems.append(f"{dataset.name} declares no field")
        for name, spec in dataset.fields.items():
            if not isinstance(spec, Field) or not isinstance(spec.provenance, Provenance):
                problems.append(f"{dataset.name}.{name} has no provenance")
            elif not spec.activity:
                problems.append(f"{dataset.name}.{name} has no activity")
    for combination in connector.accepts:
        if len(combination) == 1 and not next(iter(combination)).strong:
            problems.append(f"{_kinds(combination)} is accepted alone but does not designate a person")
        if len(combination) > 1 and not any(k.strong or k is Ident.BIRTH_DATE for k in combination):
            problems.append(f"{_kinds(combination)} holds no strong identifier and no birth date")
    problems += [f"discovers {k.value}, which is not strong" for k in connector.discovers if not k.strong]
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name != connector.name:
            continue
        installed = entry.load()
        if installed is not connector:
            problems.append(f"the installed connector {entry.name} ({entry.value}) is another object with this name")
    _fail(f"the declaration of {connector.name} is not valid", problems)


def check_activities(connector: Connector, register: Collection[str]) -> None:
    """Every activity a field names is one of the processing register's."""
    problems = [
        f"{dataset.name}.{name}: activity {spec.activity!r} is not in the processing register"
        for dataset in connector.datasets
        for name, spec in dataset.fields.items()
        if spec.activity not in register
    ]
    _fail("activities missing from the register", problems)


# --- finding the subject ------------------------------------------------------------------------


def compare(connector: Connector, expected: Expected, found: Iterable[tuple[str, str]]) -> list[str]:
    """What differs between the expected records and the (dataset, key) pairs found (no keys shown)."""
    by_dataset: dict[str, set[str]] = {}
    for dataset, key in found:
        by_dataset.setdefault(dataset, set()).add(key)
    names = [d.name for d in connector.datasets] + ([REDACTIONS] if REDACTIONS in expected else [])
    problems = [f"{name}: records of an undeclared dataset" for name in by_dataset if name not in names
                and name != REDACTIONS]  # fmt: skip
    for name in names:
        got = by_dataset.get(name, set())
        want = expected.get(name, 0)
        if isinstance(want, int):
            if len(got) != want:
                problems.append(f"{name}: {len(got)} records, expected {want}")
        else:
            missing, extra = len(set(want) - got), len(got - set(want))
            if missing or extra:
                problems.append(f"{name}: {missing} expected records missing, {extra} unexpected")
    return problems


def combinations_to_try(
    connector: Connector, cases: Sequence[SubjectCase]
) -> list[tuple[SubjectCase, frozenset[Ident]]]:
    """Each accepted combination each case can form; fails if a combination is formed by no case."""
    tried = [(case, c) for case in cases for c in connector.accepts if c <= case.kinds]
    untested = [_kinds(c) for c in connector.accepts if not any(c <= case.kinds for case in cases)]
    _fail("no subject case holds these accepted identifiers, so they are never tested",
          [f"{u}: add it to a SubjectCase" for u in untested])  # fmt: skip
    return tried


async def check_finds_subjects(connector: Connector, source: Source, cases: Sequence[SubjectCase]) -> int:
    """Each accepted identifier (strong alone, weak with its partner) finds exactly the expected records.

    Exactly: a phone with the birth date must not bring the household, a full name with the
    birth date must not bring the namesake. All identifiers together must give the same records.
    Returns how many searches were tried.
    """
    if not cases:
        raise ConformanceFailure("give at least one SubjectCase")
    problems: list[str] = []
    tried = combinations_to_try(connector, cases)
    for case, combination in tried:
        found = await found_keys(connector, source, case.query(combination))
        problems += [f"{case.label}, by {_kinds(combination)}: {p}" for p in compare(connector, case.records, found)]
    for case in cases:
        found = await found_keys(connector, source, case.query())
        problems += [f"{case.label}, by every identifier: {p}" for p in compare(connector, case.records, found)]
    _fail("a search does not return exactly the subject's records", problems)
    return len(tried) + len(cases)


async def check_weak_alone(
    connector: Connector, source: Source, subjects: Sequence[SubjectCase], negatives: Sequence[NegativeCase]
) -> int:
    """Weak identifiers alone find nothing, even handed to the searches unfiltered; nor with a wrong birth date.

    Tries each NegativeCase, each weak identifier of each subject alone, and each accepted
    weak + birth date combination with a birth date nobody has. Returns how many searches were tried.
    """
    queries: list[tuple[str, Query]] = [(n.label, n.query()) for n in negatives]
    for case in subjects:
        for kind in sorted(case.kinds, key=lambda k: k.value):
            if kind.weak:
                queries.append((f"{case.label}, {kind.value} alone", case.query({kind})))
        for combination in connector.accepts:
            if Ident.BIRTH_DATE in combination and all(k.weak or k is Ident.BIRTH_DATE for k in combination) \
                    and combination <= case.kinds:  # fmt: skip
                weak = case.query(combination - {Ident.BIRTH_DATE}).identifiers
                nobody = Query.of(RequestKind.ACCESS, [*weak, Identifier(Ident.BIRTH_DATE, NOBODYS_BIRTH_DATE)])
                queries.append((f"{case.label}, {_kinds(combination)} with another birth date", nobody))
    problems = []
    for label, query in queries:
        found = await found_keys(connector, source, query, restrict=False)
        if found:
            datasets = ", ".join(sorted({d for d, _ in found}))
            problems.append(f"{label}: {len(found)} records ({datasets})")
    _fail("weak identifiers found records without what makes them count", problems)
    return len(queries)


# --- streaming and cancellation ------------------------------------------------------------------


@dataclass(frozen=True)
class StreamFigures:
    """What streaming a large answer cost."""

    records: int
    peak_bytes: int
    seconds: float


async def check_streams(connector: Connector, source: Source, case: SubjectCase, at_least: int,
                        ceiling_bytes: int) -> StreamFigures:  # fmt: skip
    """Consume the subject's records one by one under tracemalloc: at least `at_least`, peak below the ceiling.

    Records are counted and dropped as they arrive, so the peak is the searches' own: a search that
    fetches all rows at once, or builds a list before yielding, goes over.
    """
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    baseline = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    try:
        counts = await count_records(connector, source, case.query())
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        if not was_tracing:
            tracemalloc.stop()
    seconds = time.perf_counter() - started
    total = sum(counts.values())
    problems = []
    if total < at_least:
        problems.append(f"{case.label}: {total} records, fewer than the {at_least} seed_many was asked for")
    if case.records:
        problems += compare(connector, case.records, ((d, f"{d}-{i}") for d, n in counts.items()
                                                     for i in range(n)))  # fmt: skip
    if peak > ceiling_bytes:
        problems.append(
            f"{case.label}: {total} records took a peak of {peak / 2**20:.1f} MiB, over the"
            f" {ceiling_bytes / 2**20:.0f} MiB ceiling: stream rows with a cursor, never fetch them all"
        )
    _fail("the records do not stream", problems)
    return StreamFigures(total, peak, seconds)


@dataclass(frozen=True)
class CancelFigures:
    """What cancelling a search in flight looked like: (records received, seconds to stop) per cancellation."""

    stops: tuple[tuple[int, float], ...]


async def _cancel_after(
    connector: Connector, source: Source, case: SubjectCase, after: int, within: float
) -> tuple[list[str], int, float]:
    received = 0
    reached = asyncio.Event()

    async def consume() -> None:
        nonlocal received
        async with contextlib.aclosing(stream_records(connector, source, case.query())) as records:
            async for _ in records:
                received += 1
                if received >= after:
                    reached.set()

    label = f"{case.label}, cancelled after {after} records"
    task = asyncio.create_task(consume())
    waiter = asyncio.create_task(reached.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED, timeout=300)
    waiter.cancel()
    if task.done():
        task.result()  # a search error surfaces as itself
        raise ConformanceFailure(f"{label}: the search ended first ({received} records); seed more")
    if not reached.is_set():
        task.cancel()
        raise ConformanceFailure(f"{label}: only {received} records within 300 s")
    at_cancel = received
    started = time.monotonic()
    task.cancel()
    await asyncio.wait({task}, timeout=within)
    elapsed = time.monotonic() - started
    problems = []
    if not task.done() or elapsed > within:
        problems.append(f"{label}: the search was still running {elapsed:.2f} s after its task was cancelled")
        for _ in range(3):  # one that keeps swallowing cancellations is left behind after a minute
            task.cancel()
            await asyncio.wait({task}, timeout=20)
    if task.done() and not task.cancelled():
        error = task.exception()
        problems.append(f"{label}: the search swallowed the cancellation ("
                        + (f"raised {type(error).__name__})" if error else "ended normally)"))  # fmt: skip
    if received != at_cancel:
        problems.append(f"{label}: {received - at_cancel} records arrived after the cancellation")
    return problems, at_cancel, elapsed


async def check_cancellation(
    connector: Connector, source: Source, case: SubjectCase, within: float, midway: int = 0
) -> CancelFigures:
    """Cancel the consuming task after its first record, then (if `midway`) after `midway` records, in
    the thick of a large dataset: each time it ends within `within` seconds and gets no more records;
    afterwards the store still answers the same search."""
    problems: list[str] = []
    stops = []
    for after in (1, midway) if midway > 1 else (1,):
        found, at_cancel, elapsed = await _cancel_after(connector, source, case, after, within)
        problems += found
        stops.append((at_cancel, elapsed))
    if not problems:
        async with asyncio.timeout(30), contextlib.aclosing(stream_records(connector, source, case.query())) as again:
            if await anext(again, None) is None:
                problems.append(f"{case.label}: after a cancelled search, the same search found nothing")
    _fail("cancellation does not stop the search promptly", problems)
    return CancelFigures(tuple(stops))


# --- through the runtime -----------------------------------------------------------------------


async def check_counts(connector: Connector, source: Source, case: SubjectCase, kind: RequestKind,
                       chunk_limit: int) -> AttemptResult:  # fmt: skip
    """Run the case through the runtime's Attempt: the Completion's counts equal what the chunks hold,
    and (for access) the chunks hold what the searches found, each record once."""
    query = case.query(kind=kind)
    result = await run_attempt(connector, source, query, chunk_limit=chunk_limit)
    c = result.completion
    label = f"{case.label} ({kind.value})"
    if c.status != bus_pb2.COMPLETION_STATUS_COMPLETED:
        raise ConformanceFailure(f"{label}: the attempt did not complete: {c.error}")
    problems = []
    if [ch.sequence for ch in result.chunks] != list(range(len(result.chunks))):
        problems.append(f"{label}: chunk sequences are not 0..n-1")
    if c.chunk_count != len(result.chunks):
        problems.append(f"{label}: completion says {c.chunk_count} chunks, {len(result.chunks)} were sent")
    if c.record_count != len(result.records):
        problems.append(f"{label}: completion says {c.record_count} records, the chunks hold {len(result.records)}")
    declared = sum(ch.record_count for ch in result.chunks)
    if declared != len(result.records):
        problems.append(f"{label}: chunk headers say {declared} records, the chunks hold {len(result.records)}")
    if c.byte_count != sum(len(p) for p in result.plaintexts):
        problems.append(
            f"{label}: completion says {c.byte_count} bytes, the chunks hold {sum(map(len, result.plaintexts))}"
        )
    if any(len(p) > chunk_limit for p in result.plaintexts):
        problems.append(f"{label}: a chunk is over the {chunk_limit}-byte limit")
    if len(result.keys) != len(result.records):
        problems.append(f"{label}: {len(result.records) - len(result.keys)} records were sent twice")
    if kind is RequestKind.ACCESS:
        searched = await found_keys(connector, source, query)
        if searched != result.keys:
            problems.append(f"{label}: the searches found {len(searched)} records, the runtime sent"
                            f" {len(result.keys)}, {len(searched ^ result.keys)} differ")  # fmt: skip
    _fail("counts reported differ from records sent", problems)
    return result


async def check_portability(connector: Connector, source: Source, case: SubjectCase, chunk_limit: int) -> int:
    """A portability request sends no derived field, no dataset without a portable field, nothing access
    would not send; and something, when the subject has records in a portable dataset. Returns the count."""
    result = await run_attempt(connector, source, case.query(kind=RequestKind.PORTABILITY), chunk_limit=chunk_limit)
    if result.completion.status != bus_pb2.COMPLETION_STATUS_COMPLETED:
        raise ConformanceFailure(f"{case.label} (portability): the attempt did not complete: {result.completion.error}")
    access = await found_keys(connector, source, case.query())
    datasets = {d.name: d for d in connector.datasets}
    problems: list[str] = []
    for record in result.records:
        if record.dataset == REDACTIONS:
            noted = datasets.get(str(record.fields.get("dataset")))
            if noted is None or not noted.portable:
                problems.append("a redaction note about a dataset portability does not return")
            continue
        dataset = datasets.get(record.dataset)
        if dataset is None or not dataset.portable:
            problems.append(f"{record.dataset}: sent, though it has no portable field")
            continue
        derived = sorted(set(record.fields) - dataset.portable_fields)
        if derived:
            problems.append(f"{record.dataset}: derived or undeclared fields sent: {', '.join(derived)}")
    extra = result.keys - access
    if extra:
        problems.append(f"{len(extra)} records sent for portability that access does not return")
    portable_expected = [name for name, want in case.records.items()
                         if name in datasets and datasets[name].portable and (want if isinstance(want, int)
                                                                               else len(want))]  # fmt: skip
    if portable_expected and not result.records:
        problems.append(f"{case.label}: nothing sent, though {', '.join(portable_expected)} hold portable data")
    _fail(f"{case.label}: portability sends what it must not", sorted(set(problems)))
    return len(result.records)


def dataset_counts(result: AttemptResult) -> Counter[str]:
    """Records sent, by dataset."""
    return Counter(r.dataset for r in result.records)
