"""ArchiveWriter end to end: records in, age ciphertext out, and back through `age -d` and zipfile."""

import hashlib
import io
import json
import shutil
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from archive_support import AgeKey, fill

from dsar_service.archive import ArchiveDigest, ArchiveWriter, FileEntry
from dsar_service.crypto import CHUNK_SIZE, parse_recipient


def _records(system: str, count: int) -> list[dict[str, object]]:
    return [
        {"id": i, "system": system, "email": f"jeanne.{i}@example.fr", "notes": "é€" * (i % 300), "ok": i % 2 == 0}
        for i in range(count)
    ]


def test_end_to_end(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes], tmp_path: Path) -> None:
    pieces: list[bytes] = []
    writer = ArchiveWriter([parse_recipient(age_key.recipient)], pieces.append)
    readme = "Réponse à votre demande d'accès (RGPD, article 15).\n".encode()
    writer.add_file("README.txt", readme)
    datasets = {
        "data/policy/contracts.json": _records("policy", 3),
        "data/crm/contacts.json": _records("crm", 30_000),  # ~10 MB: many flushes and age chunks
        "data/analytics/visits.json": [],
    }
    returned: dict[str, FileEntry] = {}
    for path, records in datasets.items():
        writer.open_json_array(path)
        for record in records:
            writer.write_json_item(json.dumps(record, ensure_ascii=False).encode())
        returned[path] = writer.close_json_array()
    manifest = json.dumps([entry.__dict__ for entry in writer.files]).encode()
    writer.add_file("manifest.json", manifest)
    digest = writer.close()

    ciphertext = b"".join(pieces)
    assert digest == ArchiveDigest(len(ciphertext), hashlib.sha256(ciphertext).hexdigest())
    # The sink gets batches, not a call per record or per ZIP header.
    assert len(pieces) < len(ciphertext) // (CHUNK_SIZE // 2) + 3
    assert max(map(len, pieces)) < 2 * CHUNK_SIZE + 1024

    plaintext = age_decrypt(ciphertext)
    archive = zipfile.ZipFile(io.BytesIO(plaintext))
    assert archive.testzip() is None
    assert archive.namelist() == ["README.txt", *datasets, "manifest.json"]
    assert archive.read("README.txt") == readme
    for path, records in datasets.items():
        raw = archive.read(path)
        assert json.loads(raw) == records
        assert returned[path] == FileEntry(path, len(raw), hashlib.sha256(raw).hexdigest(), len(records))
    listed = {entry["path"]: entry for entry in json.loads(archive.read("manifest.json"))}
    assert listed["README.txt"]["sha256"] == hashlib.sha256(readme).hexdigest()
    assert set(listed) == {"README.txt", *datasets}
    assert [entry.path for entry in writer.files] == archive.namelist()

    if shutil.which("unzip"):
        (tmp_path / "archive.zip").write_bytes(plaintext)
        result = subprocess.run(["unzip", "-t", str(tmp_path / "archive.zip")], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_an_empty_archive_is_valid(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]) -> None:
    pieces: list[bytes] = []
    digest = ArchiveWriter([parse_recipient(age_key.recipient)], pieces.append).close()
    plaintext = age_decrypt(b"".join(pieces))
    assert zipfile.ZipFile(io.BytesIO(plaintext)).namelist() == []
    assert digest.size == sum(map(len, pieces))


def test_json_items_must_be_objects(age_key: AgeKey) -> None:
    writer = ArchiveWriter([parse_recipient(age_key.recipient)], lambda _: None)
    writer.open_json_array("data/x/y.json")
    for bad in (b"", b"[1]", b'"text"', b'{"a": 1}\n'):
        with pytest.raises(ValueError, match="JSON object"):
            writer.write_json_item(bad)


def test_calls_out_of_order(age_key: AgeKey) -> None:
    writer = ArchiveWriter([parse_recipient(age_key.recipient)], lambda _: None)
    with pytest.raises(RuntimeError, match="no JSON array is open"):
        writer.write_json_item(b"{}")
    with pytest.raises(RuntimeError, match="no JSON array is open"):
        writer.close_json_array()
    writer.open_json_array("data/x/y.json")
    for call in (lambda: writer.add_file("a", b""), lambda: writer.open_json_array("b"), writer.close):
        with pytest.raises(RuntimeError, match="JSON array is open"):
            call()
    writer.close_json_array()
    with pytest.raises(ValueError, match="already used"):
        writer.open_json_array("data/x/y.json")
    writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        writer.add_file("late.txt", b"")


def test_python_memory_does_not_grow_with_the_archive(age_key: AgeKey) -> None:
    size = [0]

    def sink(piece: bytes) -> None:
        size[0] += len(piece)

    writer = ArchiveWriter([parse_recipient(age_key.recipient)], sink)
    tracemalloc.start()
    try:
        fill(writer, "data/analytics/visits.json", 20)
        writer.close()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size[0] > 0
    assert peak < 1_000_000, f"peak Python allocations {peak} bytes while writing 20 MB"


def test_process_memory_does_not_grow_with_the_archive(age_key: AgeKey) -> None:
    # In a fresh process, so ru_maxrss (a high-water mark) measures this writer alone,
    # C allocations (zlib, OpenSSL) included.
    script = textwrap.dedent(
        f"""
        import resource, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from archive_support import fill
        from dsar_service.archive import ArchiveWriter
        from dsar_service.crypto import parse_recipient

        def rss() -> int:
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

        writer = ArchiveWriter([parse_recipient({age_key.recipient!r})], lambda piece: None)
        fill(writer, "data/warm-up.json", 2)  # compressor, cipher and buffers at their full size
        before = rss()
        fill(writer, "data/analytics/visits.json", 40)  # were any of it kept, RSS would grow by MBs
        writer.close()
        print(rss() - before)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    growth = int(result.stdout)
    assert growth < 10 * 1024 * 1024, f"peak RSS grew by {growth} bytes while writing 40 MB"
