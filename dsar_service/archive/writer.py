"""The archive writer: a streamed ZIP, encrypted with age as it is written, handed to a sink.

    ArchiveWriter(recipients, sink)
      add_file / open_json_array, write_json_item…, close_json_array    plaintext entries
               / open_file, write…, close_file                          (any streamed file: CSV)
        -> ZipStream (deflate, data descriptors, ZIP64 where needed)    ZIP bytes, batched to 64 KiB
        -> AgeEncryptor                                                 ciphertext in ~64 KiB pieces
        -> sink(bytes)                                                  e.g. rows of the archive table

Nothing is held but a few 64 KiB buffers, the compressor's state and one small record per
file, so memory does not grow with the archive. The writer is synchronous and CPU-only: the
service's async assembler drives it and decides where the sink's pieces go.

The writer records each file's size and SHA-256 (`files`), so the caller can write
manifest.json last, listing every other file; `close` returns the size and SHA-256 of the
ciphertext, as the download API announces them.

A part of the archive can be written ahead, apart: `SectionWriter` has the same file methods
and hands its plain ZIP bytes to its own sink; `finish` returns a `Section` (its entries and
files), which `ArchiveWriter.splice` appends where it stands (its bytes written piece by piece,
then `end`). The archive's
bytes are the same as if the section's files had been written into it directly.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from ..crypto import AgeEncryptor, Recipient
from .zipstream import ZipSection, ZipSplice, ZipStream

__all__ = ["ArchiveDigest", "ArchiveWriter", "FileEntry", "Section", "SectionWriter", "Splicing"]

_BATCH = 64 * 1024


@dataclass(frozen=True)
class FileEntry:
    """One file of the archive: its path, plaintext size, plaintext SHA-256 (lower-case hex),
    and for a JSON array the number of records in it."""

    path: str
    size: int
    sha256: str
    records: int | None = None


@dataclass(frozen=True)
class ArchiveDigest:
    """The encrypted archive as delivered: its size in bytes and SHA-256 (lower-case hex)."""

    size: int
    sha256: str


@dataclass(frozen=True)
class Section:
    """Files written apart by a SectionWriter, to be spliced into an archive with their bytes."""

    zip: ZipSection
    files: tuple[FileEntry, ...]

    @property
    def size(self) -> int:
        """The section's bytes: what `ArchiveWriter.splice` must be given."""
        return self.zip.size

    def then(self, other: "Section") -> "Section":
        """This section followed by `other` (written apart at the same time), as one section,
        whose bytes are this one's then the other's."""
        return Section(self.zip.then(other.zip), self.files + other.files)


@lru_cache(maxsize=32)
def _sha256(data: bytes) -> str:
    """The SHA-256 of a fixed file, kept for the next archive that writes it."""
    return hashlib.sha256(data).hexdigest()


class _Stream:
    """The streamed file being written: plaintext waiting for the compressor, and its hash.
    `json` marks a JSON array (records are counted, and the brackets written for it)."""

    def __init__(self, path: str, json: bool) -> None:
        self.path = path
        self.json = json
        self.pending = bytearray(b"[\n" if json else b"")
        self.digest = hashlib.sha256()
        self.size = 0
        self.records = 0


