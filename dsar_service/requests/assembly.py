"""Assembly: sealed chunks → records → a streamed ZIP → age → archive chunks in PostgreSQL.

Memory holds one sealed chunk and one archive chunk at a time, whatever the archive's size. Once
the archive is stored, the request's private key and the sealed chunks are destroyed: nothing
but the recipient can read what was collected.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from connectors.sdk.identifiers import Identifier, mask
from dsar_common.sealing import SealError, chunk_binding, open_sealed
from dsar_common.settings import Settings
from dsar_service.archive import ArchiveWriter
from dsar_service.bus import PayloadError, decode_records
from dsar_service.crypto import parse_recipient
from dsar_service.model import RequestView, SystemState
from dsar_service.requests.keys import RequestKeys
from dsar_service.store import RequestStore

log = logging.getLogger(__name__)

ARCHIVE_CHUNK_BYTES = 1024 * 1024
FORMAT_VERSION = "1"
REDACTIONS_DATASET = "_redactions"


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
        self._lease_seconds = max(60.0, settings.system_timeout_seconds)

    async def assemble(self, request_id: str) -> None:
        """Build the archive if the request is ready for it and no other replica is on it."""
        version = await self._store.claim_assembly(request_id, self._lease_seconds)
        if version is None:
            return
        try:
            await self._build(request_id, version)
        except (AssemblyError, SealError, PayloadError, ValueError) as error:
            log.error("assembly failed request=%s: %s", request_id, error)
            await self._store.discard_archive_version(request_id, version)
            await self._store.fail_request(request_id, f"the archive could not be built: {error}")

    async def _build(self, request_id: str, version: int) -> None:
        secrets = await self._store.secrets(request_id)
        if secrets.wrapped_private_key is None or secrets.sealed_identifiers is None:
            raise AssemblyError("the request's key is gone")
        private = self._keys.private_key(request_id, secrets.wrapped_private_key)
        identifiers = self._keys.open_identifiers(request_id, secrets.sealed_identifiers)
        view = await self._store.get(request_id)
        rows = {row.system: row for row in await self._store.system_rows(request_id)}

        sink = _ChunkSink(bytearray())
        writer = ArchiveWriter([parse_recipient(secrets.recipient)], sink)
        sequence = 0

        async def flush(final: bool = False) -> None:
            nonlocal sequence
            while len(sink.pending) >= ARCHIVE_CHUNK_BYTES or (final and sink.pending):
                piece = bytes(sink.pending[:ARCHIVE_CHUNK_BYTES])
                del sink.pending[:ARCHIVE_CHUNK_BYTES]
                await self._store.add_archive_chunk(request_id, version, sequence, piece)
                sequence += 1

        redactions: list[dict[str, object]] = []
        counts: dict[str, dict[str, int]] = {}
        for progress in view.systems:
            if progress.state is not SystemState.COMPLETED:
                continue
            row = rows[progress.system]
            datasets_done: set[str] = set()
            current: str | None = None
            chunk_sequence = 0
            async for sealed in self._store.iter_chunks(request_id, progress.system, row.attempt):
                binding = chunk_binding(request_id, progress.system, row.attempt, chunk_sequence)
                chunk_sequence += 1
                for record in decode_records(open_sealed(sealed, private, binding)):
                    if record.dataset == REDACTIONS_DATASET:
                        redactions.append({"system": progress.system, **orjson.loads(record.fields_json)})
                        continue
                    if record.dataset != current:
                        if current is not None:
                            writer.close_json_array()
                            datasets_done.add(current)
                        if record.dataset in datasets_done:
                            raise AssemblyError(f"{progress.system} sent dataset {record.dataset} in two separate runs")
                        current = record.dataset
                        writer.open_json_array(f"data/{progress.system}/{_safe(current)}.json")
                    writer.write_json_item(record.fields_json)
                    per_system = counts.setdefault(progress.system, {})
                    per_system[current] = per_system.get(current, 0) + 1
                await flush()
            if current is not None:
                writer.close_json_array()
        manifest = _manifest(view, identifiers, counts, redactions, writer)
        writer.add_file("manifest.json", orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        digest = writer.close()
        await flush(final=True)
        expires = datetime.now(UTC) + self._ttl
        if await self._store.finish_archive(request_id, version, digest.size, digest.sha256, expires):
            log.info("archive ready request=%s version=%d bytes=%d", request_id, version, digest.size)


def _safe(name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    if not cleaned:
        raise AssemblyError("a dataset has no usable name")
    return cleaned


def _manifest(
    view: RequestView,
    identifiers: list[Identifier],
    counts: dict[str, dict[str, int]],
    redactions: list[dict[str, object]],
    writer: ArchiveWriter,
) -> dict[str, object]:
    return {
        "format_version": FORMAT_VERSION,
        "request_id": view.request_id,
        "kind": view.kind.value,
        "received_at": view.received_at.isoformat(),
        "generated_at": datetime.now(UTC).isoformat(),
        "due_at": view.due_at.isoformat(),
        "identifiers": [{"kind": i.kind.value, "value": mask(i.value), "source": i.source} for i in identifiers],
        "systems": {
            s.system: {
                "status": s.state.value,
                "records": sum(counts.get(s.system, {}).values()),
                "datasets": counts.get(s.system, {}),
                "snapshot_at": s.ended_at.isoformat() if s.ended_at else None,
                "attempts": s.attempts,
                "error": s.error,
            }
            for s in view.systems
        },
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in writer.files],
        "redactions": redactions,
    }
