"""A decrypted archive, described without opening a record: its files, and records per system and dataset.

The counts come from the archive's manifest.json (`systems.<name>.datasets`) when it has one, else
from the JSON arrays under `data/<system>/<dataset>.json`. Only names, sizes, counts, statuses and
identifier kinds are read out: never a value the subject's data holds.
"""

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ._errors import ClientError
from ._render import human_bytes


@dataclass(frozen=True)
class ArchiveSummary:
    """What a decrypted archive holds, in numbers."""

    files: list[tuple[str, int]]
    # system → dataset → records
    records: dict[str, dict[str, int]]
    # system → how it ended ("completed", "failed", …), when the manifest says
    statuses: dict[str, str] = field(default_factory=dict)
    # identifier kind → where it came from ("request", or the system that found it), from the manifest
    identifiers: list[tuple[str, str]] = field(default_factory=list)


def summarize_archive(path: Path) -> ArchiveSummary:
    """Read the ZIP at `path` (already decrypted) and count what it holds."""
    try:
        with zipfile.ZipFile(path) as archive:
            files = [(info.filename, info.file_size) for info in archive.infolist() if not info.is_dir()]
            names = {name for name, _ in files}
            manifest = json.loads(archive.read("manifest.json")) if "manifest.json" in names else {}
            systems = manifest.get("systems") if isinstance(manifest, dict) else None
            if isinstance(systems, dict) and systems:
                records = {
                    name: {str(d): int(n) for d, n in (entry.get("datasets") or {}).items()}
                    for name, entry in systems.items()
                }
                statuses = {name: str(entry.get("status", "")) for name, entry in systems.items()}
            else:
                records, statuses = _count_data_files(archive, names), {}
    except (zipfile.BadZipFile, json.JSONDecodeError, KeyError, AttributeError, ValueError) as error:
        raise ClientError(f"the decrypted archive is not a readable ZIP with a manifest: {error}") from None
    identifiers = [
        (str(item.get("kind", "")), str(item.get("source", "")))
        for item in (manifest.get("identifiers") or [] if isinstance(manifest, dict) else [])
        if isinstance(item, dict)
    ]
    return ArchiveSummary(files=files, records=records, statuses=statuses, identifiers=identifiers)


def _count_data_files(archive: zipfile.ZipFile, names: set[str]) -> dict[str, dict[str, int]]:
    records: dict[str, dict[str, int]] = {}
    for name in sorted(names):
        parts = PurePosixPath(name).parts
        if len(parts) == 3 and parts[0] == "data" and name.endswith(".json"):
            items = json.loads(archive.read(name))
            if isinstance(items, list):
                records.setdefault(parts[1], {})[PurePosixPath(name).stem] = len(items)
    return records


def summary_lines(summary: ArchiveSummary) -> list[str]:
    """The summary as text: files with sizes, then records per system and dataset."""
    width = max((len(name) for name, _ in summary.files), default=0)
    lines = [f"files ({len(summary.files)})"]
    lines.extend(f"  {name:<{width}}  {human_bytes(size):>10}" for name, size in summary.files)
    total = sum(sum(datasets.values()) for datasets in summary.records.values())
    lines.append(f"records ({total:,})")
    systems = sorted(set(summary.records) | set(summary.statuses))
    for system in systems:
        datasets = summary.records.get(system, {})
        status = summary.statuses.get(system, "")
        lines.append(f"  {system:<12} {sum(datasets.values()):>7,}  {status}".rstrip())
        lines.extend(f"    {dataset:<28} {count:>7,}" for dataset, count in sorted(datasets.items()))
    if summary.identifiers:
        found = ", ".join(f"{kind} ({source})" for kind, source in summary.identifiers)
        lines.append(f"identifiers used: {found}")
    return lines
