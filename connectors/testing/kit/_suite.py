"""`ConformanceSuite`: the base class a connector's test module subclasses to run every check."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any, ClassVar, TypeVar

import pytest

from connectors.sdk import Connector, RequestKind
from connectors.testing.kit import _checks as checks
from connectors.testing.kit._cases import NegativeCase, SeededStore, SubjectCase
from connectors.testing.kit._stores import embedded_mongodb, mongodb_url, open_source, postgres_url, temporary_database

T = TypeVar("T")

KNOWN_ACTIVITIES: frozenset[str] = frozenset(
    {"policy_management", "fraud_prevention", "prospection", "recruitment", "site_audience"}
)
"""The processing activities of the privacy policy, until the processing register replaces this list."""


class Harness:
    """The suite's event loop, its seeded store, and the large subject once seeded (shared by a class)."""

    def __init__(self, suite: "ConformanceSuite", runner: asyncio.Runner, store: SeededStore) -> None:
        self.suite = suite
        self.runner = runner
        self.store = store
        self._many: SubjectCase | None = None

    def run(self, check: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `check(connector, source, *args)` in the suite's loop, with a source of its own."""

        async def with_source() -> T:
            source = open_source(self.store)
            try:
                return await check(self.suite.connector, source, *args)
            finally:
                await source.aclose()

        return self.runner.run(with_source())

    def many(self) -> SubjectCase:
        """The subject `seed_many` seeded with `suite.stream_records` records (seeded on first use)."""
        if self._many is None:
            self._many = self.runner.run(self.suite.seed_many(self.store, self.suite.stream_records))
        return self._many


class ConformanceSuite:
    """The checks every connector passes, against its own store. Subclass it as `Test<Name>Conformance`.

    Set `connector` and `subjects` (and `negatives`), implement `seed` and `seed_many`; the kit
    creates a uniquely named database on the test server, calls `seed` once, runs the checks,
    and drops the database. Each check is a test method of its own:

    - `test_declaration_is_valid`: `Connector.check()`, searches taking `(q, db)`, a provenance
      and an activity on every field, weak identifiers only in counting combinations, no other
      installed connector of the same name;
    - `test_activities_are_in_the_register`: every activity is in `activity_register()`;
    - `test_each_accepted_identifier_finds_the_subject`: every combination the connector accepts,
      on its own, returns exactly each subject's records (so a phone with the birth date does
      not bring the household); every accepted combination must be held by some subject case;
    - `test_weak_identifiers_alone_find_nothing`: each negative case, each weak identifier of each
      subject alone, and each weak + birth date pair with a birth date nobody has, find nothing,
      even handed to the searches without the runtime's filtering;
    - `test_portability_returns_no_derived_field`: through the runtime, a portability request
      sends no derived field and nothing access would not send;
    - `test_counts_reported_equal_records_sent`: through the runtime's Attempt (in-memory
      producer, small chunks), the Completion's record, chunk and byte counts equal what the
      sealed chunks hold, and the chunks hold what the searches found, each record once;
    - `test_records_stream_in_bounded_memory`: `stream_records` records (100,000) for the
      `seed_many` subject, consumed under tracemalloc, peak below `memory_ceiling` (16 MiB);
    - `test_cancellation_stops_the_search_promptly`: cancelling the consuming task after the first
      record, and again 5,000 records into the `seed_many` subject's records, ends it within
      `cancel_within` (1 s) each time, with no further record; the store still answers afterwards.

    The checks run in an event loop of the kit's own (one per class), so they work the same under
    any pytest-asyncio mode or none. Nothing here needs Kafka.
    """

    connector: ClassVar[Connector]
    """The connector under test (the module's `connector` object)."""

    subjects: ClassVar[Sequence[SubjectCase]] = ()
    """Seeded subjects: their identifiers and the records they must get."""

    negatives: ClassVar[Sequence[NegativeCase]] = ()
    """Identifiers that must find nothing: a namesake's name, a shared phone, a shared policy number."""

    stream_records: ClassVar[int] = 100_000
    """How many records `seed_many` is asked for."""

    memory_ceiling: ClassVar[int] = 16 * 2**20
    """The highest peak (bytes, tracemalloc) allowed while consuming the `seed_many` subject's records.

    A cursor streaming policy's 100,000 access-log rows peaks at 0.5 MiB; fetching them all at once,
    at 47 MiB. Raise it only for large documents: about (rows per round trip) x (size of one) x 2.
    """

    cancel_within: ClassVar[float] = 1.0
    """Seconds a cancelled search may take to stop."""

    chunk_limit: ClassVar[int] = 4096
    """Chunk size for the count check: small, so that even a small subject spans several chunks."""

    server_url: ClassVar[str | None] = None
    """The database server; None for `DSAR_TEST_POSTGRES_URL` / `DSAR_TEST_MONGODB_URL` (or an embedded one)."""

    async def seed(self, store: SeededStore) -> None:
        """Create the schema in `store` (a new, empty database) and fill it with the subjects' data."""
        raise NotImplementedError("implement seed(store): create the schema and insert the subjects' data")

    async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
        """Add a subject with `n` records (at least) to `store` and return their case.

        Bulk-insert (`COPY`, `insert_many`) into the dataset that grows with the subject (an access
        log, page views…). Give the case's `records` as counts (`{"file_access_log": n, …}`) to have
        them checked too. Called once, after `seed`, by the streaming and cancellation checks.
        """
        raise NotImplementedError("implement seed_many(store, n): seed a subject with n records")

    def activity_register(self) -> Collection[str] | None:
        """The processing activities every field's activity must belong to; None skips the check."""
        return KNOWN_ACTIVITIES

    @pytest.fixture(scope="class")
    @classmethod
    def conformance(cls) -> Iterator[Harness]:
        """The suite's loop and seeded store, for every check of the class."""
        suite = cls()
        declared = cls.connector.store
        with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner, suite._server(declared.kind) as url:
            if url is None:
                pytest.skip(f"no {declared.kind} server: set DSAR_TEST_MONGODB_URL or install dsar[stack]")
            database = temporary_database(declared, url)
            store = runner.run(database.__aenter__())
            try:
                runner.run(suite.seed(store))
                yield Harness(suite, runner, store)
            finally:
                runner.run(database.__aexit__(None, None, None))

    def _server(self, kind: str) -> Any:
        if self.server_url is not None:
            return contextlib.nullcontext(self.server_url)
        if kind == "postgresql":
            return contextlib.nullcontext(postgres_url())
        configured = mongodb_url()
        return contextlib.nullcontext(configured) if configured else embedded_mongodb()

    def test_declaration_is_valid(self) -> None:
        checks.check_declaration(self.connector)

    def test_activities_are_in_the_register(self) -> None:
        register = self.activity_register()
        if register is None:
            pytest.skip("no processing register")
        checks.check_activities(self.connector, register)

    def test_each_accepted_identifier_finds_the_subject(self, conformance: Harness) -> None:
        conformance.run(checks.check_finds_subjects, self.subjects)

    def test_weak_identifiers_alone_find_nothing(self, conformance: Harness) -> None:
        conformance.run(checks.check_weak_alone, self.subjects, self.negatives)

    def test_portability_returns_no_derived_field(self, conformance: Harness) -> None:
        for case in self.subjects:
            conformance.run(checks.check_portability, case, self.chunk_limit)

    def test_counts_reported_equal_records_sent(self, conformance: Harness) -> None:
        for case in self.subjects:
            for kind in RequestKind:
                conformance.run(checks.check_counts, case, kind, self.chunk_limit)

    def test_records_stream_in_bounded_memory(self, conformance: Harness) -> None:
        many = conformance.many()
        figures = conformance.run(checks.check_streams, many, self.stream_records, self.memory_ceiling)
        print(f"\n{self.connector.name}: {figures.records} records in {figures.seconds:.2f} s under tracemalloc,"
              f" peak {figures.peak_bytes / 2**20:.1f} MiB")  # fmt: skip

    def test_cancellation_stops_the_search_promptly(self, conformance: Harness) -> None:
        many = conformance.many()
        midway = min(self.stream_records // 2, 5_000)  # inside the large dataset, past a few round trips
        figures = conformance.run(checks.check_cancellation, many, self.cancel_within, midway)
        stops = ", ".join(f"after {n} records in {seconds * 1000:.0f} ms" for n, seconds in figures.stops)
        print(f"\n{self.connector.name}: cancelled {stops}")
