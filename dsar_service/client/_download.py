"""Download an archive to a file, whole and verified, or not at all.

DownloadArchive sends the archive's ArchiveInfo first (size and SHA-256), then its bytes in chunks.
The bytes go to a temporary file beside the target; the file takes the target's name only once its
size and hash match the info, so a reader never sees a partial or corrupt archive under that name.
"""

import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import BinaryIO

from dsar.v1 import dsar_pb2

from ._errors import DownloadError


async def save_archive(stream: AsyncIterator[dsar_pb2.DownloadArchiveResponse], target: Path) -> dsar_pb2.ArchiveInfo:
    """Write the streamed archive to `target` (atomically, mode 0600) and return its info.

    Raises DownloadError, leaving `target` untouched, when the stream does not start with the
    info, carries more or fewer bytes than announced, or hashes to another SHA-256.
    """
    target, fd, temp = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as file:
            info = await _copy_verified(stream, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        _discard(temp)
        raise
    finally:
        if isinstance(stream, AsyncGenerator):
            await stream.aclose()
    return info


def _create_temporary(target: Path) -> tuple[Path, int, Path]:
    """The absolute target, and an open, owner-only temporary file beside it (fd, path)."""
    target = target.expanduser().absolute()
    if not target.parent.is_dir():
        raise DownloadError(f"cannot write {target}: the folder {target.parent} does not exist")
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    return target, fd, Path(name)


def _discard(temp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()


async def _copy_verified(
    stream: AsyncIterator[dsar_pb2.DownloadArchiveResponse], file: BinaryIO
) -> dsar_pb2.ArchiveInfo:
    info: dsar_pb2.ArchiveInfo | None = None
    digest = hashlib.sha256()
    written = 0
    async for message in stream:
        content = message.WhichOneof("content")
        if info is None:
            if content != "info":
                raise DownloadError("the archive stream did not start with the archive's size and hash")
            info = message.info
            continue
        if content != "chunk":
            raise DownloadError("the archive stream sent its header twice")
        written += len(message.chunk)
        if written > info.size_bytes:
            raise DownloadError(f"the archive is longer than the announced {info.size_bytes} bytes")
        digest.update(message.chunk)
        file.write(message.chunk)
    if info is None:
        raise DownloadError("the archive stream was empty")
    if written != info.size_bytes:
        raise DownloadError(f"the archive is truncated: {written} of {info.size_bytes} bytes received")
    if digest.hexdigest() != info.sha256.lower():
        raise DownloadError("the archive's SHA-256 does not match the one announced; download discarded")
    return info
