"""Collection: dispatching queries to systems, taking in their results, timing out the silent.

The database is the source of truth: every step reads and writes it, so any replica can take
over any request after a crash or a broker that lost everything. Unanswered attempts are
re-dispatched after `system_timeout_seconds` of silence, up to `max_attempts` per run (a first
dispatch, a RetrySystem, asking again with new identifiers), then reported. A query's own
deadline, after which its connector gives up, is `attempt_deadline_seconds`: progress keeps an
attempt alive until then.

Every step is a compare-and-set on the system's state and attempt, so that a late sweep, a
redelivered message or another replica never undoes what happened meanwhile. A step that failed
half-way (the completion stored, the next round not dispatched) is taken up again by the
redelivered message, or else by the idle-request sweep (`resume_idle_requests`).
"""

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Protocol

from opentelemetry import trace

from connectors.sdk.identifiers import Ident, Identifier
from dsar_common.kafka import BusError
from dsar_common.observability import context_from_traceparent, log_fields, tracer
from dsar_common.sealing import SealError, discovered_binding, open_sealed, query_binding, seal
from dsar_common.settings import Settings
from dsar_service.bus import (
    AttemptEnded,
    AttemptOutcome,
    ChunkReceived,
    HeartbeatReceived,
    PayloadError,
    ProgressReported,
    ResultEvent,
    decode_discovered,
    encode_query,
)
from dsar_service.crypto import UnwrapError
from dsar_service.errors import NotFound
from dsar_service.metrics import Metrics
from dsar_service.model import RequestState, SystemInfo, SystemState
from dsar_service.requests.catalog import SystemCatalog
from dsar_service.requests.keys import RequestKeys
from dsar_service.requests.rounds import SystemRound, new_for, plan_rounds
from dsar_service.requests.subject import (
    normalise_candidate_id,
    normalise_email,
    normalise_nir,
    normalise_person_id,
    normalise_visitor_id,
)
from dsar_service.store import RequestSecrets, RequestStore, SystemRow

log = logging.getLogger(__name__)
_TRACER = tracer(__name__)

Clock = Callable[[], datetime]

NOTHING_TO_SEARCH_BY = "not searched: none of the subject's known identifiers is one this system searches by"
IN_FLIGHT = (SystemState.DISPATCHED, SystemState.RUNNING)

# Discovered identifiers: how each kind is normalised (the form queries carry), how many of a
# kind one system may add, and the kinds a person has one of: a value of those that differs
# from the one the request named designates someone else, and is never searched.
NORMALISERS: dict[Ident, Callable[[str], str]] = {
    Ident.EMAIL: normalise_email,
    Ident.PERSON_ID: normalise_person_id,
    Ident.NIR: normalise_nir,
    Ident.VISITOR_ID: normalise_visitor_id,
    Ident.CANDIDATE_ID: normalise_candidate_id,
}
MAX_DISCOVERED_PER_KIND = 10
ONE_PER_PERSON = frozenset({Ident.NIR, Ident.PERSON_ID})


def utc_now() -> datetime:
    return datetime.now(UTC)


class CommandBus(Protocol):
    """What collection needs of the bus: sending commands (ServiceBus, or a fake in unit tests)."""

    async def ensure_command_topic(self, system: str) -> None: ...

    async def send_query(
        self,
        *,
        request_id: str,
        system: str,
        attempt: int,
        result_public_key: bytes,
        key_id: str,
        sealed_query: bytes,
        deadline: datetime,
    ) -> None: ...

    async def send_cancel(self, request_id: str, system: str) -> None: ...


