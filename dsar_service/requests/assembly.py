"""Assembly: sealed chunks → records → a streamed ZIP → age → archive chunks in PostgreSQL.

Memory holds a few sealed chunks and one archive chunk at a time, whatever the archive's size.
Each system's sealed chunks are read twice: once for its JSON files, once for their CSV twins
(ZIP entries are sequential, and spooling the CSV to disk would leave the data in plaintext
there); a small request's chunks (HELD_CHUNKS_BYTES in all) are read once, opened once and kept
for both. A part written ahead is read once: its CSV twins go to a second sealed spool as its
JSON files are written, when every field is declared (else a second reading writes them).
Builds with more than that take one of a few streaming slots.
What the archive holds besides the data (index.html, the data dictionary, manifest.json) is
dsar_service.archive's: this module gathers the facts, from the request, the systems' outcomes
and the catalog the connectors announced (their datasets, fields, provenance and activities).

Once the archive is stored, the request's private key and the sealed chunks are destroyed:
nothing but the recipient can read what was collected.

A system with a large answer is written ahead: its part of the archive goes into a sealed spool
before the build, which splices it in (see ahead.py), and writes every other system itself. The
part is started when the system completes while others are still searched (`write_ahead`), or
earlier, while it still streams (`follow`, from its fifth chunk): then its JSON files and their
CSV twins follow its chunks as they are stored. The part's spools hold its files deflated,
sealed with a key the process alone holds; the spliced files
keep the time they were written at. A part that cannot be used (another attempt, another
declaration of the system's datasets, a spool that does not read back) is written again.

A build holds its request by a lease (`assembly_lease_seconds`), renewed as it writes, at most
every third of the lease; another replica takes over only a build whose lease ran out (its
process died). A build that finds its claim gone (taken over, or the request cancelled, which
moves the archive version on) stops and drops what it wrote, without failing the request.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from connectors.sdk.identifiers import Identifier, mask
from dsar_common.sealing import SealError, chunk_binding, open_sealed
from dsar_common.settings import Settings
from dsar_service.archive import (
    ArchiveBuilder,
    ArchiveReport,
    ArchiveWriter,
    DatasetReport,
    IdentifierReport,
    SealedSpool,
    SectionWriter,
    SpoolBudget,
    SpoolChain,
    SpoolError,
    SystemReport,
)
from dsar_service.bus import PayloadError, decode_records
from dsar_service.crypto import parse_recipient
from dsar_service.model import DatasetInfo, Kind, RequestState, RequestView, SystemInfo, SystemState
from dsar_service.requests.ahead import PartAhead, PartKey, PartsAhead
from dsar_service.requests.catalog import SystemCatalog
from dsar_service.requests.keys import RequestKeys
from dsar_service.store import RequestStore
from dsar_service.store.requests import AssemblyClaim, LostLease, RequestSecrets, SystemRow

# Deflate level 1, ISA-L's: 12 times the speed of zlib's level 6 for archives about 1.15 times
# larger (dsar bench, crypto: 1,235 against 100 MB/s).
COMPRESS_LEVEL = 1

log = logging.getLogger(__name__)
_T = TypeVar("_T")

ARCHIVE_CHUNK_BYTES = 1024 * 1024
# Sealed chunks read in one statement, and held for both passes, when the systems' chunks add up
# to at most this (a typical request's are a few kilobytes); larger requests stream each
# system's chunks with a cursor, pass by pass. Sealed bytes: connectors deflate their records to
# about a fifth (dsar_common.record_batches), so this holds about a mebibyte of records.
HELD_CHUNKS_BYTES = 256 * 1024
# Builds that stream (more than HELD_CHUNKS_BYTES) run this many at a time in one process; a
# build that holds its chunks needs a few megabytes at most, and its time is mostly round trips,
# so many run at once (the caller, app.Assemblies, bounds them all).
MAX_CONCURRENT_STREAMING_BUILDS = 2
# A completed system is written ahead when its sealed (deflated) chunks reach this, about 300 KiB
# of records, and others still search: below it, writing the system at the build takes a few
# milliseconds (a typical request's answers are a few KiB). Above it the build's time shows: the
# bench's large subject's 5,005 CRM records (about 250 KiB sealed) took some 50 ms of its last 0.2 s.
WRITE_AHEAD_FROM_BYTES = 64 * 1024
# An attempt still streaming is followed (its part's JSON files written as its chunks arrive) from
# its chunk of this sequence on: chunks are full (1 MiB) but the last, so the answer is 4 MiB at least.
FOLLOW_FROM_SEQUENCE = 4
FOLLOW_CHUNKS_AT_ONCE = 1  # sealed chunks read in one statement while following
FOLLOW_POLL_SECONDS = 0.05  # between reads, when a followed attempt has nothing new stored (a
FOLLOW_POLL_MAX_SECONDS = 0.25  # chunk stored wakes it sooner); the pause doubles up to this
# Parts written ahead at once, in one process: they compete for the same core as collection.
MAX_CONCURRENT_WRITES_AHEAD = 2


class AssemblyError(Exception):
    """The archive could not be built; the message says why, without personal data."""


@dataclass
class _ChunkSink:
    """Collects the encrypted bytes the writer emits, cut into archive chunks."""

    pending: bytearray

    def __call__(self, data: bytes) -> None:
        self.pending += data


class Assembler:
    def __init__(self, store: RequestStore, settings: Settings, catalog: SystemCatalog | None = None) -> None:
        self._store = store
        self._catalog = catalog or SystemCatalog(store)
        self._keys = RequestKeys(settings.require_master_key())
        self._ttl = timedelta(days=settings.archive_ttl_days)
        self._lease_seconds = settings.assembly_lease_seconds
        self._ahead = PartsAhead()
        self._streaming_slots = asyncio.Semaphore(MAX_CONCURRENT_STREAMING_BUILDS)
        self._ahead_slots = asyncio.Semaphore(MAX_CONCURRENT_WRITES_AHEAD)
        # The parts' temporary files together (deflated, sealed); a part that does not fit is
        # written by the build. 0: nothing is written ahead.
        self._ahead_disk = SpoolBudget(settings.parts_ahead_disk_bytes)
        self._chunk_stored: dict[PartKey, asyncio.Event] = {}  # the attempts followed, woken by a chunk

    async def assemble(self, request_id: str) -> None:
        """Build the archive if the request is ready for it and no other replica is on it."""
        claim = await self._store.claim_assembly(request_id, self._lease_seconds)
        if claim is None:
            return
        version = claim.version
        try:
            try:
                await self._build(request_id, claim)
            except SpoolError as error:
                # A part written ahead did not read back (its temporary file): the sealed chunks
                # are intact, so write the archive again without parts (a build writes none).
                log.warning("a part written ahead failed request=%s (%s); building without", request_id,
                            type(error).__name__)  # fmt: skip
                self._ahead.drop_request(request_id)
                await self._store.discard_archive_version(request_id, version)
                await self._build(request_id, claim)
        except LostLease:
            log.warning("assembly of version %d stopped request=%s: its claim is gone", version, request_id)
            await self._store.discard_archive_version(request_id, version)
        except (AssemblyError, SealError, SpoolError, PayloadError, ValueError) as error:
            log.error("assembly failed request=%s: %s", request_id, error)
            await self._store.discard_archive_version(request_id, version)
            await self._store.fail_request(request_id, version, f"the archive could not be built: {error}")
        finally:
            self._ahead.drop_request(request_id)

    def write_ahead(self, completed: SystemRow) -> None:
        """Start writing a system's part of the archive now, while other systems still search.

        For a large answer only (`WRITE_AHEAD_FROM_BYTES`): the build will splice the part in
        instead of writing the system then. Does nothing if the part is already being written."""
        if not self._ahead_disk.limit:
            return
        if completed.state is not SystemState.COMPLETED or completed.bytes < WRITE_AHEAD_FROM_BYTES:
            return
        request_id, system, attempt = completed.request_id, completed.system, completed.attempt
        self._ahead.start((request_id, system, attempt), lambda: self._write_part(request_id, system, attempt))

    def follow(self, request_id: str, system: str, attempt: int, sequence: int) -> None:
        """A chunk of an attempt was stored: from `FOLLOW_FROM_SEQUENCE` on (a large answer), start
        writing the system's part ahead now, its JSON files and their CSV twins following the
        chunks as they arrive (the CSV twins take a second reading, once the attempt is complete,
        if a field was not declared). Its completion then finds it started."""
        key = (request_id, system, attempt)
        if (stored := self._chunk_stored.get(key)) is not None:
            stored.set()
        elif sequence == FOLLOW_FROM_SEQUENCE and self._ahead_disk.limit:
            self._ahead.start(key, lambda: self._write_part(request_id, system, attempt, following=True))

    def drop_parts_ahead(self) -> None:
        """Stop the parts being written ahead and drop those written (at shutdown)."""
        self._ahead.drop_all()

    async def _write_part(
        self, request_id: str, system: str, attempt: int, following: bool = False
    ) -> PartAhead | None:
        async with self._ahead_slots:
            secrets = await self._store.secrets(request_id)
            if secrets.state is not RequestState.COLLECTING or secrets.wrapped_private_key is None:
                return None
            started = time.monotonic()
            private = self._keys.private_key(request_id, secrets.wrapped_private_key)
            info = (await self._catalog.systems()).get(system)
            spool, csv_spool = SealedSpool(budget=self._ahead_disk), SealedSpool(budget=self._ahead_disk)
            try:
                builder = ArchiveBuilder(
                    SectionWriter(spool.write, compresslevel=COMPRESS_LEVEL),
                    csv_writer=SectionWriter(csv_spool.write, compresslevel=COMPRESS_LEVEL),
                    portability=secrets.kind is Kind.PORTABILITY,
                )
                records = self._records(request_id, system, attempt, private, None, _yield_to_others)
                if following:
                    records = _first_then(self._followed(request_id, system, attempt, private), records)
                part = builder.take_part(await _write_system(builder, system, info, records))
            except BaseException:
                spool.close()
                csv_spool.close()
                raise
            if not builder.csv_alongside:  # a field not declared: the CSV twins took a second pass
                csv_spool.close()
            spools = SpoolChain(spool, csv_spool) if builder.csv_alongside else spool
            log.info(
                "part written ahead request=%s system=%s bytes=%d seconds=%.2f csv_alongside=%s",
                request_id, system, spools.size, time.monotonic() - started, builder.csv_alongside,
            )  # fmt: skip
            return PartAhead(part, spools, info)

    async def _build(self, request_id: str, claim: AssemblyClaim) -> None:
        started = time.monotonic()
        secrets, view, version = claim.secrets, claim.view, claim.version
        if secrets.wrapped_private_key is None or secrets.sealed_identifiers is None:
            raise AssemblyError("the request's key is gone")
        private = self._keys.private_key(request_id, secrets.wrapped_private_key)
        identifiers = self._keys.open_identifiers(request_id, secrets.sealed_identifiers)
        attempts = {p.system: p.attempts for p in view.systems if p.state is SystemState.COMPLETED}
        held = await self._held_chunks(request_id, view, attempts)
        large = sum(p.bytes for p in view.systems if p.system in attempts) > HELD_CHUNKS_BYTES
        async with self._streaming_slot(request_id, version) if large else contextlib.nullcontext():
            size = await self._write(request_id, version, secrets, private, identifiers, view, attempts, held)
        log.info(
            "archive ready request=%s version=%d bytes=%d seconds=%.2f",
            request_id, version, size, time.monotonic() - started,
        )  # fmt: skip

    @contextlib.asynccontextmanager
    async def _streaming_slot(self, request_id: str, version: int) -> AsyncIterator[None]:
        """One of the streaming builds' slots; the lease is renewed while waiting for it."""
        acquiring = asyncio.ensure_future(self._streaming_slots.acquire())
        try:
            await self._renewing(request_id, version, acquiring)
        except BaseException:
            acquiring.cancel()
            if acquiring.done() and not acquiring.cancelled():
                self._streaming_slots.release()
            raise
        try:
            yield
        finally:
            self._streaming_slots.release()

    async def _part_ahead(self, request_id: str, version: int, system: str, attempt: int) -> PartAhead | None:
        """The system's part written ahead, if there is one (waiting for it, the lease renewed)."""
        key = (request_id, system, attempt)
        if key not in self._ahead:
            return None
        return await self._renewing(request_id, version, asyncio.ensure_future(self._ahead.take(key)))

    async def _renewing(self, request_id: str, version: int, waited: "asyncio.Future[_T]") -> _T:
        """`waited`'s result, renewing the build's lease every third of it meanwhile (raises
        LostLease when the claim is gone)."""
        while not (await asyncio.wait({waited}, timeout=self._lease_seconds / 3))[0]:
            await self._store.renew_assembly(request_id, version, self._lease_seconds)
        return waited.result()

    async def _write(
        self,
        request_id: str,
        version: int,
        secrets: RequestSecrets,
        private: bytes,
        identifiers: list[Identifier],
        view: RequestView,
        attempts: dict[str, int],
        held: dict[str, list[bytes]] | None,
    ) -> int:
        """Write the archive, store it in chunks, and publish it; returns its size."""
        catalog = await self._catalog.systems()

        sink = _ChunkSink(bytearray())
        writer = ArchiveWriter([parse_recipient(secrets.recipient)], sink, compresslevel=COMPRESS_LEVEL)
        builder = ArchiveBuilder(writer, portability=view.kind is Kind.PORTABILITY)
        sequence = 0
        renewed = time.monotonic()

        async def flush(final: bool = False) -> None:
            """Store the full archive chunks; renew the lease (raises LostLease when it is gone)."""
            nonlocal sequence, renewed
            while len(sink.pending) >= ARCHIVE_CHUNK_BYTES or (final and sink.pending):
                piece = bytes(sink.pending[:ARCHIVE_CHUNK_BYTES])
                del sink.pending[:ARCHIVE_CHUNK_BYTES]
                await self._store.add_archive_chunk(request_id, version, sequence, piece)
                sequence += 1
            if time.monotonic() - renewed >= self._lease_seconds / 3:
                await self._store.renew_assembly(request_id, version, self._lease_seconds)
                renewed = time.monotonic()

        systems: list[SystemReport] = []
        for progress in view.systems:
            info = catalog.get(progress.system)
            exported: tuple[DatasetReport, ...] = ()
            if progress.state is SystemState.COMPLETED:
                attempt = attempts[progress.system]
                ahead = await self._part_ahead(request_id, version, progress.system, attempt)
                if ahead is not None and _declared(ahead.info) != _declared(info):
                    ahead.spool.close()  # the connector announced other datasets since: write it anew
                    ahead = None
                if ahead is not None:
                    exported = await _splice(builder, ahead, flush)
                else:
                    records = self._records(request_id, progress.system, attempt, private, held, flush)
                    exported = await _write_system(builder, progress.system, info, records)
                await flush()
            systems.append(
                SystemReport(
                    name=progress.system,
                    description=info.description if info else "",
                    status=progress.state.value,
                    attempts=progress.attempts,
                    error=progress.error,
                    snapshot_at=progress.ended_at,
                    datasets=exported,
                    received=builder.received if progress.state is SystemState.COMPLETED else 0,
                )
            )
        digest = builder.finish(_report(view, identifiers, systems, builder))
        await flush(final=True)
        expires = datetime.now(UTC) + self._ttl
        if not await self._store.finish_archive(request_id, version, digest.size, digest.sha256, expires):
            raise LostLease(f"the assembly of version {version} lost its claim before it finished")
        return digest.size

    async def _held_chunks(
        self, request_id: str, view: RequestView, attempts: dict[str, int]
    ) -> dict[str, list[bytes]] | None:
        """The sealed chunks of every completed system the build writes itself (not written
        ahead), when they are few enough to hold; else None."""
        own = {s: a for s, a in attempts.items() if (request_id, s, a) not in self._ahead}
        sealed_bytes = sum(p.bytes for p in view.systems if p.system in own)
        if sealed_bytes > HELD_CHUNKS_BYTES:
            return None
        return await self._store.chunks_of(request_id, own)

    async def _followed(
        self, request_id: str, system: str, attempt: int, private: bytes
    ) -> AsyncIterator[tuple[str, bytes]]:
        """The attempt's records as its chunks are stored, until it has completed and its last
        chunk is read; AssemblyError if it ends otherwise (failed, asked again, cancelled)."""
        key = (request_id, system, attempt)
        stored = self._chunk_stored[key] = asyncio.Event()
        try:
            async for record in self._read_following(request_id, system, attempt, private, stored):
                yield record
        finally:
            self._chunk_stored.pop(key, None)

    async def _read_following(
        self, request_id: str, system: str, attempt: int, private: bytes, stored: asyncio.Event
    ) -> AsyncIterator[tuple[str, bytes]]:
        sequence, pause = 0, FOLLOW_POLL_SECONDS
        while True:
            stored.clear()
            chunks, row = await self._store.chunks_from(request_id, system, attempt, sequence, FOLLOW_CHUNKS_AT_ONCE)
            for sealed in chunks:
                for record in _opened(sealed, private, chunk_binding(request_id, system, attempt, sequence)):
                    yield record
                sequence += 1
                await _yield_to_others()
            if chunks:
                pause = FOLLOW_POLL_SECONDS
                continue
            if row is None or row.attempt != attempt or (row.state.ended and row.state is not SystemState.COMPLETED):
                raise AssemblyError("the attempt followed did not complete")
            if row.state is SystemState.COMPLETED:
                if row.expected_chunks != sequence:  # complete, yet this chunk is not there
                    raise AssemblyError("a chunk of the attempt followed is missing")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stored.wait(), pause)
            pause = min(2 * pause, FOLLOW_POLL_MAX_SECONDS)

    def _records(
        self,
        request_id: str,
        system: str,
        attempt: int,
        private: bytes,
        held: dict[str, list[bytes]] | None,
        after_chunk: Callable[[], Awaitable[None]],
    ) -> Callable[[], AsyncIterator[tuple[str, bytes]]]:
        """A reader of the system's records, in the order sent (each call reads them again from
        the database; chunks `held` are opened once); `after_chunk` is awaited after each chunk."""
        opened: list[list[tuple[str, bytes]]] | None = None  # held chunks, opened once for both passes

        def open_chunk(sealed: bytes, chunk_sequence: int) -> list[tuple[str, bytes]]:
            return _opened(sealed, private, chunk_binding(request_id, system, attempt, chunk_sequence))

        async def records() -> AsyncIterator[tuple[str, bytes]]:
            nonlocal opened
            if held is not None and system in held:
                if opened is None:
                    opened = [open_chunk(sealed, sequence) for sequence, sealed in enumerate(held[system])]
                for chunk in opened:
                    for record in chunk:
                        yield record
                    await after_chunk()
                return
            chunk_sequence = 0
            async for sealed in self._store.iter_chunks(request_id, system, attempt):
                for record in open_chunk(sealed, chunk_sequence):
                    yield record
                chunk_sequence += 1
                await after_chunk()

        return records


