"""Queries on requests, their systems, sealed result chunks and archive chunks.

Every change to a request ends with `pg_notify('dsar_requests', '<request_id> <state>')` in the
same transaction (or statement), so that watchers on any replica learn of it (see changes.py).
"""

import asyncio
import base64
import functools
import inspect
import json
import random
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from dsar_service.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound
from dsar_service.model import (
    ArchiveView,
    DatasetInfo,
    FieldInfo,
    Kind,
    RequestState,
    RequestView,
    SystemInfo,
    SystemProgress,
    SystemState,
)
from dsar_service.store.batches import columns, read_batches, statement_batches

NOTIFY_CHANNEL = "dsar_requests"

OPEN_SYSTEM_STATES = ("pending", "dispatched", "running")
RETRYABLE_SYSTEM_STATES = ("completed", "failed", "timed_out", "skipped")


@dataclass(frozen=True)
class AssemblyClaim:
    """A request taken for assembly: the archive version to build, and the request as claimed."""

    version: int
    secrets: "RequestSecrets"
    view: RequestView


class LostLease(Exception):
    """An assembly's claim on its request is gone (cancelled, or taken over after its lease ran out)."""


@dataclass(frozen=True)
class NewRequest:
    request_id: str
    request_key: str
    content_digest: bytes
    kind: Kind
    received_at: datetime
    due_at: datetime
    recipient: str
    sealed_identifiers: bytes
    public_key: bytes
    wrapped_private_key: bytes
    systems: Sequence[tuple[str, int]]  # (system, round)
    subject_digests: Sequence[bytes] = ()
    trace_context: str = ""


@dataclass(frozen=True)
class RequestSecrets:
    """What the service needs to dispatch and assemble; never leaves the service."""

    request_id: str
    kind: Kind
    state: RequestState
    recipient: str
    sealed_identifiers: bytes | None
    public_key: bytes
    wrapped_private_key: bytes | None
    archive_version: int
    trace_context: str = ""


@dataclass(frozen=True)
class SystemRow:
    request_id: str
    system: str
    state: SystemState
    round: int
    attempt: int
    queried_count: int
    expected_chunks: int | None
    sealed_discovered: bytes | None
    run_first_attempt: int = 1
    records: int = 0
    bytes: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def attempts_in_run(self) -> int:
        """How many attempts the current run (first dispatch, RetrySystem, asking again) has made."""
        return self.attempt - self.run_first_attempt + 1


@dataclass(frozen=True)
class Page:
    requests: list[RequestView]
    next_token: str


_DEADLOCK_RETRIES = 4