class Collector:
    """Moves requests through collection; calls `on_collected` when every system of one has ended."""

    def __init__(
        self,
        store: RequestStore,
        bus: CommandBus,
        settings: Settings,
        on_collected: Callable[[str], None],
        on_completed_before_others: Callable[[SystemRow], None] | None = None,
        on_chunk_stored: Callable[[str, str, int, int], None] | None = None,
        metrics: Metrics | None = None,
        clock: Clock = utc_now,
        catalog: SystemCatalog | None = None,
    ) -> None:
        """`on_completed_before_others(row)`: a system completed while other systems of its
        request are still at work (the assembler may write its part of the archive now).
        `on_chunk_stored(request_id, system, attempt, sequence)`: a chunk was stored (the
        assembler may follow a large answer as it streams).
        `catalog`: the process's SystemCatalog, shared with the assembler (else one of its own)."""
        self._metrics = metrics or Metrics()
        self._store = store
        self._bus = bus
        self._keys = RequestKeys(settings.require_master_key())
        self._timeout = timedelta(seconds=settings.system_timeout_seconds)
        self._attempt_deadline = max(timedelta(seconds=settings.attempt_deadline_seconds), self._timeout)
        self._max_attempts = settings.max_attempts
        self._on_collected = on_collected
        self._on_completed_before_others = on_completed_before_others
        self._on_chunk_stored = on_chunk_stored
        self._clock = clock
        self._command_topics: set[str] = set()
        self._unchecked: set[tuple[str, str]] = set()  # (request, system) of chunks taken, not yet settled
        self._catalog = catalog or SystemCatalog(store, clock)

    async def known_systems(self) -> dict[str, SystemInfo]:
        """The systems whose connectors announced themselves (see SystemCatalog)."""
        return await self._catalog.systems()

    # Dispatch ---------------------------------------------------------------------------------

    async def advance(self, request_id: str, known: tuple[RequestSecrets, list[SystemRow]] | None = None) -> None:
        """Dispatch what can be dispatched now; hand the request to assembly when all have ended.

        `known` (the request's secrets and systems) saves a read when the caller has just read them
        (dispatches are compare-and-set on the systems' rows, so identifiers merged meanwhile are
        only asked for in a later round).
        """
        secrets, system_rows = known or await self._store.collecting(request_id)
        if secrets.state is not RequestState.COLLECTING or secrets.sealed_identifiers is None:
            return
        rows = {row.system: row for row in system_rows}
        identifiers = self._keys.open_identifiers(request_id, secrets.sealed_identifiers)
        infos = await self.known_systems()
        plan = plan_rounds(
            {name: SystemRound(row.state, row.round, row.queried_count) for name, row in rows.items()},
            infos,
            identifiers,
        )
        first = [(s, rows[s].attempt + 1, rows[s].round or 1, (SystemState.PENDING,)) for s in plan.dispatch]
        again = [(s, rows[s].attempt + 1, rows[s].round + 1, (SystemState.COMPLETED,)) for s in plan.ask_again]
        sent = await _all(
            self._dispatch(request_id, system, attempt, round_, expected, True, secrets)
            for system, attempt, round_, expected in [*first, *again]
        )
        for system, was_sent in zip(plan.ask_again, sent[len(first) :], strict=True):
            if was_sent:
                log.info("asked again request=%s system=%s: new identifiers were found", request_id, system)
                self._metrics.retries.labels(system, "new_identifiers").inc()
        for system in plan.skip:
            await self._store.end_system(request_id, system, None, SystemState.SKIPPED, NOTHING_TO_SEARCH_BY)
            self._metrics.outcomes.labels(system, SystemState.SKIPPED.value).inc()
        if plan.dispatch or plan.ask_again:
            return
        # Rows read above: a system that ended since was ended by a step that advances after it.
        # Assembly's claim checks again, under the request's lock.
        if all(row.state.ended or name in plan.skip for name, row in rows.items()):
            self._on_collected(request_id)

    async def _dispatch(
        self,
        request_id: str,
        system: str,
        attempt: int,
        round_: int,
        expected: tuple[SystemState, ...],
        new_run: bool,
        secrets: RequestSecrets | None = None,
    ) -> bool:
        """Send attempt `attempt` if the system is still in one of the `expected` states; returns whether sent."""
        secrets = secrets or await self._store.secrets(request_id)
        info = (await self.known_systems()).get(system)
        if secrets.sealed_identifiers is None or info is None:
            return False
        identifiers = self._keys.open_identifiers(request_id, secrets.sealed_identifiers)
        now = self._clock()
        silence_deadline, deadline = now + self._timeout, now + self._attempt_deadline
        if not await self._store.mark_dispatched(
            request_id, system, attempt, silence_deadline, round_, len(identifiers), expected, new_run
        ):
            return False  # the system moved meanwhile (completed, or another replica dispatched)
        with _TRACER.start_as_current_span(
            f"dispatch {system}",
            context=context_from_traceparent(secrets.trace_context),
            kind=trace.SpanKind.PRODUCER,
            attributes={"dsar.request_id": request_id, "dsar.system": system, "dsar.attempt": attempt},
        ):
            await self._send_query(
                request_id, system, attempt, info, identifiers, deadline, secrets.public_key, secrets.kind.value
            )
        log.info("dispatched request=%s system=%s attempt=%d round=%d", request_id, system, attempt, round_)
        return True

    async def _send_query(
        self,
        request_id: str,
        system: str,
        attempt: int,
        info: SystemInfo,
        identifiers: list[Identifier],
        deadline: datetime,
        result_public_key: bytes,
        kind: str,
    ) -> None:
        accepted = [i for i in identifiers if i.kind.value in info.accepts]
        sealed_query = seal(encode_query(kind, accepted), info.public_key, query_binding(request_id, system, attempt))
        for last_try in (False, True):
            try:
                if system not in self._command_topics:
                    await self._bus.ensure_command_topic(system)
                    self._command_topics.add(system)
                await self._bus.send_query(
                    request_id=request_id,
                    system=system,
                    attempt=attempt,
                    result_public_key=result_public_key,
                    key_id=info.key_id,
                    sealed_query=sealed_query,
                    deadline=deadline,
                )
                return
            except BusError as error:
                # The topic may be gone with a broker that lost everything: ensure it and send once
                # more. If that fails too, the attempt stays dispatched and is sent again after its
                # silence timeout.
                self._command_topics.discard(system)
                if last_try:
                    raise
                log.warning("sending to %s failed (%s); sending once more", system, error)

    async def retry_or_end(self, request_id: str, system: str, attempt: int, state: SystemState, error: str) -> None:
        """After a failed or silent attempt: another attempt if the run has any left, else the system ends.

        Nothing happens when the attempt is no longer the system's open one (it completed, or
        was retried, meanwhile).
        """
        row = await self._row(request_id, system)
        if row is None or row.attempt != attempt or row.state not in IN_FLIGHT:
            return
        if row.attempts_in_run < self._max_attempts and system in await self.known_systems():
            if await self._dispatch(request_id, system, attempt + 1, row.round or 1, IN_FLIGHT, False):
                self._metrics.retries.labels(system, state.value).inc()
            return
        if await self._store.end_system(request_id, system, attempt, state, error):
            self._metrics.outcomes.labels(system, state.value).inc()
        await self.advance(request_id)

    async def expire_attempts(self) -> None:
        """Re-dispatch or time out the attempts whose connector has gone silent."""
        now = self._clock()
        for row in await self._store.expired_attempts(now, now + self._timeout):
            log.warning("attempt timed out request=%s system=%s attempt=%d", row.request_id, row.system, row.attempt)
            with self._isolated(row.request_id):
                await self.retry_or_end(
                    row.request_id,
                    row.system,
                    row.attempt,
                    SystemState.TIMED_OUT,
                    f"no complete answer after {self._max_attempts} attempt(s) of "
                    f"{self._timeout.total_seconds():.0f} s of silence each",
                )

    async def resume_idle_requests(self, idle: timedelta) -> None:
        """Move along collecting requests that nothing touched for `idle` and that could move.

        The safety net of a step that failed half-way and whose message will not come again:
        discoveries not merged, a round not dispatched, an assembly never scheduled. Each
        request is claimed in the database, so that replicas sweeping together share them.
        """
        now = self._clock()
        for request_id in await self._store.claim_idle_requests(now, now - idle):
            with self._isolated(request_id):
                await self._recover(request_id)

    async def _recover(self, request_id: str) -> None:
        """Merge every completed system's discoveries again (idempotent), then advance."""
        for row in await self._store.system_rows(request_id):
            if row.state is SystemState.COMPLETED and row.sealed_discovered:
                await self._merge_discovered(request_id, row.system)
        await self.advance(request_id)

    # Results ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _isolated(self, request_id: str) -> Iterator[None]:
        """One request's unreadable secrets, disappearance or unsendable command must not stop the others.

        A request whose secrets do not open was written under another master key (a replica
        misconfigured, or another stack's database): it is left alone, for a replica that can.
        A command that could not be sent leaves its attempt dispatched: it is sent again after
        the attempt's silence timeout.
        """
        try:
            with log_fields(request_id=request_id):
                yield
        except UnwrapError:
            log.error("request=%s: its secrets do not open with this service's master key; skipped", request_id)
        except NotFound:
            log.info("request=%s is gone (purged or never existed); its message is dropped", request_id)
        except BusError as error:
            log.warning("request=%s: %s; the attempt is sent again after its silence timeout", request_id, error)

    async def on_result(self, event: ResultEvent) -> None:
        """Take one result event and settle it: a chunk that completes its system completes it now."""
        await self.take(event)
        await self.settle()

    async def take(self, event: ResultEvent) -> None:
        """Take a result event of a batch; `settle` once the batch is taken (the bus does, before it
        commits). A chunk's completion check waits for `settle`: the chunk and the Completion of an
        attempt mostly come in one batch, and the Completion's own check then does for both."""
        with self._isolated(event.request_id), log_fields(system=event.system):
            await self._on_result(event)

    async def settle(self) -> None:
        """Complete the systems whose chunks were taken since the last `settle`, if they are whole.

        The check comes after the chunk is stored, as a Completion's comes after it is noted:
        whichever of the two is written last sees the other.
        """
        unchecked, self._unchecked = self._unchecked, set()
        by_request: dict[str, list[str]] = {}
        for request_id, system in sorted(unchecked):
            by_request.setdefault(request_id, []).append(system)

        async def check(request_id: str, systems: list[str]) -> None:
            for system in systems:
                with self._isolated(request_id), log_fields(system=system):
                    if completed := await self._store.complete_if_whole(request_id, system):
                        await self._completed(completed)
                    # A duplicate chunk of a completed attempt changes nothing; should the
                    # completion's follow-up have failed, the idle-request sweep takes it up.

        await asyncio.gather(*(check(request_id, systems) for request_id, systems in by_request.items()))

    async def _on_result(self, event: ResultEvent) -> None:
        match event:
            case ChunkReceived():
                stored = await self._store.store_chunk(
                    event.request_id,
                    event.system,
                    event.attempt,
                    event.sequence,
                    event.record_count,
                    event.sealed_records,
                )
                self._unchecked.add((event.request_id, event.system))
                if stored and self._on_chunk_stored:
                    self._on_chunk_stored(event.request_id, event.system, event.attempt, event.sequence)
            case ProgressReported():
                await self._store.record_progress(
                    event.request_id,
                    event.system,
                    event.attempt,
                    event.records,
                    event.bytes,
                    self._clock() + self._timeout,
                )
            case AttemptEnded(outcome=AttemptOutcome.COMPLETED):
                await self._store.record_completion(
                    event.request_id,
                    event.system,
                    event.attempt,
                    event.chunk_count,
                    event.sealed_discovered or None,
                )
                self._unchecked.discard((event.request_id, event.system))  # the check below is after them
                if completed := await self._store.complete_if_whole(event.request_id, event.system):
                    await self._completed(completed)
                elif await self._completed_at(event.request_id, event.system, event.attempt):
                    # Redelivered after the completion was stored but before what follows it was
                    # done (the handler failed half-way): do that now. Both steps are idempotent.
                    await self._merge_discovered(event.request_id, event.system)
                    await self.advance(event.request_id)
            case AttemptEnded(outcome=AttemptOutcome.FAILED):
                current = await self._row(event.request_id, event.system)
                if current is None or current.attempt != event.attempt or current.state.ended:
                    return
                if event.retryable:
                    await self.retry_or_end(
                        event.request_id, event.system, event.attempt, SystemState.FAILED, event.error
                    )
                else:
                    await self._store.end_system(
                        event.request_id, event.system, event.attempt, SystemState.FAILED, event.error
                    )
                    await self.advance(event.request_id)
            case AttemptEnded():
                pass  # a connector confirming a cancellation: the request already says so

    async def _completed(self, row: SystemRow) -> None:
        """What follows a system's completion: metrics, its discoveries merged, the next round."""
        system = row.system
        self._metrics.outcomes.labels(system, SystemState.COMPLETED.value).inc()
        self._metrics.records.labels(system).inc(row.records)
        self._metrics.bytes.labels(system).inc(row.bytes)
        if row.started_at and row.ended_at:
            self._metrics.system_seconds.labels(system).observe((row.ended_at - row.started_at).total_seconds())
        secrets, rows = await self._store.collecting(row.request_id)
        if self._on_completed_before_others and any(not r.state.ended for r in rows):
            self._on_completed_before_others(row)
        merged = await self._merge_discovered(row.request_id, system, row, secrets)
        if merged.sealed_identifiers is not None:
            secrets = dataclasses.replace(secrets, sealed_identifiers=merged.sealed_identifiers)
        if merged.queried_count is not None:
            rows = [
                dataclasses.replace(r, queried_count=max(r.queried_count, merged.queried_count))
                if (r.system, r.attempt) == (system, row.attempt)
                else r
                for r in rows
            ]
        await self.advance(row.request_id, (secrets, rows))

    async def _row(self, request_id: str, system: str) -> SystemRow | None:
        return next((r for r in await self._store.system_rows(request_id) if r.system == system), None)

    async def _completed_at(self, request_id: str, system: str, attempt: int) -> bool:
        row = await self._row(request_id, system)
        return row is not None and row.state is SystemState.COMPLETED and row.attempt == attempt

    async def _merge_discovered(
        self, request_id: str, system: str, row: SystemRow | None = None, secrets: RequestSecrets | None = None
    ) -> "Merged":
        """Add the strong identifiers a completed system discovered to the request's own.

        Normalised as the request's own are, the invalid dropped, at most
        `MAX_DISCOVERED_PER_KIND` of a kind; never one that designates someone else (see
        `_conflicts`). A compare-and-set on the identifiers `secrets` holds, or when another merge
        came first a read-modify-write under the request's row lock: concurrent merges all count.
        Merging the same discoveries twice changes nothing. Returns what it wrote (see `Merged`).
        """
        row = row or await self._row(request_id, system)
        if row is None or row.state is not SystemState.COMPLETED or not row.sealed_discovered:
            return Merged()
        secrets = secrets or await self._store.secrets(request_id)
        if secrets.state is not RequestState.COLLECTING or secrets.wrapped_private_key is None:
            return Merged()
        private = self._keys.private_key(request_id, secrets.wrapped_private_key)
        try:
            plain = open_sealed(row.sealed_discovered, private, discovered_binding(request_id, system, row.attempt))
            found = _vetted(decode_discovered(plain, system), request_id, system)
        except (SealError, PayloadError):
            log.warning("discarded unreadable discovered identifiers request=%s system=%s", request_id, system)
            return Merged()
        if not found:
            return Merged()
        added: list[Identifier] = []
        conflicts: list[Identifier] = []
        merged_list: list[Identifier] = []
        written: list[bytes] = []  # the sealed identifiers of the last `merge`, the ones written

        def merge(sealed: bytes) -> bytes | None:
            known = self._keys.open_identifiers(request_id, sealed)
            added.clear()
            conflicts.clear()
            for identifier in found:
                if any((i.kind, i.value) == (identifier.kind, identifier.value) for i in [*known, *added]):
                    continue
                if _conflicts(identifier, [*known, *added]):
                    conflicts.append(identifier)
                else:
                    added.append(identifier)
            merged_list[:] = [*known, *added]
            written[:] = [self._keys.seal_identifiers(request_id, merged_list)] if added else []
            return written[0] if written else None

        merged = await self._store.update_identifiers(request_id, merge, secrets.sealed_identifiers)
        queried = await self._count_own_discoveries_as_queried(request_id, row, found, merged_list)
        if conflicts:
            for identifier in conflicts:
                self._metrics.discovered_conflicts.labels(system, identifier.kind.value).inc()
            kinds = ",".join(sorted({i.kind.value for i in conflicts}))
            log.warning(
                "request=%s system=%s discovered %d identifier(s) of another person (kinds: %s); not searched",
                request_id, system, len(conflicts), kinds,
            )  # fmt: skip
        if merged:
            log.info("request=%s system=%s discovered %d identifier(s)", request_id, system, len(added))
        return Merged(written[0] if merged else None, len(merged_list) if queried else None)

    async def _count_own_discoveries_as_queried(
        self, request_id: str, row: SystemRow, found: list[Identifier], identifiers: list[Identifier]
    ) -> bool:
        """When every identifier added since the system was asked is one it found itself (another
        system reported it first: policy and CRM both find the `person_id`), its answer already
        covers them: asking it again would return the same records."""
        info = (await self.known_systems()).get(row.system)
        if info is None:
            return False
        own = {(i.kind, i.value) for i in found}
        unasked = [i for i in identifiers[row.queried_count :] if new_for(row.system, i, info)]
        if unasked and all((i.kind, i.value) in own for i in unasked):
            await self._store.mark_queried(request_id, row.system, row.attempt, len(identifiers))
            return True
        return False

    # Heartbeats -------------------------------------------------------------------------------

    async def on_heartbeat(self, beat: HeartbeatReceived) -> None:
        await self._store.record_heartbeat(
            beat.system,
            beat.instance_id,
            beat.public_key,
            beat.key_id,
            beat.connector_version,
            beat.accepts,
            beat.discovers,
            beat.interval_seconds,
            beat.sent_at,
            beat.datasets,
            beat.description,
        )
        if not self._catalog.knows(beat.system):
            self._catalog.forget()  # a new system: see it at once

    async def send_cancel(self, request_id: str, system: str) -> None:
        await self._bus.send_cancel(request_id, system)

    async def resume_open_requests(self) -> None:
        """At start-up: move every collecting request along (after a crash, say)."""
        for request_id in await self._store.open_request_ids():
            with self._isolated(request_id):
                await self._recover(request_id)


