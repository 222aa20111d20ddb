"""The audit trail: an append-only, hash-chained log of what callers did.

    hash(n) = SHA-256(hash(n-1) || canonical JSON of entry n)      hash(0) = 32 zero bytes

Appends are serialised by an advisory lock, so the chain has no forks across replicas; a replica's
appends made at once share one transaction (group commit, with `Batches`). Updates
and deletes are refused by a trigger; `verify` recomputes the chain and reports the first entry
whose content or link does not match (an edit), and any gap in the sequence (a deletion).
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from dsar_service.store.batches import columns, statement_batches

_APPEND_LOCK = 0x61756474  # "audt"
GENESIS = bytes(32)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    caller: str
    action: str
    request_id: str | None
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditReport:
    entries: int
    problems: list[str]

    @property
    def intact(self) -> bool:
        return not self.problems


def entry_hash(previous: bytes, entry: AuditEntry) -> bytes:
    body = json.dumps(
        [entry.seq, entry.at.isoformat(), entry.caller, entry.action, entry.request_id, entry.detail],
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(previous + body).digest()


class AuditLog:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        # Group commit: the appends made while one is under way go together in the next transaction.
        self._appends = statement_batches(self._append_each)

    async def append(
        self, caller: str, action: str, request_id: str | None, detail: dict[str, Any] | None = None
    ) -> AuditEntry:
        """Append an entry; returns it once it is committed. A detail that is not JSON, or a
        request id that is not a UUID, fails here, alone, before the entry joins a batch."""
        detail = detail or {}
        detail_json = json.dumps(detail, sort_keys=True)  # as entry_hash will: raises TypeError now if it cannot
        request = uuid.UUID(request_id) if request_id else None
        return await self._appends(_Pending(caller, action, request, detail, detail_json))

    async def _append_each(self, pending: list["_Pending"]) -> list[AuditEntry]:
        """Chain the entries after the last one, in order, in one transaction under the append lock."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _APPEND_LOCK)
            # A statement of its own after the lock's: its snapshot sees the entry appended last.
            last = await conn.fetchrow(
                """SELECT date_trunc('milliseconds', clock_timestamp()) AS now, l.seq, l.hash
                   FROM (SELECT 1) AS one
                   LEFT JOIN (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS l ON TRUE"""
            )
            now = last["now"]
            seq, previous = (last["seq"] + 1, bytes(last["hash"])) if last["seq"] is not None else (1, GENESIS)
            entries: list[AuditEntry] = []
            rows: list[tuple[object, ...]] = []
            for offset, item in enumerate(pending):
                request_id = str(item.request) if item.request else None
                entry = AuditEntry(seq + offset, now, item.caller, item.action, request_id, item.detail)
                digest = entry_hash(previous, entry)
                rows.append((entry.seq, now, entry.caller, entry.action, item.request, item.detail_json,
                             previous, digest))  # fmt: skip
                entries.append(entry)
                previous = digest
            await conn.execute(
                """INSERT INTO audit_log (seq, at, caller, action, request_id, detail, prev_hash, hash)
                   SELECT * FROM unnest($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::uuid[],
                                        $6::jsonb[], $7::bytea[], $8::bytea[])""",
                *columns(rows),
            )
        return entries

    async def verify(self) -> AuditReport:
        """Recompute the chain from the first entry; every mismatch and gap is a problem."""
        async with self._pool.acquire() as conn, conn.transaction():
            return await verify_chain(conn)


async def verify_chain(conn: asyncpg.Connection) -> AuditReport:
    """`AuditLog.verify` on a connection already in a transaction."""
    problems: list[str] = []
    previous, expected_seq, count = GENESIS, 1, 0
    async for row in conn.cursor("SELECT * FROM audit_log ORDER BY seq", prefetch=500):
        count += 1
        entry = _entry(row)
        if entry.seq != expected_seq:
            problems.append(f"entries {expected_seq} to {entry.seq - 1} are missing")
        if bytes(row["prev_hash"]) != previous:
            problems.append(f"entry {entry.seq} does not link to the entry before it")
        if entry_hash(bytes(row["prev_hash"]), entry) != bytes(row["hash"]):
            problems.append(f"entry {entry.seq} was changed after it was written")
        previous, expected_seq = bytes(row["hash"]), entry.seq + 1
    return AuditReport(count, problems)


class _Pending(NamedTuple):
    caller: str
    action: str
    request: uuid.UUID | None
    detail: dict[str, Any]
    detail_json: str


def _entry(row: asyncpg.Record) -> AuditEntry:
    detail = row["detail"]
    return AuditEntry(
        seq=row["seq"],
        at=row["at"],
        caller=row["caller"],
        action=row["action"],
        request_id=str(row["request_id"]) if row["request_id"] else None,
        detail=json.loads(detail) if isinstance(detail, str) else detail,
    )