def _retry_deadlocks(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run a store method again when PostgreSQL broke a deadlock by aborting its transaction.

    The aborted transaction was rolled back whole, so running it again is safe; concurrent steps
    of one request (a dispatch and a cancel, say) can take row locks in different orders.
    """

    @functools.wraps(method)
    async def run(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(_DEADLOCK_RETRIES):
            try:
                return await method(*args, **kwargs)
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == _DEADLOCK_RETRIES - 1:
                    raise
                await asyncio.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

    return run


def _retrying(cls: type) -> type:
    """Every coroutine method of `cls` retried on deadlocks (async generators are left as they are)."""
    for name, member in list(vars(cls).items()):
        if inspect.iscoroutinefunction(member) and not name.startswith("__"):
            setattr(cls, name, _retry_deadlocks(member))
    return cls


@_retrying
class RequestStore:
    """The service's PostgreSQL, spoken in the domain's terms."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # The steps that many requests take at once under load, each run as one statement (batches.py).
        # Reads take no key: any calls go together.
        self._collecting_batches = read_batches(self._collecting_each)
        self._view_batches = read_batches(self._view_each)
        self._dispatch_batches = statement_batches(self._mark_each_dispatched, key=_request_system)
        self._chunk_batches = statement_batches(self._store_each_chunk, key=_chunk_key)
        self._completion_batches = statement_batches(self._record_each_completion, key=_request_system)
        self._check_batches = statement_batches(self._complete_each_if_whole, key=_request_system)

    # Submission -------------------------------------------------------------------------------

    async def insert(self, new: NewRequest) -> tuple[str, bytes, bool]:
        """Insert unless the key exists: returns (request_id, stored digest, created).

        The request, its systems and the notification in one statement (atomic on its own; the
        systems' foreign key is checked at its end, when the request's row is there).
        """
        created = await self._pool.fetchval(
            f"""WITH created AS (
                    INSERT INTO requests (request_id, request_key, content_digest, kind, state, received_at,
                        original_due_at, due_at, recipient, sealed_identifiers, public_key,
                        wrapped_private_key, updated_at, subject_digests, trace_context)
                    VALUES ($1, $2, $3, $4, 'collecting', $5, $6, $6, $7, $8, $9, $10, $5, $11, $12)
                    ON CONFLICT (request_key) DO NOTHING
                    {_NOTIFYING}),
                systems AS (
                    INSERT INTO request_systems (request_id, system, state, round)
                    SELECT created.request_id, wanted.system, 'pending', wanted.round
                    FROM created, unnest($13::text[], $14::int[]) AS wanted(system, round))
                SELECT request_id FROM created""",
            uuid.UUID(new.request_id),
            new.request_key,
            new.content_digest,
            new.kind.value,
            new.received_at,
            new.due_at,
            new.recipient,
            new.sealed_identifiers,
            new.public_key,
            new.wrapped_private_key,
            list(new.subject_digests),
            new.trace_context,
            [system for system, _ in new.systems],
            [round_ for _, round_ in new.systems],
        )
        if created is not None:
            return new.request_id, new.content_digest, True
        existing = await self._pool.fetchrow(
            "SELECT request_id, content_digest FROM requests WHERE request_key = $1", new.request_key
        )
        if existing is None:  # the request with this key was purged in between: insert it now
            return await self.insert(new)
        return str(existing["request_id"]), bytes(existing["content_digest"]), False

    async def existing_digest(self, request_key: str) -> bytes | None:
        """The content digest of the request with this key, if there is one."""
        value = await self._pool.fetchval("SELECT content_digest FROM requests WHERE request_key = $1", request_key)
        return None if value is None else bytes(value)

    async def count_for_subject(self, digests: Sequence[bytes], since: datetime) -> int:
        """Requests received since `since` that share a strong identifier with these digests."""
        if not digests:
            return 0
        count = await self._pool.fetchval(
            "SELECT count(*) FROM requests WHERE subject_digests && $1 AND received_at >= $2", list(digests), since
        )
        return int(count)

    async def counts_by_state(self, now: datetime) -> tuple[dict[RequestState, int], int]:
        """How many requests are in each state, and how many are overdue (not ready past due)."""
        rows = await self._pool.fetch(
            "SELECT state, count(*) AS n, count(*) FILTER (WHERE due_at < $1) AS overdue FROM requests GROUP BY state",
            now,
        )
        counts = {RequestState(r["state"]): int(r["n"]) for r in rows}
        overdue = sum(int(r["overdue"]) for r in rows if r["state"] in ("collecting", "assembling"))
        return counts, overdue

    # Retention --------------------------------------------------------------------------------

    async def purge_expired_archives(self, now: datetime) -> int:
        """Delete archives past their expiry; the request says when its archive was purged."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """UPDATE requests SET archive_purged_at = $1, updated_at = $1
                   WHERE archive_expires_at < $1 AND archive_purged_at IS NULL RETURNING request_id""",
                now,
            )
            ids = [r["request_id"] for r in rows]
            if ids:
                await conn.execute("DELETE FROM archive_chunks WHERE request_id = ANY($1)", ids)
        return len(ids)

    async def purge_requests_received_before(self, cutoff: datetime) -> int:
        """Delete request records (and with them identifiers, keys, chunks) past their retention."""
        status = await self._pool.execute("DELETE FROM requests WHERE received_at < $1", cutoff)
        return int(status.split()[-1])

    # Reading ----------------------------------------------------------------------------------

    async def get(self, request_id: str) -> RequestView:
        """The request and its systems, read in one statement (one snapshot, one round trip; batched)."""
        view = await self._view_batches(_uuid(request_id))
        if view is None:
            raise NotFound("no such request")
        return view

    async def _view_each(self, request_ids: list[uuid.UUID]) -> list[RequestView | None]:
        rows = await self._pool.fetch(
            """SELECT r.*, ARRAY(SELECT s FROM request_systems s WHERE s.request_id = r.request_id
                                 ORDER BY s.system) AS systems
               FROM requests r WHERE r.request_id = ANY($1::uuid[])""",
            request_ids,
        )
        views = {row["request_id"]: _view(row, row["systems"]) for row in rows}
        return [views.get(request_id) for request_id in request_ids]

    async def page(
        self,
        states: Sequence[RequestState],
        overdue_before: datetime | None,
        page_size: int,
        page_token: str,
    ) -> Page:
        after = _decode_token(page_token)
        clauses: list[str] = ["TRUE"]
        args: list[object] = []
        if states:
            args.append([s.value for s in states])
            clauses.append(f"state = ANY(${len(args)})")
        if overdue_before is not None:
            args.append(overdue_before)
            clauses.append(f"due_at < ${len(args)} AND state IN ('collecting', 'assembling')")
        if after is not None:
            args.extend(after)
            clauses.append(f"(received_at, request_id) < (${len(args) - 1}, ${len(args)})")
        args.append(page_size + 1)
        sql = (
            f"SELECT * FROM requests WHERE {' AND '.join(clauses)} "
            f"ORDER BY received_at DESC, request_id DESC LIMIT ${len(args)}"
        )
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(sql, *args)
            more = len(rows) > page_size
            rows = rows[:page_size]
            systems = await conn.fetch(
                "SELECT * FROM request_systems WHERE request_id = ANY($1) ORDER BY system",
                [r["request_id"] for r in rows],
            )
        by_request: dict[uuid.UUID, list[asyncpg.Record]] = {}
        for system in systems:
            by_request.setdefault(system["request_id"], []).append(system)
        views = [_view(r, by_request.get(r["request_id"], [])) for r in rows]
        token = _encode_token(rows[-1]["received_at"], rows[-1]["request_id"]) if more else ""
        return Page(views, token)

    async def secrets(self, request_id: str) -> RequestSecrets:
        row = await self._pool.fetchrow(
            f"SELECT {_SECRETS_COLUMNS} FROM requests r WHERE r.request_id = $1", _uuid(request_id)
        )
        if row is None:
            raise NotFound("no such request")
        return _secrets(row)

    async def collecting(self, request_id: str) -> tuple[RequestSecrets, list[SystemRow]]:
        """`secrets` and `system_rows` in one statement (one snapshot, one round trip; batched)."""
        found = await self._collecting_batches(_uuid(request_id))
        if found is None:
            raise NotFound("no such request")
        return found

    async def _collecting_each(
        self, request_ids: list[uuid.UUID]
    ) -> list[tuple[RequestSecrets, list[SystemRow]] | None]:
        rows = await self._pool.fetch(
            f"""SELECT {_SECRETS_COLUMNS}, ARRAY(SELECT s FROM request_systems s WHERE s.request_id = r.request_id
                                                 ORDER BY s.round, s.system) AS systems
                FROM requests r WHERE r.request_id = ANY($1::uuid[])""",
            request_ids,
        )
        found = {row["request_id"]: (_secrets(row), [_system_row(s) for s in row["systems"]]) for row in rows}
        return [found.get(request_id) for request_id in request_ids]

    async def system_rows(self, request_id: str) -> list[SystemRow]:
        rows = await self._pool.fetch(
            "SELECT * FROM request_systems WHERE request_id = $1 ORDER BY round, system", _uuid(request_id)
        )
        return [_system_row(r) for r in rows]

    async def open_request_ids(self) -> list[str]:
        rows = await self._pool.fetch("SELECT request_id FROM requests WHERE state = 'collecting'")
        return [str(r["request_id"]) for r in rows]

    async def claim_idle_requests(self, now: datetime, idle_since: datetime, limit: int = 100) -> list[str]:
        """Collecting requests unchanged since `idle_since` that something could move along.

        That is: one with a pending system (its round may be due), or one whose systems have all
        ended (its assembly is due). Attempts in flight are the timeout sweep's. The requests are
        claimed (their `updated_at` set to `now`) so that other replicas skip them for a while;
        rows another replica holds are skipped.
        """
        rows = await self._pool.fetch(
            """UPDATE requests SET updated_at = $1
               WHERE request_id IN (
                   SELECT r.request_id FROM requests r
                   WHERE r.state = 'collecting' AND r.updated_at < $2
                     AND (EXISTS (SELECT 1 FROM request_systems s
                                  WHERE s.request_id = r.request_id AND s.state = 'pending')
                          OR NOT EXISTS (SELECT 1 FROM request_systems s
                                         WHERE s.request_id = r.request_id AND s.state = ANY($4)))
                   ORDER BY r.updated_at LIMIT $3
                   FOR UPDATE SKIP LOCKED)
               RETURNING request_id""",
            now,
            idle_since,
            limit,
            list(OPEN_SYSTEM_STATES),
        )
        return [str(r["request_id"]) for r in rows]

    # Collection -------------------------------------------------------------------------------

    async def mark_dispatched(
        self,
        request_id: str,
        system: str,
        attempt: int,
        deadline: datetime,
        round_: int,
        queried_count: int,
        expected: Sequence[SystemState],
        new_run: bool,
    ) -> bool:
        """Record attempt `attempt` as sent, if the system is still where the caller saw it.

        `expected` is where the caller found the system: pending (a first dispatch, or after
        RetrySystem), dispatched or running (a retry after silence or a retryable failure),
        completed (asked again with new identifiers). A system that moved meanwhile (a completion
        consumed while the sweep decided on a retry, another replica's dispatch) is left alone:
        returns False. `new_run` starts a new run of attempts (see `SystemRow.attempts_in_run`).

        One statement. The request must be collecting: its row is updated (and locked) first, so
        that an assembly claimed meanwhile (claim_assembly locks that row, then reads the systems)
        either sees this dispatch, or is seen by it: the request's update, waiting for the claim's
        lock, then finds it assembling and nothing is dispatched. (The batched writers all take
        their requests' rows first, in order: `_LOCKED`. The single-row writers that take the
        system's row first, `record_progress` and `end_system`, may deadlock with one of them;
        PostgreSQL aborts one side, which `_retry_deadlocks` runs again whole.)
        A request touched for a dispatch that did not happen only gets a needless notification.
        """
        expected_states = ",".join(state.value for state in expected)
        dispatch = _Dispatch(
            _uuid(request_id), system, attempt, deadline, round_, queried_count, expected_states, new_run
        )
        return await self._dispatch_batches(dispatch)

    async def _mark_each_dispatched(self, dispatches: list["_Dispatch"]) -> list[bool]:
        """`mark_dispatched` for several systems (of one request or several) in one statement: the
        requests' rows are taken first (`_LOCKED`), then the systems'."""
        rows = await self._pool.fetch(
            f"""WITH {_LOCKED},
                wanted AS (
                    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::int[],
                                         $6::int[], $7::text[], $8::bool[])
                        AS w(request_id, system, attempt, deadline, round, queried_count, expected, new_run)),
                collecting AS (
                    UPDATE requests SET updated_at = now()
                    WHERE request_id = ANY(ARRAY(SELECT request_id FROM locked)) AND state = 'collecting'
                    {_NOTIFYING}),
                dispatched AS (
                    UPDATE request_systems s SET state = 'dispatched', attempt = w.attempt,
                        deadline_at = w.deadline, expected_chunks = NULL, error = '', records = 0, bytes = 0,
                        ended_at = NULL, started_at = COALESCE(s.started_at, now()), round = w.round,
                        queried_count = w.queried_count,
                        run_first_attempt = CASE WHEN w.new_run THEN w.attempt ELSE s.run_first_attempt END
                    FROM wanted w
                    WHERE s.request_id = ANY(ARRAY(SELECT request_id FROM collecting))
                      AND s.request_id = w.request_id AND s.system = w.system
                      AND s.attempt = w.attempt - 1 AND s.state = ANY(string_to_array(w.expected, ','))
                    RETURNING s.request_id, s.system)
                SELECT request_id, system FROM dispatched""",
            *columns(dispatches),
        )
        sent = {(row["request_id"], row["system"]) for row in rows}
        return [(d.request_id, d.system) in sent for d in dispatches]

    async def update_identifiers(
        self, request_id: str, update: Callable[[bytes], bytes | None], known: bytes | None = None
    ) -> bool:
        """Read-modify-write the sealed identifiers of a collecting request; returns whether they changed.

        `update` gets the sealed identifiers and returns the new ones, or None to leave them; it
        may be called more than once. Given the sealed identifiers the caller `known`, one
        compare-and-set statement writes the update when nobody changed them meanwhile; otherwise
        (or without `known`) the update is made under the request's row lock. Either way, two
        merges at once (two replicas during a rebalance) are serialised: neither loses the other's.
        """
        if known is not None:
            updated = update(known)
            if updated is None:
                return False
            status = await self._pool.execute(
                f"""UPDATE requests SET sealed_identifiers = $3, updated_at = now()
                    WHERE request_id = $1 AND state = 'collecting' AND sealed_identifiers = $2 {_NOTIFYING}""",
                _uuid(request_id),
                known,
                updated,
            )
            if status.endswith(" 1"):
                return True
        async with self._pool.acquire() as conn, conn.transaction():
            sealed = await conn.fetchval(
                """SELECT sealed_identifiers FROM requests
                   WHERE request_id = $1 AND state = 'collecting' FOR UPDATE""",
                _uuid(request_id),
            )
            if sealed is None:
                return False
            updated = update(bytes(sealed))
            if updated is None:
                return False
            await conn.execute(
                f"UPDATE requests SET sealed_identifiers = $2, updated_at = now() WHERE request_id = $1 {_NOTIFYING}",
                _uuid(request_id),
                updated,
            )
        return True

    async def mark_queried(self, request_id: str, system: str, attempt: int, queried_count: int) -> None:
        """Count the first `queried_count` identifiers as known to the system's answer to `attempt`
        (it found them itself), so that finding them elsewhere does not ask it again."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                """UPDATE request_systems SET queried_count = GREATEST(queried_count, $4)
                   WHERE request_id = $1 AND system = $2 AND attempt = $3""",
                _uuid(request_id),
                system,
                attempt,
                queried_count,
            )

    async def record_progress(
        self, request_id: str, system: str, attempt: int, records: int, byte_count: int, deadline: datetime
    ) -> None:
        # One statement (atomic on its own): the system, then the request, as every writer orders them.
        await self._pool.execute(
            f"""WITH running AS (
                    UPDATE request_systems SET state = 'running', deadline_at = $6,
                           records = GREATEST(records, $4), bytes = GREATEST(bytes, $5)
                    WHERE request_id = $1 AND system = $2 AND attempt = $3
                      AND state IN ('dispatched', 'running')
                    RETURNING request_id)
                UPDATE requests SET updated_at = now()
                WHERE request_id = (SELECT request_id FROM running) {_NOTIFYING}""",
            _uuid(request_id),
            system,
            attempt,
            records,
            byte_count,
            deadline,
        )

    async def store_chunk(
        self, request_id: str, system: str, attempt: int, sequence: int, record_count: int, sealed: bytes
    ) -> bool:
        """Keep a sealed chunk once; a duplicate (same request, system, attempt, sequence) is ignored."""
        return await self._chunk_batches(_Chunk(_uuid(request_id), system, attempt, sequence, record_count, sealed))

    async def _store_each_chunk(self, chunks: list["_Chunk"]) -> list[bool]:
        rows = await self._pool.fetch(
            """INSERT INTO result_chunks (request_id, system, attempt, sequence, record_count, sealed_records)
               SELECT w.* FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::int[], $6::bytea[])
                   AS w(request_id, system, attempt, sequence, record_count, sealed_records)
               WHERE EXISTS (SELECT 1 FROM request_systems s WHERE s.request_id = w.request_id
                             AND s.system = w.system AND s.attempt = w.attempt
                             AND s.state IN ('dispatched', 'running'))
               ON CONFLICT DO NOTHING
               RETURNING request_id, system, attempt, sequence""",
            *columns(chunks),
        )
        stored = {(row["request_id"], row["system"], row["attempt"], row["sequence"]) for row in rows}
        return [_chunk_key(chunk) in stored for chunk in chunks]

    async def record_completion(
        self,
        request_id: str,
        system: str,
        attempt: int,
        expected_chunks: int,
        sealed_discovered: bytes | None,
    ) -> None:
        """Note the attempt's announced end; `complete_if_whole` decides when every chunk is in.

        Completing is a statement of its own, after this one and after each chunk's: whichever of
        the last chunk and the completion is written last sees the other (two replicas may handle
        them at once during a rebalance), which a check in the same statement would not.
        """
        completion = _Completion(_uuid(request_id), system, attempt, expected_chunks, sealed_discovered)
        await self._completion_batches(completion)

    async def _record_each_completion(self, completions: list["_Completion"]) -> list[None]:
        await self._pool.execute(
            f"""WITH {_LOCKED}
                UPDATE request_systems s SET expected_chunks = w.expected_chunks,
                    sealed_discovered = w.sealed_discovered
                FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::bytea[])
                    AS w(request_id, system, attempt, expected_chunks, sealed_discovered)
                WHERE s.request_id = ANY(ARRAY(SELECT request_id FROM locked))
                  AND s.request_id = w.request_id AND s.system = w.system AND s.attempt = w.attempt
                  AND s.state IN ('dispatched', 'running')""",
            *columns(completions),
        )
        return [None] * len(completions)

    async def complete_if_whole(self, request_id: str, system: str) -> SystemRow | None:
        """Mark the system completed when it has announced its end and every chunk has arrived.

        One statement. Returns the completed system's row, or None when it is not whole yet (or
        had already ended).
        """
        return await self._check_batches((_uuid(request_id), system))

    async def _complete_each_if_whole(self, pairs: list[tuple[uuid.UUID, str]]) -> list[SystemRow | None]:
        rows = await self._pool.fetch(
            f"""WITH {_LOCKED},
                wanted AS (SELECT * FROM unnest($1::uuid[], $2::text[]) AS w(request_id, system)),
                totals AS (
                    SELECT rs.request_id, rs.system, count(rc.sequence) AS chunks,
                           COALESCE(sum(rc.record_count), 0) AS records,
                           COALESCE(sum(length(rc.sealed_records)), 0) AS bytes
                    FROM wanted w
                    JOIN request_systems rs ON rs.request_id = w.request_id AND rs.system = w.system
                    LEFT JOIN result_chunks rc ON rc.request_id = rs.request_id AND rc.system = rs.system
                                              AND rc.attempt = rs.attempt
                    GROUP BY rs.request_id, rs.system),
                completed AS (
                    UPDATE request_systems s SET state = 'completed', ended_at = now(), deadline_at = NULL,
                        records = c.records, bytes = GREATEST(s.bytes, c.bytes)
                    FROM totals c
                    WHERE s.request_id = ANY(ARRAY(SELECT request_id FROM locked))
                      AND s.request_id = c.request_id AND s.system = c.system
                      AND s.state IN ('dispatched', 'running')
                      AND s.expected_chunks IS NOT NULL AND c.chunks = s.expected_chunks
                    RETURNING s.*),
                touched AS (UPDATE requests SET updated_at = now()
                            WHERE request_id IN (SELECT request_id FROM completed) {_NOTIFYING})
                SELECT * FROM completed""",
            *columns(pairs),
        )
        completed = {(row["request_id"], row["system"]): _system_row(row) for row in rows}
        return [completed.get(pair) for pair in pairs]

    async def end_system(
        self, request_id: str, system: str, attempt: int | None, state: SystemState, error: str
    ) -> bool:
        """End the current attempt as failed, timed out or cancelled (no-op if it already ended)."""
        ended = await self._pool.fetchval(
            f"""WITH ended AS (
                    UPDATE request_systems SET state = $4, error = $5, ended_at = now(), deadline_at = NULL
                    WHERE request_id = $1 AND system = $2 AND ($3::int IS NULL OR attempt = $3)
                      AND state IN ('pending', 'dispatched', 'running')
                    RETURNING request_id),
                touched AS (UPDATE requests SET updated_at = now()
                            WHERE request_id = (SELECT request_id FROM ended) {_NOTIFYING})
                SELECT count(*) FROM ended""",
            _uuid(request_id),
            system,
            attempt,
            state.value,
            error,
        )
        return bool(ended)

    async def expired_attempts(self, now: datetime, postpone_to: datetime, limit: int = 100) -> list[SystemRow]:
        """Claim the attempts past their deadline: their deadline moves to `postpone_to` at once.

        One statement, so that replicas sweeping together never take the same attempt; rows
        another replica holds are skipped.
        """
        rows = await self._pool.fetch(
            """UPDATE request_systems SET deadline_at = $2
               WHERE (request_id, system) IN (
                   SELECT request_id, system FROM request_systems
                   WHERE deadline_at < $1 AND state IN ('dispatched', 'running')
                   ORDER BY deadline_at LIMIT $3
                   FOR UPDATE SKIP LOCKED)
               RETURNING *""",
            now,
            postpone_to,
            limit,
        )
        return [_system_row(r) for r in rows]

    async def reset_system(self, request_id: str, system: str) -> None:
        """Make an ended system pending again, for RetrySystem on a collecting request.

        Compare-and-set under the request's row lock: raises FailedPrecondition when the request
        is no longer collecting (an assembly was claimed meanwhile) or the system is not ended.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            state = await conn.fetchval(
                "SELECT state FROM requests WHERE request_id = $1 FOR UPDATE", _uuid(request_id)
            )
            if state is None:
                raise NotFound("no such request")
            if state != "collecting":
                raise FailedPrecondition(f"the request is {state} now; retry when it is ready")
            status = await conn.execute(
                """UPDATE request_systems SET state = 'pending', error = '', ended_at = NULL,
                       expected_chunks = NULL, deadline_at = NULL
                   WHERE request_id = $1 AND system = $2 AND state = ANY($3)""",
                _uuid(request_id),
                system,
                list(RETRYABLE_SYSTEM_STATES),
            )
            if not status.endswith(" 1"):
                raise FailedPrecondition("the system is still working on this request")
            await _touch(conn, request_id)

    async def iter_chunks(self, request_id: str, system: str, attempt: int) -> AsyncIterator[bytes]:
        """The attempt's sealed chunks in sequence order, streamed with a cursor."""
        async with self._pool.acquire() as conn, conn.transaction():
            cursor = conn.cursor(
                "SELECT sealed_records, sequence FROM result_chunks"
                " WHERE request_id = $1 AND system = $2 AND attempt = $3 ORDER BY sequence",
                _uuid(request_id),
                system,
                attempt,
                prefetch=2,
            )
            async for row in cursor:
                yield bytes(row["sealed_records"])

    async def chunks_from(
        self, request_id: str, system: str, attempt: int, sequence: int, limit: int
    ) -> tuple[list[bytes], SystemRow | None]:
        """The attempt's sealed chunks stored so far from `sequence` on, in order and without a gap
        (at most `limit`), and the system's row: one statement, for following an attempt as it
        streams (the row says whether more will come)."""
        row = await self._pool.fetchrow(
            """SELECT c.chunks, c.sequences,
                      (SELECT s FROM request_systems s WHERE s.request_id = $1 AND s.system = $2) AS system
               FROM (SELECT array_agg(rc.sealed_records ORDER BY rc.sequence) AS chunks,
                            array_agg(rc.sequence ORDER BY rc.sequence) AS sequences
                     FROM result_chunks rc
                     WHERE rc.request_id = $1 AND rc.system = $2 AND rc.attempt = $3
                       AND rc.sequence >= $4 AND rc.sequence < $4 + $5) AS c""",
            _uuid(request_id),
            system,
            attempt,
            sequence,
            limit,
        )
        assert row is not None
        chunks: list[bytes] = []
        stored = zip(row["sequences"] or (), row["chunks"] or (), strict=True)  # NULL when there is none
        for expected, (got, sealed) in enumerate(stored, start=sequence):
            if got != expected:
                break  # a gap: the next chunk has not arrived yet
            chunks.append(bytes(sealed))
        return chunks, None if row["system"] is None else _system_row(row["system"])

    async def chunks_of(self, request_id: str, attempts: Mapping[str, int]) -> dict[str, list[bytes]]:
        """The sealed chunks of several systems' attempts, by system, in sequence order: one
        statement, where `iter_chunks` takes a transaction and a cursor per system (for archives
        small enough to hold in memory)."""
        rows = await self._pool.fetch(
            """SELECT rc.system, rc.sealed_records FROM result_chunks rc
               JOIN unnest($2::text[], $3::int[]) AS wanted(system, attempt)
                 ON rc.system = wanted.system AND rc.attempt = wanted.attempt
               WHERE rc.request_id = $1 ORDER BY rc.system, rc.sequence""",
            _uuid(request_id),
            list(attempts),
            list(attempts.values()),
        )
        chunks: dict[str, list[bytes]] = {system: [] for system in attempts}
        for row in rows:
            chunks[row["system"]].append(bytes(row["sealed_records"]))
        return chunks

    # Assembly ---------------------------------------------------------------------------------

    async def claim_assembly(self, request_id: str, lease_seconds: float) -> "AssemblyClaim | None":
        """Take the request for assembly when every system has ended: the new archive version,
        and the request as claimed (what the build reads), or None when it is not to be built.

        The request's row is locked first, so that the check on its systems reads what a
        concurrent RetrySystem or dispatch (which lock the same row) committed.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM requests WHERE request_id = $1 FOR UPDATE", _uuid(request_id))
            row = await conn.fetchrow(
                f"""WITH claimed AS (
                        UPDATE requests SET state = 'assembling', archive_version = archive_version + 1,
                            assembly_lease_until = now() + make_interval(secs => $2), updated_at = now()
                        WHERE request_id = $1
                          AND (state = 'collecting'
                               OR (state = 'assembling' AND assembly_lease_until < now()))
                          AND NOT EXISTS (SELECT 1 FROM request_systems WHERE request_id = $1
                                          AND state IN ('pending', 'dispatched', 'running'))
                        RETURNING *, pg_notify('{NOTIFY_CHANNEL}', request_id::text || ' ' || state))
                    SELECT c.*, ARRAY(SELECT s FROM request_systems s WHERE s.request_id = c.request_id
                                      ORDER BY s.system) AS systems
                    FROM claimed c""",
                _uuid(request_id),
                lease_seconds,
            )
        if row is None:
            return None
        return AssemblyClaim(int(row["archive_version"]), _secrets(row), _view(row, row["systems"]))

    async def stale_assemblies(self) -> list[str]:
        rows = await self._pool.fetch(
            "SELECT request_id FROM requests WHERE state = 'assembling' AND assembly_lease_until < now()"
        )
        return [str(r["request_id"]) for r in rows]

    async def renew_assembly(self, request_id: str, version: int, lease_seconds: float) -> None:
        """Extend the lease of the assembly of `version`; raises LostLease when it is not ours any more."""
        status = await self._pool.execute(
            """UPDATE requests SET assembly_lease_until = now() + make_interval(secs => $3)
               WHERE request_id = $1 AND archive_version = $2 AND state = 'assembling'""",
            _uuid(request_id),
            version,
            lease_seconds,
        )
        if not status.endswith(" 1"):
            raise LostLease(f"the assembly of version {version} lost its claim")

    async def add_archive_chunk(self, request_id: str, version: int, sequence: int, data: bytes) -> None:
        """Store one piece of the archive being built; raises LostLease when the build is not ours any more."""
        status = await self._pool.execute(
            """INSERT INTO archive_chunks (request_id, version, sequence, data)
               SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM requests WHERE request_id = $1
                                                   AND archive_version = $2 AND state = 'assembling')""",
            _uuid(request_id),
            version,
            sequence,
            data,
        )
        if not status.endswith(" 1"):
            raise LostLease(f"the assembly of version {version} lost its claim")

    async def finish_archive(self, request_id: str, version: int, size: int, sha256: str, expires_at: datetime) -> bool:
        """Publish the archive, destroy the request key and the sealed chunks, drop older versions.

        One statement (atomic on its own). The identifiers stay (encrypted) while the request
        record is kept, so that RetrySystem can build a new, complete version; they go with the
        record, or at cancellation.
        """
        published = await self._pool.fetchval(
            f"""WITH published AS (
                    UPDATE requests SET state = 'ready', archive_size = $3, archive_sha256 = $4,
                        archive_created_at = now(), archive_expires_at = $5, archive_purged_at = NULL,
                        wrapped_private_key = NULL, assembly_lease_until = NULL, updated_at = now()
                    WHERE request_id = $1 AND archive_version = $2 AND state = 'assembling'
                    {_NOTIFYING}),
                chunks AS (DELETE FROM result_chunks WHERE request_id = (SELECT request_id FROM published)),
                discovered AS (UPDATE request_systems SET sealed_discovered = NULL
                               WHERE request_id = (SELECT request_id FROM published)),
                older AS (DELETE FROM archive_chunks
                          WHERE request_id = (SELECT request_id FROM published) AND version <> $2)
                SELECT count(*) FROM published""",
            _uuid(request_id),
            version,
            size,
            sha256,
            expires_at,
        )
        return bool(published)

    async def discard_archive_version(self, request_id: str, version: int) -> None:
        """Drop the pieces of an archive version that was not published (a failed or lost build).

        A builder only ever discards its own version; the published one (ready, same version)
        is never touched, whoever asks.
        """
        await self._pool.execute(
            """DELETE FROM archive_chunks WHERE request_id = $1 AND version = $2
                 AND NOT EXISTS (SELECT 1 FROM requests WHERE request_id = $1
                                 AND archive_version = $2 AND state = 'ready')""",
            _uuid(request_id),
            version,
        )

    async def fail_request(self, request_id: str, version: int, error: str) -> bool:
        """Fail the request whose assembly of `version` could not be built, if that build still holds it.

        A stale builder (its lease taken over, the request cancelled or already ready) changes
        nothing: returns False.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                """UPDATE requests SET state = 'failed', error = $3, wrapped_private_key = NULL,
                       sealed_identifiers = NULL, assembly_lease_until = NULL, updated_at = now()
                   WHERE request_id = $1 AND archive_version = $2 AND state = 'assembling'""",
                _uuid(request_id),
                version,
                error,
            )
            if not status.endswith(" 1"):
                return False
            await conn.execute("DELETE FROM result_chunks WHERE request_id = $1", _uuid(request_id))
            await conn.execute("DELETE FROM archive_chunks WHERE request_id = $1", _uuid(request_id))
            await _notify(conn, request_id, RequestState.FAILED)
        return True

    async def iter_archive(self, request_id: str, version: int) -> AsyncIterator[bytes]:
        """The archive's chunks in order, one short query each: a slow download holds no connection."""
        sequence = -1
        while True:
            row = await self._pool.fetchrow(
                """SELECT sequence, data FROM archive_chunks
                   WHERE request_id = $1 AND version = $2 AND sequence > $3 ORDER BY sequence LIMIT 1""",
                _uuid(request_id),
                version,
                sequence,
            )
            if row is None:
                return
            sequence = row["sequence"]
            yield bytes(row["data"])

    # Caller actions ---------------------------------------------------------------------------

    async def cancel(self, request_id: str) -> list[str]:
        """Cancel a request that has not ended; returns the systems that were still working."""
        async with self._pool.acquire() as conn, conn.transaction():
            state = await conn.fetchval(
                "SELECT state FROM requests WHERE request_id = $1 FOR UPDATE", _uuid(request_id)
            )
            if state is None:
                raise NotFound("no such request")
            if RequestState(state).ended:
                return []
            working = await conn.fetch(
                """UPDATE request_systems SET state = 'cancelled', ended_at = now(), deadline_at = NULL
                   WHERE request_id = $1 AND state IN ('pending', 'dispatched', 'running')
                   RETURNING system""",
                _uuid(request_id),
            )
            # A new archive version: an assembly under way finds its claim gone and stops.
            await conn.execute(
                """UPDATE requests SET state = 'cancelled', wrapped_private_key = NULL,
                       sealed_identifiers = NULL, archive_version = archive_version + 1,
                       assembly_lease_until = NULL, updated_at = now() WHERE request_id = $1""",
                _uuid(request_id),
            )
            await conn.execute("DELETE FROM result_chunks WHERE request_id = $1", _uuid(request_id))
            await conn.execute("DELETE FROM archive_chunks WHERE request_id = $1", _uuid(request_id))
            await _notify(conn, request_id, RequestState.CANCELLED)
        return [r["system"] for r in working]

    async def extend(self, request_id: str, due_at: datetime, reason: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE requests SET due_at = $2, extension_reason = $3, updated_at = now() WHERE request_id = $1",
                _uuid(request_id),
                due_at,
                reason,
            )
            await _notify(conn, request_id)

    async def original_due(self, request_id: str) -> tuple[datetime, RequestState]:
        row = await self._pool.fetchrow(
            "SELECT original_due_at, state FROM requests WHERE request_id = $1", _uuid(request_id)
        )
        if row is None:
            raise NotFound("no such request")
        return row["original_due_at"], RequestState(row["state"])

    async def reopen_for_retry(self, request_id: str, public_key: bytes, wrapped_private_key: bytes) -> None:
        """After an archive was built, a retry collects again under a fresh request key.

        Compare-and-set: only a ready request is reopened (FailedPrecondition otherwise, for
        instance for the second of two RetrySystem calls at once, which must not replace the key
        the first one dispatched with). The old archive goes at once (it is not served while
        collecting, and the new version replaces it); its expiry and purge marks are cleared,
        so that the next version is served and purged in its own time.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            state = await conn.fetchval(
                "SELECT state FROM requests WHERE request_id = $1 FOR UPDATE", _uuid(request_id)
            )
            if state is None:
                raise NotFound("no such request")
            if state != "ready":
                raise FailedPrecondition(f"the request is {state} now; only a ready request is reopened")
            await conn.execute(
                """UPDATE requests SET state = 'collecting', public_key = $2, wrapped_private_key = $3,
                       archive_expires_at = NULL, archive_purged_at = NULL, updated_at = now()
                   WHERE request_id = $1""",
                _uuid(request_id),
                public_key,
                wrapped_private_key,
            )
            await conn.execute(
                """UPDATE request_systems SET state = 'pending', error = '', ended_at = NULL,
                       expected_chunks = NULL, deadline_at = NULL WHERE request_id = $1""",
                _uuid(request_id),
            )
            await conn.execute("DELETE FROM archive_chunks WHERE request_id = $1", _uuid(request_id))
            await _notify(conn, request_id)

    # Systems ----------------------------------------------------------------------------------

    async def record_heartbeat(
        self,
        name: str,
        instance_id: str,
        public_key: bytes,
        key_id: str,
        connector_version: str,
        accepts: Sequence[str],
        discovers: Sequence[str],
        interval_seconds: int,
        sent_at: datetime,
        datasets: Sequence[DatasetInfo] = (),
        description: str = "",
    ) -> None:
        catalog = json.dumps([asdict(d) for d in datasets])
        await self._pool.execute(
            """INSERT INTO systems (name, public_key, key_id, connector_version, accepts, discovers,
                   interval_seconds, last_heartbeat, instances, catalog, description)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, jsonb_build_object($9::text, $8::timestamptz), $10, $11)
               ON CONFLICT (name) DO UPDATE SET
                   last_heartbeat = GREATEST(systems.last_heartbeat, $8),
                   instances = systems.instances || jsonb_build_object($9::text, $8::timestamptz),
                   -- an older heartbeat (replayed from the topic) never brings back an older key
                   public_key = CASE WHEN $8 >= systems.last_heartbeat THEN $2 ELSE systems.public_key END,
                   key_id = CASE WHEN $8 >= systems.last_heartbeat THEN $3 ELSE systems.key_id END,
                   connector_version = CASE WHEN $8 >= systems.last_heartbeat THEN $4
                                            ELSE systems.connector_version END,
                   accepts = CASE WHEN $8 >= systems.last_heartbeat THEN $5 ELSE systems.accepts END,
                   discovers = CASE WHEN $8 >= systems.last_heartbeat THEN $6 ELSE systems.discovers END,
                   interval_seconds = CASE WHEN $8 >= systems.last_heartbeat THEN $7
                                           ELSE systems.interval_seconds END,
                   catalog = CASE WHEN $8 >= systems.last_heartbeat THEN $10 ELSE systems.catalog END,
                   description = CASE WHEN $8 >= systems.last_heartbeat THEN $11 ELSE systems.description END""",
            name, public_key, key_id, connector_version, list(accepts), list(discovers),
            interval_seconds, sent_at, instance_id, catalog, description,
        )  # fmt: skip

    async def systems(self, now: datetime) -> list[SystemInfo]:
        rows = await self._pool.fetch("SELECT * FROM systems ORDER BY name")
        infos = []
        for row in rows:
            window = 3 * row["interval_seconds"]
            instances = json.loads(row["instances"]) if isinstance(row["instances"], str) else row["instances"]
            recent = sorted(
                instance
                for instance, seen in instances.items()
                if (now - datetime.fromisoformat(seen)).total_seconds() <= window
            )
            infos.append(
                SystemInfo(
                    name=row["name"],
                    last_heartbeat=row["last_heartbeat"],
                    instances=tuple(recent),
                    connector_version=row["connector_version"],
                    alive=(now - row["last_heartbeat"]).total_seconds() <= window,
                    public_key=bytes(row["public_key"]),
                    key_id=row["key_id"],
                    discovers=tuple(row["discovers"]),
                    accepts=tuple(row["accepts"]),
                    datasets=_catalog(row["catalog"]),
                    description=row["description"],
                )
            )
        return infos


# The first step of a batched writer: its requests' rows, locked in request_id order before it
# touches anything else (`= ANY(ARRAY(SELECT request_id FROM locked))` is evaluated before the scan
# it filters). Two batches that share requests then wait for each other instead of deadlocking,
# whatever order their arrays list them in. NO KEY UPDATE, as an UPDATE of the row's other columns
# takes: chunks being inserted (their foreign key holds KEY SHARE on the row) are not waited for.
_LOCKED = """locked AS (SELECT request_id FROM requests WHERE request_id = ANY($1::uuid[])
                      ORDER BY request_id FOR NO KEY UPDATE)"""

# Appended to an UPDATE of `requests`: the notification goes with the change, in one round trip.
# Its payload is "<request_id> <state>", the state after the change (changes.py wakes watchers of
# an ended request at once).
_NOTIFYING = f"RETURNING request_id, pg_notify('{NOTIFY_CHANNEL}', request_id::text || ' ' || state)"


async def _notify(conn: asyncpg.Connection, request_id: str, state: RequestState | None = None) -> None:
    payload = f"{request_id} {state.value}" if state else str(request_id)
    await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)


async def _touch(conn: asyncpg.Connection, request_id: str) -> None:
    """Mark the request changed and notify, in one statement."""
    await conn.execute(f"UPDATE requests SET updated_at = now() WHERE request_id = $1 {_NOTIFYING}", _uuid(request_id))


class _Dispatch(NamedTuple):
    request_id: uuid.UUID
    system: str
    attempt: int
    deadline: datetime
    round: int
    queried_count: int
    expected: str  # states, comma-separated
    new_run: bool


class _Chunk(NamedTuple):
    request_id: uuid.UUID
    system: str
    attempt: int
    sequence: int
    record_count: int
    sealed_records: bytes


class _Completion(NamedTuple):
    request_id: uuid.UUID
    system: str
    attempt: int
    expected_chunks: int
    sealed_discovered: bytes | None


def _request_system(item: _Dispatch | _Completion | tuple[uuid.UUID, str]) -> tuple[uuid.UUID, str]:
    return item[0], item[1]


def _chunk_key(chunk: _Chunk) -> tuple[uuid.UUID, str, int, int]:
    return chunk.request_id, chunk.system, chunk.attempt, chunk.sequence


def _uuid(request_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(request_id)
    except ValueError as error:
        raise NotFound("no such request") from error


def _bytes(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)


def _encode_token(received_at: datetime, request_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{received_at.isoformat()}|{request_id}".encode()).decode()


def _decode_token(token: str) -> tuple[datetime, uuid.UUID] | None:
    if not token:
        return None
    try:
        when, _, rid = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return datetime.fromisoformat(when), uuid.UUID(rid)
    except ValueError as error:
        raise InvalidArgument([FieldViolation("page_token", "page_token is not one this service gave")]) from error


def _catalog(value: str | list[dict[str, Any]]) -> tuple[DatasetInfo, ...]:
    items = json.loads(value) if isinstance(value, str) else value
    return tuple(
        DatasetInfo(
            name=d["name"],
            activity=d["activity"],
            description=d["description"],
            key_fields=tuple(d["key_fields"]),
            fields=tuple(FieldInfo(**f) for f in d["fields"]),
        )
        for d in items
    )


_SECRETS_COLUMNS = """r.request_id, r.kind, r.state, r.recipient, r.sealed_identifiers, r.public_key,
    r.wrapped_private_key, r.archive_version, r.trace_context"""


def _secrets(row: asyncpg.Record) -> RequestSecrets:
    return RequestSecrets(
        request_id=str(row["request_id"]),
        kind=Kind(row["kind"]),
        state=RequestState(row["state"]),
        recipient=row["recipient"],
        sealed_identifiers=_bytes(row["sealed_identifiers"]),
        public_key=bytes(row["public_key"]),
        wrapped_private_key=_bytes(row["wrapped_private_key"]),
        archive_version=row["archive_version"],
        trace_context=row["trace_context"],
    )


def _system_row(row: asyncpg.Record) -> SystemRow:
    return SystemRow(
        request_id=str(row["request_id"]),
        system=row["system"],
        state=SystemState(row["state"]),
        round=row["round"],
        attempt=row["attempt"],
        queried_count=row["queried_count"],
        expected_chunks=row["expected_chunks"],
        sealed_discovered=_bytes(row["sealed_discovered"]),
        run_first_attempt=row["run_first_attempt"],
        records=row["records"],
        bytes=row["bytes"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
    )


def _view(row: asyncpg.Record, systems: Sequence[asyncpg.Record]) -> RequestView:
    archive = None
    if row["archive_sha256"] is not None and row["state"] == "ready" and row["archive_purged_at"] is None:
        archive = ArchiveView(
            size_bytes=row["archive_size"],
            sha256=row["archive_sha256"],
            created_at=row["archive_created_at"],
            version=row["archive_version"],
            expires_at=row["archive_expires_at"],
        )
    return RequestView(
        request_id=str(row["request_id"]),
        request_key=row["request_key"],
        kind=Kind(row["kind"]),
        state=RequestState(row["state"]),
        received_at=row["received_at"],
        due_at=row["due_at"],
        extension_reason=row["extension_reason"],
        recipient=row["recipient"],
        updated_at=row["updated_at"],
        error=row["error"],
        systems=tuple(
            SystemProgress(
                system=s["system"],
                state=SystemState(s["state"]),
                attempts=s["attempt"],
                records=s["records"],
                bytes=s["bytes"],
                started_at=s["started_at"],
                ended_at=s["ended_at"],
                error=s["error"],
            )
            for s in systems
        ),
        archive=archive,
    )