def _opened(sealed: bytes, private: bytes, binding: bytes) -> list[tuple[str, bytes]]:
    """A sealed chunk's records, as (dataset, fields as JSON), in the order sent."""
    return decode_records(open_sealed(sealed, private, binding))


async def _write_system(
    builder: ArchiveBuilder,
    system: str,
    info: SystemInfo | None,
    records: Callable[[], AsyncIterator[tuple[str, bytes]]],
) -> tuple[DatasetReport, ...]:
    """Write a completed system's files: its JSON, then the CSV twins from a second reading,
    unless the builder wrote them alongside (a part written ahead, every field declared)."""
    builder.begin_system(system, _declared(info))
    async for dataset, fields_json in records():
        builder.json_record(dataset, fields_json)
    if builder.end_json_pass():
        async for dataset, fields_json in records():
            builder.csv_record(dataset, fields_json)
    return builder.end_system()


def _first_then(
    first: AsyncIterator[tuple[str, bytes]], then: Callable[[], AsyncIterator[tuple[str, bytes]]]
) -> Callable[[], AsyncIterator[tuple[str, bytes]]]:
    """A reader whose first reading is `first`, and every later one `then()`."""
    readings = 0

    def records() -> AsyncIterator[tuple[str, bytes]]:
        nonlocal readings
        readings += 1
        return first if readings == 1 else then()

    return records


