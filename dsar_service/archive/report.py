"""What an archive says about its request: the facts index.html and manifest.json are written from.

The assembler fills these from the request, the systems' outcomes and what it wrote; the page
and the manifest only render them. Identifier values are already masked here.
"""

from dataclasses import dataclass
from datetime import datetime

__all__ = ["ArchiveReport", "DatasetReport", "IdentifierReport", "Redaction", "SystemReport"]


@dataclass(frozen=True)
class DatasetReport:
    """One dataset of one system as exported: its files and how many records they hold."""

    system: str
    name: str
    title: str
    note: str
    activity: str
    activities: tuple[str, ...]  # of its exported fields (usually just `activity`)
    records: int
    json_path: str
    csv_path: str
    schema_path: str


@dataclass(frozen=True)
class SystemReport:
    """How the search of one source system ended, and what it returned."""

    name: str
    description: str
    status: str  # completed, failed, timed_out, cancelled, ...
    attempts: int
    error: str
    snapshot_at: datetime | None
    datasets: tuple[DatasetReport, ...] = ()
    received: int = 0  # records the system sent, before the portability filter

    @property
    def records(self) -> int:
        return sum(d.records for d in self.datasets)


@dataclass(frozen=True)
class IdentifierReport:
    """An identifier the search used: its kind, a masked form, and where it came from."""

    kind: str
    masked: str
    source: str  # "request", or the system that found it


@dataclass(frozen=True)
class Redaction:
    """Another person's data removed from a record (GDPR art. 15(4))."""

    system: str
    dataset: str
    record_key: str
    fields_removed: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class ArchiveReport:
    """Everything the archive says about the request, besides the data itself."""

    request_id: str
    kind: str  # access, portability
    received_at: datetime
    generated_at: datetime
    due_at: datetime
    extension_reason: str
    identifiers: tuple[IdentifierReport, ...]
    systems: tuple[SystemReport, ...]
    redactions: tuple[Redaction, ...]
    # portability: activities of the searched systems that art. 20 does not cover (register ids)
    not_portable: tuple[str, ...] = ()

    @property
    def portability(self) -> bool:
        return self.kind == "portability"

    @property
    def activities(self) -> list[str]:
        """The activities under which the exported data is processed, in order of appearance."""
        seen: dict[str, None] = {}
        for system in self.systems:
            for dataset in system.datasets:
                for activity in dataset.activities:
                    seen.setdefault(activity, None)
        return list(seen)
