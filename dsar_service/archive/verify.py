"""`dsar archive verify FILE --identity KEYFILE`: open an answer and check it is whole and well-formed.

Decryption uses pyrage (installed with the `dev` extra: `pip install 'dsar[dev]'`), else the
`age` command-line tool; the service itself never decrypts. The plaintext ZIP goes to an
owner-only temporary folder, removed afterwards. Then:

- the ZIP's own CRCs; manifest.json against the manifest schema shipped with this package;
- every file the manifest lists exists, with that size and SHA-256; no file is left unlisted;
- every data file validates against its JSON Schema, and holds as many records as announced;
- every CSV has its schema's columns, in order, and as many rows as its JSON twin;
- each system's per-dataset counts agree with the files.

Problems name files, paths and keywords, never a value from the data.
"""

import csv
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .schema import manifest_schema, validate

__all__ = ["VerifyError", "VerifyReport", "decrypt_archive", "verify_archive", "verify_zip"]


class VerifyError(Exception):
    """The archive cannot be checked at all: it does not decrypt, or is not a ZIP with a manifest."""


@dataclass
class VerifyReport:
    """What was checked, and every problem found (none: the archive is whole and well-formed)."""

    request_id: str = ""
    kind: str = ""
    format_version: str = ""
    files: int = 0
    data_files: int = 0
    records: int = 0
    bytes: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        """The summary as text, one line each."""
        head = [
            f"request {self.request_id} ({self.kind}), manifest format {self.format_version}",
            f"{self.files} files, {self.bytes:,} bytes; {self.data_files} data files, {self.records:,} records",
        ]
        if self.ok:
            return [*head, "OK: every hash matches, every data file follows its schema"]
        return [*head, f"FAILED: {len(self.problems)} problem(s)", *(f"  - {p}" for p in self.problems)]


def _identities(identity_file: Path) -> list[Any]:
    import pyrage

    text = identity_file.read_text()
    keys = [line.strip() for line in text.splitlines() if line.strip().startswith("AGE-SECRET-KEY-")]
    if keys:
        return [pyrage.x25519.Identity.from_str(key) for key in keys]
    return [pyrage.ssh.Identity.from_buffer(text.encode())]


def decrypt_archive(archive: Path, identity_file: Path, output: Path) -> None:
    """Decrypt the age file `archive` with the identity in `identity_file` into `output`."""
    try:
        import pyrage
    except ImportError:
        pyrage = None
    try:
        if pyrage is not None:
            pyrage.decrypt_file(str(archive), str(output), _identities(identity_file))
            return
    except Exception as error:  # pyrage raises its own error types; none holds a secret
        raise VerifyError(f"the archive does not decrypt with this identity ({type(error).__name__})") from None
    age = shutil.which("age")
    if age is None:
        raise VerifyError("no age implementation: install the dev extra (pyrage) or the age command-line tool")
    result = subprocess.run(
        [age, "-d", "-i", str(identity_file), "-o", str(output), str(archive)], capture_output=True, check=False
    )
    if result.returncode != 0:
        raise VerifyError("the archive does not decrypt with this identity (age failed)")


