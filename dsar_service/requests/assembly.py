"""Assembly: sealed chunks → records → a streamed ZIP → age → archive chunks in PostgreSQL.

Memory holds one sealed chunk and one archive chunk at a time, whatever the archive's size. Each
system's sealed chunks are read twice: once for its JSON files, once for their CSV twins (ZIP
entries are sequential, and spooling the CSV to disk would leave the data in plaintext there).
What the archive holds besides the data (index.html, the data dictionary, manifest.json) is
dsar_service.archive's: this module gathers the facts, from the request, the systems' outcomes
and the catalog the connectors announced (their datasets, fields, provenance and activities).

Once the archive is stored, the request's private key and the sealed chunks are destroyed:
nothing but the recipient can read what was collected.

A build holds its request by a lease (`assembly_lease_seconds`), renewed as it writes, at most
every third of the lease; another replica takes over only a build whose lease ran out (its
process died). A build that finds its claim gone (taken over, or the request cancelled, which
moves the archive version on) stops and drops what it wrote, without failing the request.
"""

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from connectors.sdk.identifiers import Identifier, mask
from dsar_common.sealing import SealError, chunk_binding, open_sealed
from dsar_common.settings import Settings
from dsar_service.archive import (
    ArchiveBuilder,
    ArchiveReport,
    ArchiveWriter,
    DatasetReport,
    IdentifierReport,
    SystemReport,
)
from dsar_service.bus import PayloadError, decode_records
from dsar_service.crypto import parse_recipient
from dsar_service.model import DatasetInfo, Kind, RequestView, SystemInfo, SystemState
from dsar_service.requests.keys import RequestKeys
from dsar_service.store import RequestStore
from dsar_service.store.requests import LostLease

# Deflate level 1: twice the speed of level 6 for archives about 1.3 times larger (dsar bench, crypto).
COMPRESS_LEVEL = 1

log = logging.getLogger(__name__)

ARCHIVE_CHUNK_BYTES = 1024 * 1024
# Sealed chunks read in one statement, and held for both passes, when the systems' chunks add up
# to at most this; larger requests stream each system's chunks with a cursor, pass by pass.
HELD_CHUNKS_BYTES = 4 * 1024 * 1024


class AssemblyError(Exception):
    """The archive could not be built; the message says why, without personal data."""


@dataclass
class _ChunkSink:
    """Collects the encrypted bytes the writer emits, cut into archive chunks."""

    pending: bytearray

    def __call__(self, data: bytes) -> None:
        self.pending += data


class Assembler:
    def __init__(self, store: RequestStore, settings: Settings) -> None:
        self._store = store
        self._keys = RequestKeys(settings.require_master_key())
        self._ttl = timedelta(days=settings.archive_ttl_days)
        self._lease_seconds = settings.assembly_lease_seconds

    async def assemble(self, request_id: str) -> None:
        """Build the archive if the request is ready for it and no other replica is on it."""
        version = await self._store.claim_assembly(request_id, self._lease_seconds)
        if version is None:
            return
        try:
            await self._build(request_id, version)
        except LostLease:
            log.warning("assembly of version %d stopped request=%s: its claim is gone", version, request_id)
            await self._store.discard_archive_version(request_id, version)
        except (AssemblyError, SealError, PayloadError, ValueError) as error:
            log.error("assembly failed request=%s: %s", request_id, error)
            await self._store.discard_archive_version(request_id, version)
            await self._store.fail_request(request_id, version, f"the archive could not be built: {error}")

    async def _build(self, request_id: str, version: int) -> None:
        started = time.monotonic()
        secrets = await self._store.secrets(request_id)
        if secrets.wrapped_private_key is None or secrets.sealed_identifiers is None:
            raise AssemblyError("the request's key is gone")
        private = self._keys.private_key(request_id, secrets.wrapped_private_key)
        identifiers = self._keys.open_identifiers(request_id, secrets.sealed_identifiers)
        view = await self._store.get(request_id)
        catalog = {info.name: info for info in await self._store.systems(datetime.now(UTC))}
        attempts = {p.system: p.attempts for p in view.systems if p.state is SystemState.COMPLETED}
        held = await self._held_chunks(request_id, view, attempts)

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

        async def records(system: str, attempt: int) -> AsyncIterator[tuple[str, bytes]]:
            """The system's records, in the order sent; the archive is flushed after each chunk."""
            chunk_sequence = 0
            async for sealed in _each(held[system]) if held else self._store.iter_chunks(request_id, system, attempt):
                binding = chunk_binding(request_id, system, attempt, chunk_sequence)
                chunk_sequence += 1
                for record in decode_records(open_sealed(sealed, private, binding)):
                    yield record.dataset, record.fields_json
                await flush()

        systems: list[SystemReport] = []
        for progress in view.systems:
            info = catalog.get(progress.system)
            exported: tuple[DatasetReport, ...] = ()
            if progress.state is SystemState.COMPLETED:
                attempt = attempts[progress.system]
                builder.begin_system(progress.system, _declared(info))
                async for dataset, fields_json in records(progress.system, attempt):
                    builder.json_record(dataset, fields_json)
                builder.end_json_pass()
                async for dataset, fields_json in records(progress.system, attempt):
                    builder.csv_record(dataset, fields_json)
                exported = builder.end_system()
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
        log.info(
            "archive ready request=%s version=%d bytes=%d seconds=%.2f",
            request_id, version, digest.size, time.monotonic() - started,
        )  # fmt: skip

    async def _held_chunks(
        self, request_id: str, view: RequestView, attempts: dict[str, int]
    ) -> dict[str, list[bytes]] | None:
        """Every completed system's sealed chunks, when they are few enough to hold; else None."""
        sealed_bytes = sum(p.bytes for p in view.systems if p.system in attempts)
        if sealed_bytes > HELD_CHUNKS_BYTES:
            return None
        return await self._store.chunks_of(request_id, attempts)


async def _each(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


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
