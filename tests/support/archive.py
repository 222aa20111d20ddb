"""The archive as its recipient sees it, and the exact records the population says it must hold.

    identity = pyrage.x25519.Identity.generate()      # the requester's; str(identity.to_public()) to submit
    archive = await fetch_archive(stub, request_id, identity)
    comparison = compare(archive, population, "claims")
    assert comparison.exact, str(comparison)

Records are compared as multisets on their dataset's key (the connector's declaration): a record
missing or delivered twice both show.
"""

import hashlib
import io
import json
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyrage

from connectors.runtime import load_connectors
from connectors.sdk import Connector
from connectors.testing.population import Population
from dsar.v1 import dsar_pb2, dsar_pb2_grpc


@dataclass(frozen=True)
class Archive:
    """A decrypted archive: its manifest and its data files (`data/<system>/<dataset>.json`)."""

    info: dsar_pb2.ArchiveInfo
    manifest: dict[str, Any]
    data: dict[str, list[dict[str, Any]]]

    def records(self, system: str, dataset: str) -> list[dict[str, Any]]:
        return self.data.get(f"data/{system}/{dataset}.json", [])

    def count(self, system: str) -> int:
        """How many records of `system` the archive holds (redaction notes aside)."""
        return sum(len(v) for k, v in self.data.items() if k.startswith(f"data/{system}/"))


@dataclass(frozen=True)
class DatasetComparison:
    """One dataset: the records expected and found, compared on `fields`."""

    dataset: str
    fields: tuple[str, ...]
    expected: Counter[tuple[str, ...]]
    found: Counter[tuple[str, ...]]

    @property
    def missing(self) -> int:
        return sum((self.expected - self.found).values())

    @property
    def unexpected(self) -> int:
        """Records found beyond those expected: doubles, or records that concern no expected row."""
        return sum((self.found - self.expected).values())

    @property
    def doubled(self) -> int:
        return sum(n - 1 for n in self.found.values() if n > 1) - sum(n - 1 for n in self.expected.values() if n > 1)

    def __str__(self) -> str:
        return (
            f"{self.dataset}: expected {sum(self.expected.values())}, found {sum(self.found.values())}, "
            f"missing {self.missing}, unexpected {self.unexpected} (doubled {self.doubled}) on {','.join(self.fields)}"
        )


@dataclass(frozen=True)
class Comparison:
    """Every exported dataset of one system, archive against population."""

    system: str
    datasets: tuple[DatasetComparison, ...]

    @property
    def exact(self) -> bool:
        return all(d.expected == d.found for d in self.datasets)

    @property
    def expected_total(self) -> int:
        return sum(sum(d.expected.values()) for d in self.datasets)

    @property
    def found_total(self) -> int:
        return sum(sum(d.found.values()) for d in self.datasets)

    def __str__(self) -> str:
        verdict = "exact" if self.exact else "DIFFERENT"
        lines = [f"{self.system}: {verdict}, {self.found_total} records found of {self.expected_total} expected"]
        lines += [f"  {d}" for d in self.datasets]
        return "\n".join(lines)


def compare(archive: Archive, population: Population, system: str, datasets: set[str] | None = None) -> Comparison:
    """The archive's records of `system` against the rows that concern the demo subject.

    Each dataset the connector exports (and the population counts for the subject; restricted to
    `datasets` when given) is compared as a multiset on its declared key when every record
    carries it, else on every field of the rows that every record shows (a payment is shown
    without its id): a record lost, doubled or foreign shows as a difference.
    """
    rows: dict[str, list[dict[str, Any]]] = {}
    for table, row in population.subject_rows(system):
        rows.setdefault(table, []).append(row)
    compared = []
    for dataset in _connector(system).datasets:
        if dataset.name not in rows or (datasets is not None and dataset.name not in datasets):
            continue
        records = archive.records(system, dataset.name)
        fields = _signature(dataset.key, records, rows[dataset.name][0])
        compared.append(
            DatasetComparison(
                dataset.name,
                fields,
                Counter(_values(row, fields) for row in rows[dataset.name]),
                Counter(_values(record, fields) for record in records),
            )
        )
    return Comparison(system, tuple(compared))


def _connector(system: str) -> Connector:
    return load_connectors([system])[0]


def _signature(key: tuple[str, ...], records: list[dict[str, Any]], row: dict[str, Any]) -> tuple[str, ...]:
    """The key when every record carries it, else every field of the row that every record shows."""
    if all(name in record for record in records for name in key):
        return key
    fields = tuple(name for name in row if all(name in record for record in records))
    if not fields:
        raise AssertionError(f"records carry neither their key {key} nor a field of the row to compare them on")
    return fields


def _values(row: dict[str, Any], fields: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_text(row.get(name)) for name in fields)


def _text(value: Any) -> str:
    """A value as the archive's JSON shows it: dates and times in ISO 8601, the rest as text."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


async def download(stub: dsar_pb2_grpc.DsarServiceStub, request_id: str) -> tuple[dsar_pb2.ArchiveInfo, bytes]:
    """The encrypted archive and its info, as DownloadArchive streams them."""
    info: dsar_pb2.ArchiveInfo | None = None
    body = bytearray()
    async for part in stub.DownloadArchive(dsar_pb2.DownloadArchiveRequest(request_id=request_id)):
        if part.HasField("info"):
            info = part.info
        else:
            body += part.chunk
    assert info is not None, "the download sent no ArchiveInfo"
    return info, bytes(body)


async def fetch_archive(
    stub: dsar_pb2_grpc.DsarServiceStub, request_id: str, identity: pyrage.x25519.Identity
) -> Archive:
    """Download, check size and digest, decrypt with the requester's identity, read the ZIP."""
    info, encrypted = await download(stub, request_id)
    assert len(encrypted) == info.size_bytes and hashlib.sha256(encrypted).hexdigest() == info.sha256
    files = zipfile.ZipFile(io.BytesIO(pyrage.decrypt(encrypted, [identity])))
    manifest = json.loads(files.read("manifest.json"))
    data = {
        name: json.loads(files.read(name))
        for name in files.namelist()
        if name.startswith("data/") and name.endswith(".json")
    }
    return Archive(info, manifest, data)