async def _all(steps: Iterable[Awaitable[bool]]) -> list[bool]:
    """Run the steps concurrently (dispatches to several systems: their commands share a produce
    request); the first error is raised once they have all ended."""
    outcomes = await asyncio.gather(*steps, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return [bool(outcome) for outcome in outcomes]


class Merged(NamedTuple):
    """What merging a system's discoveries wrote: the request's new sealed identifiers, and the
    count of them the system's answer now covers (`mark_queried`); None for what it left as is."""

    sealed_identifiers: bytes | None = None
    queried_count: int | None = None


def _vetted(found: list[Identifier], request_id: str, system: str) -> list[Identifier]:
    """Discovered identifiers normalised, the invalid dropped, at most MAX_DISCOVERED_PER_KIND per kind."""
    kept: dict[Ident, list[str]] = {}
    invalid = excess = 0
    for identifier in found:
        normalise = NORMALISERS.get(identifier.kind)
        try:
            if normalise is None:
                raise ValueError("not a kind that propagates")
            value = normalise(identifier.value)
        except ValueError:
            invalid += 1
            continue
        values = kept.setdefault(identifier.kind, [])
        if value in values:
            continue
        if len(values) >= MAX_DISCOVERED_PER_KIND:
            excess += 1
            continue
        values.append(value)
    if invalid or excess:
        log.warning(
            "request=%s system=%s: %d invalid discovered identifier(s) dropped, %d beyond %d of a kind",
            request_id, system, invalid, excess, MAX_DISCOVERED_PER_KIND,
        )  # fmt: skip
    return [Identifier(kind, value, source=system) for kind, values in kept.items() for value in values]


def _conflicts(identifier: Identifier, known: list[Identifier]) -> bool:
    """Whether a discovered identifier designates another person than the request's subject.

    A person has one NIR and one `person_id` of the policy system. A value of those kinds that
    differs from what the request named (or, for the NIR, from any NIR already known) is someone
    else's: a namesake's file, a shared e-mail. E-mails, cookies and candidate files can be
    several for one person, and are taken.
    """
    if identifier.kind not in ONE_PER_PERSON:
        return False
    same_kind = [i for i in known if i.kind is identifier.kind and i.value != identifier.value]
    if identifier.kind is Ident.NIR:
        return bool(same_kind)
    named = {i.value for i in known if i.kind is identifier.kind and i.source == "request"}
    return bool(named) and identifier.value not in named


async def run_periodically(interval: float, work: Callable[[], Awaitable[object]]) -> None:
    """Run `work` every `interval` seconds until cancelled; an error is logged and the loop goes on."""
    while True:
        try:
            await work()
        except Exception:
            log.exception("periodic work failed")
        await asyncio.sleep(interval)
