"""Downloads: the file appears whole and verified, or not at all (and nothing is left behind)."""

import hashlib
import stat
from pathlib import Path

import grpc
import pytest
from fake_dsar_service import Served

from dsar.v1 import dsar_pb2
from dsar_service.client import DownloadError, DsarClient, ServiceError, save_archive

ARCHIVE = bytes(range(256)) * 1000  # 256,000 bytes


Messages = list[dsar_pb2.DownloadArchiveResponse]


def stream(data: bytes, *, size: int | None = None, sha256: str | None = None) -> Messages:
    info = dsar_pb2.ArchiveInfo(
        size_bytes=len(data) if size is None else size,
        sha256=hashlib.sha256(data).hexdigest() if sha256 is None else sha256,
        version=1,
    )
    chunks = [data[i : i + 64 * 1024] for i in range(0, len(data), 64 * 1024)]
    return [dsar_pb2.DownloadArchiveResponse(info=info)] + [dsar_pb2.DownloadArchiveResponse(chunk=c) for c in chunks]


async def download(served: Served, target: Path) -> dsar_pb2.ArchiveInfo:
    async with DsarClient.connect(served.settings) as client:
        return await save_archive(client.download("r-1"), target)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


async def test_a_good_archive_is_written_whole_and_private(served: Served, tmp_path: Path) -> None:
    served.service.archive = stream(ARCHIVE)
    target = tmp_path / "archive.age"
    info = await download(served, target)
    assert target.read_bytes() == ARCHIVE
    assert info.size_bytes == len(ARCHIVE)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("messages", "complaint"),
    [
        (stream(ARCHIVE, sha256="0" * 64), "SHA-256 does not match"),
        (stream(ARCHIVE, size=len(ARCHIVE) + 1), "truncated: 256000 of 256001"),
        (stream(ARCHIVE, size=len(ARCHIVE) - 1), "longer than the announced 255999"),
        (stream(ARCHIVE)[1:], "did not start with"),
        (stream(ARCHIVE)[:2] + stream(ARCHIVE)[:1], "header twice"),
        ([], "stream was empty"),
    ],
    ids=["wrong-hash", "truncated", "too-long", "no-header", "two-headers", "empty"],
)
async def test_a_bad_archive_leaves_the_target_untouched(
    served: Served, tmp_path: Path, messages: Messages, complaint: str
) -> None:
    served.service.archive = messages
    target = tmp_path / "archive.age"
    target.write_bytes(b"the previous download")
    with pytest.raises(DownloadError, match=complaint):
        await download(served, target)
    assert target.read_bytes() == b"the previous download"
    assert leftovers(tmp_path) == []


async def test_a_stream_broken_by_the_service_leaves_nothing(served: Served, tmp_path: Path) -> None:
    served.service.archive = stream(ARCHIVE)[:3]
    served.service.abort_download = grpc.StatusCode.INTERNAL
    target = tmp_path / "archive.age"
    with pytest.raises(ServiceError, match="internal: archive storage unavailable"):
        await download(served, target)
    assert not target.exists()
    assert leftovers(tmp_path) == []


async def test_a_missing_folder_is_reported_before_anything_is_asked(served: Served, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="does not exist"):
        await download(served, tmp_path / "absent" / "archive.age")
