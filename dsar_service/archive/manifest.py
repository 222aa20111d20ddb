"""manifest.json: the archive described for a program, versioned by `format_version`.

Its contract is `manifest.schema.json` beside this module (also written into every archive as
schemas/manifest.schema.json). The manifest lists every other file with its size and SHA-256
(it cannot list itself), so a reader can check that nothing was altered or lost.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from .report import ArchiveReport
from .writer import FileEntry

__all__ = ["FORMAT_VERSION", "build_manifest"]

# 1.1: adds files[].records/media_type/schema, systems.*.status_text, due and extension, register
# and labels versions, portability exclusions. Readers of 1.0 keep working (only additions).
FORMAT_VERSION = "1.1"

_MEDIA_TYPES = {".json": "application/json", ".csv": "text/csv", ".html": "text/html"}

STATUS_TEXT = {
    "completed": "searched completely",
    "failed": "could not be searched: the system reported an error; its data is not in this archive",
    "timed_out": "did not answer in time; its data is not in this archive",
    "cancelled": "the search was cancelled; its data is not in this archive",
}


def status_text(status: str) -> str:
    """A system's outcome in words."""
    return STATUS_TEXT.get(status, f"did not finish ({status}); its data is not in this archive")


def _media_type(path: str) -> str:
    return next((media for ext, media in _MEDIA_TYPES.items() if path.endswith(ext)), "application/octet-stream")


def build_manifest(
    report: ArchiveReport,
    files: Sequence[FileEntry],
    *,
    schemas: Mapping[str, str],
    register_version: str,
    labels_version: str,
) -> dict[str, Any]:
    """The manifest of an archive whose other files are `files`; `schemas` maps data file -> schema."""
    return {
        "format_version": FORMAT_VERSION,
        "request_id": report.request_id,
        "kind": report.kind,
        "received_at": report.received_at.isoformat(),
        "generated_at": report.generated_at.isoformat(),
        "due_at": report.due_at.isoformat(),
        "extension_reason": report.extension_reason,
        "register_version": register_version,
        "labels_version": labels_version,
        "identifiers": [{"kind": i.kind, "value": i.masked, "source": i.source} for i in report.identifiers],
        "systems": {
            s.name: {
                "status": s.status,
                "status_text": status_text(s.status),
                "records": s.records,
                "datasets": {d.name: d.records for d in s.datasets},
                "snapshot_at": s.snapshot_at.isoformat() if s.snapshot_at else None,
                "attempts": s.attempts,
                "error": s.error,
            }
            for s in report.systems
        },
        "files": [
            {
                "path": f.path,
                "size": f.size,
                "sha256": f.sha256,
                "media_type": _media_type(f.path),
                **({"records": f.records} if f.records is not None else {}),
                **({"schema": schemas[f.path]} if f.path in schemas else {}),
            }
            for f in files
        ],
        "redactions": [
            {
                "system": r.system,
                "dataset": r.dataset,
                "record_key": r.record_key,
                "fields_removed": list(r.fields_removed),
                "reason": r.reason,
            }
            for r in report.redactions
        ],
        "portability": {"not_covered_activities": list(report.not_portable)} if report.portability else None,
    }
