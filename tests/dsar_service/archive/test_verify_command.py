"""`dsar archive verify`: exit 0 on a whole archive, 1 on a tampered or undecryptable one."""

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from archive_support import AgeKey

from dsar_service.archive import ArchiveBuilder, ArchiveReport, ArchiveWriter, SystemReport, verify_archive
from dsar_service.cli import main
from dsar_service.crypto import encrypt, parse_recipient
from dsar_service.model import DatasetInfo, FieldInfo

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def _archive(age_key: AgeKey, path: Path) -> bytes:
    pieces: list[bytes] = []
    builder = ArchiveBuilder(ArchiveWriter([parse_recipient(age_key.recipient)], pieces.append), portability=False)
    declared = DatasetInfo("policy", "policy_management", "", ("policy_number",),
                           (FieldInfo("status", "observed", "policy_management"),))  # fmt: skip
    builder.begin_system("policy", (declared,))
    builder.json_record("policy", orjson.dumps({"status": "active"}))
    builder.end_json_pass()
    builder.csv_record("policy", orjson.dumps({"status": "active"}))
    datasets = builder.end_system()
    system = SystemReport("policy", "", "completed", 1, "", T0, datasets)
    builder.finish(ArchiveReport("r-9", "access", T0, T0, T0, "", (), (system,), ()))
    path.write_bytes(b"".join(pieces))
    return path.read_bytes()


def test_a_whole_archive_verifies(age_key: AgeKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "a.age"
    _archive(age_key, archive)
    code = main(
        ["--state-dir", str(tmp_path), "archive", "verify", str(archive), "--identity", str(age_key.identity_file)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "request r-9 (access)" in out and "OK: every hash matches" in out


def test_a_tampered_archive_fails(
    age_key: AgeKey, age_decrypt: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyrage

    archive = tmp_path / "a.age"
    plain = pyrage.decrypt(_archive(age_key, archive), [pyrage.x25519.Identity.from_str(age_key.secret)])
    source, out = zipfile.ZipFile(io.BytesIO(plain)), io.BytesIO()
    with zipfile.ZipFile(out, "w") as copy:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "data/policy/policy.json":
                data = data.replace(b"active", b"closed")
            if info.filename != "data/policy/policy.csv":
                copy.writestr(info.filename, data)
        copy.writestr("extra.txt", b"not listed")
    archive.write_bytes(encrypt(out.getvalue(), [parse_recipient(age_key.recipient)]))
    report = verify_archive(archive, age_key.identity_file)
    assert not report.ok
    assert "data/policy/policy.json: SHA-256 differs from the manifest's" in report.problems
    assert "data/policy/policy.csv: listed in the manifest, missing from the archive" in report.problems
    assert "extra.txt: in the archive but not in the manifest" in report.problems
    assert all("active" not in p and "closed" not in p for p in report.problems)
    code = main(
        ["--state-dir", str(tmp_path), "archive", "verify", str(archive), "--identity", str(age_key.identity_file)]
    )
    assert code == 1 and "FAILED" in capsys.readouterr().out


def test_the_wrong_key_is_a_one_line_error(tmp_path: Path, age_key: AgeKey, capsys: pytest.CaptureFixture[str]) -> None:
    import pyrage

    archive = tmp_path / "a.age"
    _archive(age_key, archive)
    other = tmp_path / "other.txt"
    other.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    code = main(["--state-dir", str(tmp_path), "archive", "verify", str(archive), "--identity", str(other)])
    assert code == 1
    assert "does not decrypt with this identity" in capsys.readouterr().err