async def _splice(
    builder: ArchiveBuilder, ahead: PartAhead, after_block: Callable[[], Awaitable[None]]
) -> tuple[DatasetReport, ...]:
    """Splice a part written ahead into the archive, block by block; its spool is closed after."""
    try:
        splicing = builder.add_part(ahead.part)
        for block in ahead.spool.blocks():
            splicing.write(block)
            await after_block()
        splicing.end()
    finally:
        ahead.spool.close()
    return ahead.part.datasets


async def _yield_to_others() -> None:
    """Between chunks of a part written ahead: let the results being collected go first."""
    await asyncio.sleep(0)


def _declared(info: SystemInfo | None) -> tuple[DatasetInfo, ...]:
    return info.datasets if info else ()


def _report(
    view: RequestView, identifiers: list[Identifier], systems: list[SystemReport], builder: ArchiveBuilder
) -> ArchiveReport:
    return ArchiveReport(
        request_id=view.request_id,
        kind=view.kind.value,
        received_at=view.received_at,
        generated_at=datetime.now(UTC),
        due_at=view.due_at,
        extension_reason=view.extension_reason,
        identifiers=tuple(IdentifierReport(i.kind.value, mask(i.value), i.source) for i in identifiers),
        systems=tuple(systems),
        redactions=builder.redactions,
        not_portable=builder.not_portable,
    )