class _FileWriter:
    """The file methods both writers share; ZIP bytes go to `_take_zip_bytes`, batched to 64 KiB."""

    _kind = "archive"

    def __init__(self, *, compresslevel: int, modified: datetime | None) -> None:
        self._zip_bytes = bytearray()
        self._zip = ZipStream(self._collect_zip_bytes, compresslevel=compresslevel, modified=modified)
        self._files: list[FileEntry] = []
        self._array: _Stream | None = None
        self._splicing: Splicing | None = None
        self._closed = False

    def _collect_zip_bytes(self, data: bytes) -> None:
        self._zip_bytes += data
        if len(self._zip_bytes) >= _BATCH:
            self._pass_on_zip_bytes()

    def _pass_on_zip_bytes(self) -> None:
        batch, self._zip_bytes = self._zip_bytes, bytearray()
        self._take_zip_bytes(batch)

    def _take_zip_bytes(self, data: bytearray) -> None:
        raise NotImplementedError

    @property
    def files(self) -> list[FileEntry]:
        """Every file completed so far, in archive order."""
        return list(self._files)

    def _check_idle(self) -> None:
        if self._closed:
            raise RuntimeError(f"the {self._kind} is closed")
        if self._array is not None:
            raise RuntimeError("a JSON array is open (or a streamed file): close it first")
        if self._splicing is not None:
            raise RuntimeError("a section is being spliced: end() it first")

    def _open_array(self) -> _Stream:
        if self._array is None or not self._array.json:
            raise RuntimeError("no JSON array is open: open_json_array() first")
        return self._array

    def _open_stream(self) -> _Stream:
        if self._array is None or self._array.json:
            raise RuntimeError("no streamed file is open: open_file() first")
        return self._array

    def add_file(self, path: str, data: bytes, *, reuse: bool = False) -> FileEntry:
        """Add a small file whole (manifest.json, README.txt, index.html).

        `reuse`: a fixed file, the same bytes in many archives (a schema, the register): its
        deflated form and digest are kept in memory for the next archive (the bytes written are
        the same). Never for a file with personal data: it would outlive its request."""
        self._check_idle()
        self._zip.add(path, data, reuse=reuse)
        entry = FileEntry(path, len(data), _sha256(data) if reuse else hashlib.sha256(data).hexdigest())
        self._files.append(entry)
        return entry

    def open_json_array(self, path: str) -> None:
        """Start a JSON array file, e.g. data/<system>/<dataset>.json; records follow."""
        self._check_idle()
        self._zip.start(path)
        self._array = _Stream(path, json=True)

    def open_file(self, path: str) -> None:
        """Start a streamed file of any content, e.g. data/<system>/<dataset>.csv; `write` follows."""
        self._check_idle()
        self._zip.start(path)
        self._array = _Stream(path, json=False)

    def write(self, data: bytes) -> None:
        """Append bytes to the file opened with `open_file` (batched: small writes are cheap)."""
        stream = self._open_stream()
        stream.pending += data
        if len(stream.pending) >= _BATCH:
            self._flush_array(stream)

    def close_file(self, records: int | None = None) -> FileEntry:
        """End the file opened with `open_file`; `records` (e.g. CSV rows) is recorded in its entry."""
        stream = self._open_stream()
        self._flush_array(stream)
        self._zip.end()
        self._array = None
        entry = FileEntry(stream.path, stream.size, stream.digest.hexdigest(), records)
        self._files.append(entry)
        return entry

    def _flush_array(self, array: _Stream) -> None:
        pending, array.pending = array.pending, bytearray()
        array.digest.update(pending)
        array.size += len(pending)
        self._zip.write(pending)

    def write_json_item(self, item_json: bytes) -> None:
        """Append one record, already encoded as a JSON object (e.g. by orjson.dumps)."""
        if item_json[:1] != b"{" or item_json[-1:] != b"}":
            self._open_array()  # misuse first: no array open
            raise ValueError("a JSON array item must be one encoded JSON object")
        self.write_json_object(item_json)

    def write_json_object(self, item_json: bytes) -> None:
        """`write_json_item` for bytes known to be one JSON object (orjson.dumps of a dict),
        without checking them: the per-record path of ArchiveBuilder."""
        array = self._array
        if array is None or not array.json:
            raise RuntimeError("no JSON array is open: open_json_array() first")
        pending = array.pending
        if array.records:
            pending += b",\n"
        pending += item_json
        array.records += 1
        if len(pending) >= _BATCH:
            self._flush_array(array)

    def close_json_array(self) -> FileEntry:
        """End the open JSON array; return its size, SHA-256 and record count."""
        array = self._open_array()
        array.pending += b"\n]\n" if array.records else b"]\n"
        self._flush_array(array)
        self._zip.end()
        self._array = None
        entry = FileEntry(array.path, array.size, array.digest.hexdigest(), array.records)
        self._files.append(entry)
        return entry


