"""ZipStream writes ZIP files that Python's zipfile and Info-ZIP's unzip read back, ZIP64 included."""

import io
import os
import shutil
import subprocess
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dsar_service.archive import ZipStream, zipstream


def _unzip_test(data: bytes, tmp_path: Path) -> None:
    """`unzip -t` when Info-ZIP is installed: a second, independent reader."""
    if shutil.which("unzip") is None:
        return
    path = tmp_path / "archive.zip"
    path.write_bytes(data)
    result = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No errors detected" in result.stdout


def _sample(out: io.BytesIO) -> dict[str, bytes]:
    contents = {
        "README.txt": "Vos données, article 15 du RGPD.\n".encode(),
        "empty.txt": b"",
        "random.bin": os.urandom(70_000),  # incompressible: stored, not deflated
        "data/crm/contacts.json": b'[{"email": "x@example.fr"}]' * 5000,
        "data/policy/streamed.bin": os.urandom(150_000),
        "data/policy/empty-stream.json": b"",
    }
    stream = ZipStream(out.write, modified=datetime(2025, 3, 4, 5, 6, 8, tzinfo=UTC))
    for name in ("README.txt", "empty.txt", "random.bin"):
        stream.add(name, contents[name])
    for name in ("data/crm/contacts.json", "data/policy/streamed.bin", "data/policy/empty-stream.json"):
        stream.start(name)
        data = contents[name]
        for i in range(0, len(data), 10_000):
            stream.write(data[i : i + 10_000])
        stream.end()
    stream.close()
    assert stream.offset == len(out.getvalue())
    return contents


def test_readers_get_back_what_was_written(tmp_path: Path) -> None:
    out = io.BytesIO()
    contents = _sample(out)
    archive = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    assert archive.testzip() is None
    assert archive.namelist() == list(contents)
    for name, data in contents.items():
        assert archive.read(name) == data
    info = {i.filename: i for i in archive.infolist()}
    assert info["random.bin"].compress_type == zipfile.ZIP_STORED
    assert info["data/crm/contacts.json"].compress_type == zipfile.ZIP_DEFLATED
    assert info["data/crm/contacts.json"].compress_size < 10_000
    assert info["data/crm/contacts.json"].flag_bits & 0x08  # streamed: data descriptor
    assert info["README.txt"].flag_bits & 0x800  # UTF-8 name
    assert info["README.txt"].date_time == (2025, 3, 4, 5, 6, 8)
    assert info["README.txt"].external_attr >> 16 == 0o100644
    _unzip_test(out.getvalue(), tmp_path)


def test_zip64_structures_where_values_overflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lower the thresholds so sizes, offsets and the entry count all take the ZIP64 paths,
    # without writing 4 GiB: the records are the same, only the trigger moves.
    monkeypatch.setattr(zipstream, "_ZIP64_FROM", 20_000)
    monkeypatch.setattr(zipstream, "_ZIP64_ENTRIES_FROM", 4)
    out = io.BytesIO()
    contents = _sample(out)
    data = out.getvalue()
    assert b"PK\x06\x06" in data[-200:] and b"PK\x06\x07" in data[-200:]  # ZIP64 end record and locator
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    for name, content in contents.items():
        assert archive.read(name) == content
    _unzip_test(data, tmp_path)


def test_more_than_65535_entries(tmp_path: Path) -> None:
    out = io.BytesIO()
    stream = ZipStream(out.write)
    for i in range(70_000):
        stream.add(f"f/{i}.txt", b"%d" % i)
    stream.close()
    archive = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    assert len(archive.infolist()) == 70_000
    assert archive.read("f/69999.txt") == b"69999"
    _unzip_test(out.getvalue(), tmp_path)


@pytest.mark.parametrize("name", ["", "/etc/passwd", "a/../b", "./a", "a//b", "a/", "a\\b", "a\x00b", ".."])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="archive path"):
        ZipStream(io.BytesIO().write).add(name, b"")


def test_names_are_unique() -> None:
    stream = ZipStream(io.BytesIO().write)
    stream.add("a.txt", b"")
    with pytest.raises(ValueError, match="already used"):
        stream.start("a.txt")


def test_calls_out_of_order() -> None:
    stream = ZipStream(io.BytesIO().write)
    with pytest.raises(RuntimeError):
        stream.write(b"x")
    with pytest.raises(RuntimeError):
        stream.end()
    stream.start("a")
    with pytest.raises(RuntimeError):
        stream.add("b", b"")
    with pytest.raises(RuntimeError):
        stream.close()
    stream.end()
    stream.close()
    with pytest.raises(RuntimeError):
        stream.add("c", b"")
