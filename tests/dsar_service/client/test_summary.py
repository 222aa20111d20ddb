"""Archive summaries: files and sizes, records per system and dataset, never a record's content."""

import json
import zipfile
from pathlib import Path

import pytest

from dsar_service.client import ClientError, summarize_archive, summary_lines

MANIFEST = {
    "identifiers": [
        {"kind": "email", "value": "j********m", "source": "request"},
        {"kind": "person_id", "value": "3********0", "source": "policy"},
    ],
    "systems": {
        "policy": {"status": "completed", "records": 5, "datasets": {"insured_person": 1, "policy": 4}},
        "crm": {"status": "timed_out", "records": 0, "datasets": {}},
    },
}


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def test_counts_come_from_the_manifest(tmp_path: Path) -> None:
    secret_value = b'[{"email": "julien.moreau81@example.com"}]'
    archive = write_zip(
        tmp_path / "a.zip",
        {"data/policy/insured_person.json": secret_value, "manifest.json": json.dumps(MANIFEST).encode()},
    )
    summary = summarize_archive(archive)
    assert summary.records == {"policy": {"insured_person": 1, "policy": 4}, "crm": {}}
    assert summary.statuses == {"policy": "completed", "crm": "timed_out"}
    assert summary.files[0] == ("data/policy/insured_person.json", len(secret_value))
    text = "\n".join(summary_lines(summary))
    assert "records (5)" in text
    assert "  crm                0  timed_out" in text
    assert "    policy                             4" in text
    assert "identifiers used: email (request), person_id (policy)" in text
    assert "julien" not in text and "j********m" not in text


def test_without_a_manifest_records_are_counted_in_the_data_files(tmp_path: Path) -> None:
    archive = write_zip(
        tmp_path / "a.zip",
        {"data/claims/claim.json": b"[{}, {}, {}]", "data/claims/claim_document.json": b"[]", "README.txt": b"hi"},
    )
    assert summarize_archive(archive).records == {"claims": {"claim": 3, "claim_document": 0}}


def test_a_file_that_is_not_a_zip_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(b"not a zip")
    with pytest.raises(ClientError, match="not a readable ZIP"):
        summarize_archive(tmp_path / "a.zip")