class ArchiveWriter(_FileWriter):
    """Write an encrypted ZIP archive to `sink`, entry by entry.

        writer = ArchiveWriter([parse_recipient(text)], sink=chunks.append)
        writer.open_json_array("data/crm/contacts.json")
        for record in records:
            writer.write_json_item(orjson.dumps(record))
        writer.close_json_array()
        writer.add_file("manifest.json", manifest_for(writer.files))
        digest = writer.close()

    Calls must come in this order: no other entry while a JSON array is open, nothing after
    `close` (misuse raises RuntimeError). Paths are unique relative paths with '/' separators
    (ValueError otherwise). If the sink raises, the archive is incomplete and the writer must
    be dropped.
    """

    def __init__(
        self,
        recipients: Sequence[Recipient],
        sink: Callable[[bytes], object],
        *,
        compresslevel: int = 6,
        modified: datetime | None = None,
    ) -> None:
        super().__init__(compresslevel=compresslevel, modified=modified)
        self._encryptor = AgeEncryptor(recipients)
        self._sink = sink
        self._digest = hashlib.sha256()
        self._size = 0

    def _take_zip_bytes(self, data: bytearray) -> None:
        self._deliver(self._encryptor.update(data))

    def _deliver(self, ciphertext: bytes) -> None:
        if ciphertext:
            self._digest.update(ciphertext)
            self._size += len(ciphertext)
            self._sink(ciphertext)

    def splice(self, section: Section) -> "Splicing":
        """Begin appending a section written apart: `write` its bytes in order, then `end`."""
        self._check_idle()
        taken = {entry.path for entry in self._files}
        if any(entry.path in taken for entry in section.files):
            raise ValueError("archive path is already used")
        self._splicing = Splicing(self, section, self._zip.splice(section.zip))
        return self._splicing

    def _end_splice(self, splicing: "Splicing") -> None:
        self._splicing = None
        self._files.extend(splicing.section.files)

    def close(self) -> ArchiveDigest:
        """Write the ZIP central directory, seal the last age chunk; return the ciphertext's digest."""
        self._check_idle()
        self._zip.close()
        self._closed = True
        self._pass_on_zip_bytes()
        self._deliver(self._encryptor.finish())
        return ArchiveDigest(self._size, self._digest.hexdigest())


class SectionWriter(_FileWriter):
    """Files written apart, to be spliced into an ArchiveWriter later (see the module's doc).

    `sink` receives the section's plain ZIP bytes, in order, in pieces of about 64 KiB: it must
    keep them out of reach (sealed), since they are the archive's plaintext, deflated.
    """

    _kind = "section"

    def __init__(
        self,
        sink: Callable[[bytes | bytearray], object],
        *,
        compresslevel: int = 6,
        modified: datetime | None = None,
    ) -> None:
        super().__init__(compresslevel=compresslevel, modified=modified)
        self._sink = sink

    def _take_zip_bytes(self, data: bytearray) -> None:
        if data:
            self._sink(data)

    def finish(self) -> Section:
        """End the section: every byte has gone to the sink; return its entries and files."""
        self._check_idle()
        zip_section = self._zip.end_section()
        self._closed = True
        self._pass_on_zip_bytes()
        return Section(zip_section, tuple(self._files))


class Splicing:
    """A section being appended to an archive (`ArchiveWriter.splice`): its bytes, then `end`."""

    def __init__(self, writer: ArchiveWriter, section: Section, zip_splice: ZipSplice) -> None:
        self._writer = writer
        self.section = section
        self._zip_splice = zip_splice

    def write(self, piece: bytes) -> None:
        """The section's next bytes (as its sink received them; any cut will do)."""
        self._zip_splice.write(piece)

    def end(self) -> None:
        """Check every byte came; the section's files join the archive's."""
        self._zip_splice.end()
        self._writer._end_splice(self)
