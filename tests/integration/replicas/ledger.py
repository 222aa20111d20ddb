"""What the service's database went through, recorded by triggers the test installs, and checked.

The service deletes a request's sealed chunks once its archive is stored, so the tables alone
cannot say afterwards whether a chunk was stored twice or an attempt dispatched twice. The
ledger keeps, in tables of the test's own in the service's database:

- every row inserted into `result_chunks` (an insert ignored as a duplicate fires no trigger),
- every change of a system's state or attempt in `request_systems` (with its expected chunk
  count and records when it completes),
- every change of a request's state or archive version in `requests`.

    await install_ledger(settings.database_url)   # once the first replica has created the schema
    ...
    ledger = await read_ledger(settings.database_url)
    assert not ledger.problems(request_ids)

Triggers are plain PostgreSQL: what they see is what any replica wrote.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

from tests.support.database import connected

LEDGER_SQL = """
CREATE TABLE test_ledger_chunks (
    request_id uuid, system text, attempt integer, sequence bigint, record_count integer,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION test_ledger_chunk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_ledger_chunks (request_id, system, attempt, sequence, record_count)
    VALUES (NEW.request_id, NEW.system, NEW.attempt, NEW.sequence, NEW.record_count);
    RETURN NULL;
END $$;
CREATE TRIGGER test_ledger_chunk AFTER INSERT ON result_chunks
    FOR EACH ROW EXECUTE FUNCTION test_ledger_chunk();

CREATE TABLE test_ledger_systems (
    request_id uuid, system text, state text, attempt integer, round integer,
    expected_chunks bigint, records bigint, at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION test_ledger_system() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_ledger_systems (request_id, system, state, attempt, round, expected_chunks, records)
    VALUES (NEW.request_id, NEW.system, NEW.state, NEW.attempt, NEW.round, NEW.expected_chunks, NEW.records);
    RETURN NULL;
END $$;
CREATE TRIGGER test_ledger_system AFTER UPDATE ON request_systems
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.attempt IS DISTINCT FROM NEW.attempt)
    EXECUTE FUNCTION test_ledger_system();

CREATE TABLE test_ledger_requests (
    request_id uuid, state text, archive_version integer, at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION test_ledger_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_ledger_requests (request_id, state, archive_version)
    VALUES (NEW.request_id, NEW.state, NEW.archive_version);
    RETURN NULL;
END $$;
CREATE TRIGGER test_ledger_request AFTER UPDATE ON requests
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.archive_version IS DISTINCT FROM NEW.archive_version)
    EXECUTE FUNCTION test_ledger_request();
"""


async def install_ledger(database_url: str) -> None:
    """Create the ledger's tables and triggers in the service's database (its schema must exist)."""
    async with connected(database_url) as connection:
        await connection.execute(LEDGER_SQL)


@dataclass(frozen=True)
class SystemEnd:
    """A system as it stands at the end: its state, attempt and what its completion announced."""

    state: str
    attempt: int
    round: int
    expected_chunks: int | None
    records: int


@dataclass(frozen=True)
class Ledger:
    """The recorded history and the final rows of the requests of one test."""

    # (request, system, attempt) -> sequence -> times stored (1 unless the store de-duplicates badly)
    chunks: dict[tuple[str, str, int], Counter[int]]
    chunk_records: dict[tuple[str, str, int], int]
    # (request, system) -> the attempts it was dispatched with, in order
    dispatches: dict[tuple[str, str], list[int]]
    systems: dict[tuple[str, str], SystemEnd]
    # request -> (state, archive_version, archive chunk versions present)
    requests: dict[str, tuple[str, int, tuple[int, ...]]]
    # request -> states it went through, in order, with when
    history: dict[str, list[tuple[str, int, datetime]]]

    def assemblies(self, request_id: str) -> int:
        """How many times an assembly claimed the request (each claim takes a new archive version)."""
        return len({version for state, version, _ in self.history.get(request_id, []) if state == "assembling"})

    def problems(self, request_ids: list[str], *, retries_allowed: bool) -> list[str]:
        """Everything that breaks exactly-once for these requests; empty when all is well.

        Every request ready, one archive version stored; every completed system's chunks of its
        completing attempt stored once each, numbered 0..n-1, as many as its completion announced,
        their records summing to the system's count; no attempt dispatched twice; and, without
        `retries_allowed`, no attempt beyond those that asking again in a later round explains.
        """
        found: list[str] = []
        for request_id in request_ids:
            state, version, stored_versions = self.requests[request_id]
            if state != "ready":
                found.append(f"{request_id}: {state}")
            if stored_versions != (version,):
                found.append(f"{request_id}: archive versions stored {stored_versions}, current {version}")
        for (request_id, system), end in sorted(self.systems.items()):
            if request_id not in request_ids:
                continue
            where = f"{request_id}/{system}"
            dispatched = self.dispatches.get((request_id, system), [])
            if len(dispatched) != len(set(dispatched)):
                found.append(f"{where}: an attempt dispatched twice {dispatched}")
            if not retries_allowed and end.attempt > end.round:
                found.append(f"{where}: attempt {end.attempt} in round {end.round} (dispatched {dispatched})")
            for (r, s, attempt), sequences in self.chunks.items():
                if (r, s) == (request_id, system) and any(n > 1 for n in sequences.values()):
                    found.append(f"{where}: attempt {attempt} has chunks stored twice")
            if end.state != "completed":
                continue
            sequences = self.chunks.get((request_id, system, end.attempt), Counter())
            if sorted(sequences) != list(range(end.expected_chunks or 0)):
                found.append(
                    f"{where}: attempt {end.attempt} completed with {end.expected_chunks} chunks announced, "
                    f"{len(sequences)} stored"
                )
            stored_records = self.chunk_records.get((request_id, system, end.attempt), 0)
            if stored_records != end.records:
                found.append(f"{where}: {stored_records} records in its chunks, {end.records} counted")
        return found


async def read_ledger(database_url: str) -> Ledger:
    """The ledger and the final rows, as they stand now."""
    async with connected(database_url) as connection:
        chunk_rows = await connection.fetch(
            "SELECT request_id::text AS r, system, attempt, sequence, record_count FROM test_ledger_chunks"
        )
        dispatch_rows = await connection.fetch(
            "SELECT request_id::text AS r, system, attempt FROM test_ledger_systems"
            " WHERE state = 'dispatched' ORDER BY at"
        )
        system_rows = await connection.fetch(
            "SELECT request_id::text AS r, system, state, attempt, round, expected_chunks, records FROM request_systems"
        )
        request_rows = await connection.fetch(
            "SELECT request_id::text AS r, state, archive_version,"
            " ARRAY(SELECT DISTINCT version FROM archive_chunks a WHERE a.request_id = q.request_id"
            "       ORDER BY version) AS versions FROM requests q"
        )
        history_rows = await connection.fetch(
            "SELECT request_id::text AS r, state, archive_version, at FROM test_ledger_requests ORDER BY at"
        )
    chunks: dict[tuple[str, str, int], Counter[int]] = defaultdict(Counter)
    chunk_records: dict[tuple[str, str, int], int] = defaultdict(int)
    for row in chunk_rows:
        key = (row["r"], row["system"], row["attempt"])
        chunks[key][row["sequence"]] += 1
        chunk_records[key] += row["record_count"]
    dispatches: dict[tuple[str, str], list[int]] = defaultdict(list)
    for row in dispatch_rows:
        dispatches[(row["r"], row["system"])].append(row["attempt"])
    history: dict[str, list[tuple[str, int, datetime]]] = defaultdict(list)
    for row in history_rows:
        history[row["r"]].append((row["state"], row["archive_version"], row["at"]))
    return Ledger(
        chunks=dict(chunks),
        chunk_records=dict(chunk_records),
        dispatches=dict(dispatches),
        systems={
            (row["r"], row["system"]): SystemEnd(
                row["state"], row["attempt"], row["round"], row["expected_chunks"], row["records"]
            )
            for row in system_rows
        },
        requests={row["r"]: (row["state"], row["archive_version"], tuple(row["versions"])) for row in request_rows},
        history=dict(history),
    )