def verify_archive(archive: Path, identity_file: Path) -> VerifyReport:
    """Decrypt `archive` and check it (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="dsar-verify-") as folder:
        plain = Path(folder) / "archive.zip"
        decrypt_archive(archive, identity_file, plain)
        return verify_zip(plain)


def _sha256(files: zipfile.ZipFile, name: str) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with files.open(name) as stream:
        while block := stream.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def verify_zip(path: Path | bytes) -> VerifyReport:
    """Check a decrypted archive (a path, or the ZIP's bytes)."""
    source: Any = io.BytesIO(path) if isinstance(path, bytes) else path
    report = VerifyReport()
    try:
        with zipfile.ZipFile(source) as files:
            _verify(files, report)
    except zipfile.BadZipFile as error:
        raise VerifyError(f"the decrypted archive is not a ZIP ({error})") from None
    return report


def _verify(files: zipfile.ZipFile, report: VerifyReport) -> None:
    problems = report.problems
    bad = files.testzip()
    if bad is not None:
        problems.append(f"{bad}: corrupt in the ZIP (CRC)")
    names = {info.filename for info in files.infolist() if not info.is_dir()}
    if "manifest.json" not in names:
        raise VerifyError("the archive has no manifest.json")
    try:
        manifest = json.loads(files.read("manifest.json"))
    except json.JSONDecodeError:
        raise VerifyError("manifest.json is not JSON") from None
    problems.extend(f"manifest.json: {p}" for p in validate(manifest, manifest_schema()))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
        return
    report.request_id = str(manifest.get("request_id", ""))
    report.kind = str(manifest.get("kind", ""))
    report.format_version = str(manifest.get("format_version", ""))
    listed: dict[str, dict[str, Any]] = {}
    for entry in manifest["files"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            continue
        path = entry["path"]
        listed[path] = entry
        if path not in names:
            problems.append(f"{path}: listed in the manifest, missing from the archive")
            continue
        size, sha256 = _sha256(files, path)
        report.bytes += size
        if size != entry.get("size"):
            problems.append(f"{path}: size {size} differs from the manifest's")
        if sha256 != entry.get("sha256"):
            problems.append(f"{path}: SHA-256 differs from the manifest's")
    report.files = len(names)
    for name in sorted(names - set(listed) - {"manifest.json"}):
        problems.append(f"{name}: in the archive but not in the manifest")
    counts = _verify_data(files, names, listed, report)
    systems = manifest.get("systems")
    if isinstance(systems, dict):
        for system, info in systems.items():
            declared = info.get("datasets", {}) if isinstance(info, dict) else {}
            if isinstance(declared, dict) and declared != counts.get(system, {}):
                problems.append(f"manifest.json: the record counts of {system} differ from its data files")
        for system in set(counts) - set(systems):
            problems.append(f"data/{system}/: not in the manifest's systems")


def _verify_data(
    files: zipfile.ZipFile, names: set[str], listed: dict[str, dict[str, Any]], report: VerifyReport
) -> dict[str, dict[str, int]]:
    problems = report.problems
    counts: dict[str, dict[str, int]] = {}
    for path in sorted(n for n in names if n.startswith("data/") and n.endswith(".json")):
        report.data_files += 1
        parts = path.split("/")
        entry = listed.get(path, {})
        schema_path = entry.get("schema") or f"schemas/{'/'.join(parts[1:])[: -len('.json')]}.schema.json"
        if schema_path not in names:
            problems.append(f"{path}: its schema {schema_path} is missing")
            continue
        try:
            schema = json.loads(files.read(schema_path))
            records = json.loads(files.read(path))
        except json.JSONDecodeError:
            problems.append(f"{path}: it or its schema is not JSON")
            continue
        problems.extend(f"{path}: {p}" for p in validate(records, schema))
        count = len(records) if isinstance(records, list) else 0
        report.records += count
        if len(parts) == 3:
            counts.setdefault(parts[1], {})[parts[2][: -len(".json")]] = count
        if entry.get("records") not in (None, count):
            problems.append(f"{path}: holds {count} records, the manifest says {entry.get('records')}")
        csv_path = path[: -len(".json")] + ".csv"
        if csv_path in names:
            _verify_csv(files, csv_path, schema, count, problems)
    return counts


def _verify_csv(files: zipfile.ZipFile, path: str, schema: dict[str, Any], count: int, problems: list[str]) -> None:
    items = schema.get("items") if isinstance(schema, dict) else None
    columns = list(items.get("properties", {})) if isinstance(items, dict) else []
    with files.open(path) as raw:
        rows = csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        header = next(rows, [])
        if header != columns:
            problems.append(f"{path}: its columns differ from its schema's properties")
        lines = 0
        for row in rows:
            lines += 1
            if len(row) != len(header):
                problems.append(f"{path}: line {lines + 1} has {len(row)} cells for {len(header)} columns")
                break
    if lines != count:
        problems.append(f"{path}: {lines} rows for {count} records in its JSON twin")
