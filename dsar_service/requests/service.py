"""The use cases behind the API: each public method is one RPC, in the domain's terms."""

import asyncio
import calendar
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from dsar_common.observability import current_traceparent
from dsar_common.sealing import KeyPair
from dsar_common.settings import Settings
from dsar_service.crypto import keyed_digest
from dsar_service.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from dsar_service.model import (
    ArchiveView,
    RequestState,
    RequestView,
    Submission,
    SystemInfo,
)
from dsar_service.requests.collection import Clock, Collector, utc_now
from dsar_service.requests.keys import RequestKeys
from dsar_service.requests.limits import CallerLimiter
from dsar_service.requests.subject import RawSubmission, validate_submission
from dsar_service.store import AuditLog, ChangeFeed, NewRequest, RequestStore

log = logging.getLogger(__name__)

MAX_EXTENSION_MONTHS = 2
INTERNAL_CALLER = "internal"
WATCH_RECHECK_SECONDS = 2.0


def add_months(moment: datetime, months: int) -> datetime:
    """The same day `months` later, or the month's last day when it is shorter (31 Jan + 1 = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class Download:
    archive: ArchiveView
    chunks: AsyncIterator[bytes]


class RequestService:
    def __init__(
        self,
        store: RequestStore,
        collector: Collector,
        changes: ChangeFeed,
        audit: AuditLog,
        settings: Settings,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._audit = audit
        self._callers = CallerLimiter(settings.caller_requests_per_minute)
        self._subject_limit = settings.subject_requests_per_day
        self._retention = timedelta(days=settings.request_retention_days)
        self._collector = collector
        self._changes = changes
        self._master_key = settings.require_master_key()
        self._keys = RequestKeys(self._master_key)
        self._clock = clock

    async def submit(self, raw: RawSubmission, caller: str = INTERNAL_CALLER) -> tuple[RequestView, bool]:
        """Register a request (idempotent on its key) and dispatch its first round."""
        self._callers.take(caller)
        submission = validate_submission(raw)
        infos = await self._collector.known_systems()
        systems = await self._choose_systems(submission, infos)
        digest = keyed_digest(self._master_key, _canonical(submission))
        subject_digests = [
            keyed_digest(self._master_key, f"subject:{i.kind.value}:{i.value}".encode())
            for i in submission.identifiers
            if i.kind.strong
        ]
        existing = await self._store.existing_digest(submission.request_key)
        if existing is None:
            await self._check_subject_limit(subject_digests)
        request_id = str(uuid.uuid4())
        received = self._clock()
        pair = KeyPair.generate()
        stored_id, stored_digest, created = await self._store.insert(
            NewRequest(
                request_id=request_id,
                request_key=submission.request_key,
                content_digest=digest,
                kind=submission.kind,
                received_at=received,
                due_at=add_months(received, 1),
                recipient=submission.recipient,
                sealed_identifiers=self._keys.seal_identifiers(request_id, submission.identifiers),
                public_key=pair.public,
                wrapped_private_key=self._keys.wrap_private_key(request_id, pair),
                systems=[(system, 1) for system in systems],
                subject_digests=subject_digests,
                trace_context=current_traceparent(),
            )
        )
        audited = self._audit.append(caller, "submit", stored_id, {"created": created})
        if not created:
            await audited
            if stored_digest != digest:
                raise AlreadyExists("this request key was used for a request with other content")
            return await self._store.get(stored_id), created
        log.info("request=%s received kind=%s systems=%s", stored_id, submission.kind.value, ",".join(systems))
        # The first round goes out while the audit entry waits for its turn (appends are one at a
        # time across replicas); the caller hears back once both are done.
        await asyncio.gather(audited, self._collector.advance(stored_id))
        return await self._store.get(stored_id), created

    async def _check_subject_limit(self, subject_digests: list[bytes]) -> None:
        since = self._clock() - timedelta(days=1)
        if await self._store.count_for_subject(subject_digests, since) >= self._subject_limit:
            raise ResourceExhausted(
                f"this subject already has {self._subject_limit} requests in the last 24 hours",
                retry_after_seconds=3600.0,
            )

    async def _choose_systems(self, submission: Submission, infos: dict[str, SystemInfo]) -> list[str]:
        """The systems named, or else every system whose connector is alive (a recent heartbeat).

        A named system need only have been seen once: it is dispatched to when it comes back,
        or times out. A system whose connector has been silent for long (retired, say) is not
        part of the default set.
        """
        if not infos:
            raise FailedPrecondition("no source system has announced itself yet; start the connectors")
        if not submission.systems:
            alive = sorted(name for name, info in infos.items() if info.alive)
            if not alive:
                raise FailedPrecondition("no source system's connector is alive; start the connectors")
            return alive
        unknown = [(i, s) for i, s in enumerate(submission.systems) if s not in infos]
        if unknown:
            raise InvalidArgument(
                [FieldViolation(f"systems[{i}]", f"no connector for system {s!r} has been seen") for i, s in unknown]
            )
        return list(submission.systems)

    async def get(self, request_id: str) -> RequestView:
        return await self._store.get(request_id)

    async def list_requests(
        self,
        states: Sequence[RequestState],
        overdue_only: bool,
        due_before: datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[RequestView], str]:
        if page_size > 500:
            raise InvalidArgument([FieldViolation("page_size", "page_size is at most 500")])
        cutoff = self._clock() if overdue_only else None
        if due_before is not None:
            cutoff = min(cutoff, due_before) if cutoff else due_before
        page = await self._store.page(states, cutoff, page_size or 50, page_token)
        return page.requests, page.next_token

    async def watch(self, request_id: str) -> AsyncIterator[RequestView]:
        """The request now, then each time it changes, until it has ended."""
        with self._changes.subscribe(request_id) as subscription:
            last: RequestView | None = None
            while True:
                view = await self._store.get(request_id)
                if view != last:
                    yield view
                    last = view
                if view.state.ended:
                    return
                await subscription.changed(WATCH_RECHECK_SECONDS)

    async def cancel(self, request_id: str, caller: str = INTERNAL_CALLER) -> RequestView:
        self._callers.take(caller)
        await self._audit.append(caller, "cancel", await self._existing(request_id))
        for system in await self._store.cancel(request_id):
            try:
                await self._collector.send_cancel(request_id, system)
            except Exception:  # the request is cancelled; a connector that misses this stops at its deadline
                log.warning("could not tell system=%s to stop request=%s", system, request_id)
        return await self._store.get(request_id)

    async def retry_system(self, request_id: str, system: str, caller: str = INTERNAL_CALLER) -> RequestView:
        self._callers.take(caller)
        view = await self._store.get(request_id)
        progress = next((s for s in view.systems if s.system == system), None)
        if progress is None:
            raise NotFound("the request does not involve this system")
        if view.state in (RequestState.CANCELLED, RequestState.ASSEMBLING):
            raise FailedPrecondition(f"a {view.state.value} request cannot be retried")
        if not progress.state.ended:
            raise FailedPrecondition("the system is still working on this request")
        await self._audit.append(caller, "retry", request_id, {"system": system})
        if view.state is RequestState.COLLECTING:
            await self._store.reset_system(request_id, system)
        else:
            # The archive was built and the request key destroyed with the collected data: a new,
            # complete version needs every system again, under a fresh key.
            secrets = await self._store.secrets(request_id)
            if secrets.sealed_identifiers is None:
                raise FailedPrecondition(
                    "the subject's identifiers were destroyed with the archive; submit a new request"
                )
            pair = KeyPair.generate()
            await self._store.reopen_for_retry(request_id, pair.public, self._keys.wrap_private_key(request_id, pair))
        await self._collector.advance(request_id)
        return await self._store.get(request_id)

    async def extend_deadline(
        self, request_id: str, months: int, reason: str, caller: str = INTERNAL_CALLER
    ) -> RequestView:
        self._callers.take(caller)
        faults = []
        if months not in (1, 2):
            faults.append(FieldViolation("months", "months is 1 or 2"))
        if not 10 <= len(reason.strip()) <= 2000:
            faults.append(FieldViolation("reason", "reason must be 10 to 2000 characters, given to the subject"))
        if faults:
            raise InvalidArgument(faults)
        original_due, state = await self._store.original_due(request_id)
        view = await self._store.get(request_id)
        if state.ended and state is not RequestState.READY:
            raise FailedPrecondition(f"a {state.value} request has no deadline to extend")
        if self._clock() > original_due:
            raise FailedPrecondition("an extension must be decided within the first month")
        new_due = add_months(view.due_at, months)
        if new_due > add_months(original_due, MAX_EXTENSION_MONTHS):
            raise FailedPrecondition("a deadline may be extended by at most two months in all")
        await self._store.extend(request_id, new_due, reason.strip())
        await self._audit.append(caller, "extend", request_id, {"months": months})
        return await self._store.get(request_id)

    async def download(self, request_id: str, caller: str = INTERNAL_CALLER) -> Download:
        self._callers.take(caller)
        view = await self._store.get(request_id)
        if view.state is RequestState.READY and view.archive is None:
            raise NotFound("the archive has expired and was deleted")
        if view.state is not RequestState.READY or view.archive is None:
            raise FailedPrecondition(f"the archive is not ready (the request is {view.state.value})")
        if view.archive.expires_at is not None and view.archive.expires_at < self._clock():
            raise NotFound("the archive has expired")
        await self._audit.append(caller, "download", request_id, {"version": view.archive.version})
        return Download(view.archive, self._whole_archive(request_id, view.archive))

    async def _whole_archive(self, request_id: str, archive: ArchiveView) -> AsyncIterator[bytes]:
        """The archive's chunks, read one at a time (no connection held between them).

        An archive deleted while it is downloaded (purged, or replaced by a retry) ends short:
        that is an error, never a silently truncated file.
        """
        served = 0
        async for chunk in self._store.iter_archive(request_id, archive.version):
            served += len(chunk)
            yield chunk
        if served != archive.size_bytes:
            raise NotFound("the archive was deleted while it was downloaded")

    async def _existing(self, request_id: str) -> str:
        return (await self._store.get(request_id)).request_id

    async def purge(self) -> tuple[int, int]:
        """Delete expired archives, and request records past their retention (with their keys)."""
        now = self._clock()
        archives = await self._store.purge_expired_archives(now)
        requests = await self._store.purge_requests_received_before(now - self._retention)
        if archives or requests:
            log.info("purged %d expired archive(s) and %d request record(s)", archives, requests)
        return archives, requests

    async def list_systems(self) -> list[SystemInfo]:
        return list((await self._collector.known_systems()).values())


def _canonical(submission: Submission) -> bytes:
    """The submission's content, for idempotency: the systems as submitted (none stays none), not as
    resolved, so that a retried Submit is recognised whatever connectors appeared meanwhile."""
    parts = [submission.kind.value, submission.recipient, ",".join(sorted(set(submission.systems)))]
    parts += [f"{i.kind.value}={i.value}" for i in submission.identifiers]
    return "\x1e".join(parts).encode()
