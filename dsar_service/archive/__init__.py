"""The archive: a ZIP streamed straight into age encryption, with per-file sizes and hashes."""

from .writer import ArchiveDigest, ArchiveWriter, FileEntry
from .zipstream import ZipStream

__all__ = ["ArchiveDigest", "ArchiveWriter", "FileEntry", "ZipStream"]
