"""The crypto and packing floors: how fast each stage of a result's way can go, on archive bytes.

On the plaintext files of a real archive (or, when none was built in this run, the demo subject's
rows as JSON), each stage alone, in this process, single-threaded:

    seal        HPKE seal of 1 MiB chunks (what a connector does to each ResultChunk)
    open        HPKE open of the same chunks (what the service does to each, once or twice: JSON, CSV)
    zip         ZipStream, zlib's deflate level 6, the files written in 64 KiB pieces, no encryption
    zip-1       the same at level 1, the assembler's (ISA-L's deflate; its output size is shown)
    age         AgeEncryptor over the ZIP's bytes
    writer      ArchiveWriter: zip-1 and age together, as the assembler drives it

SHA-256 of the same plaintext is the reference: its speed is the machine's, so the ratios travel
between machines better than the MB/s do.
"""

import hashlib
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

from connectors.testing.population import Population
from dsar_common.sealing import KeyPair, chunk_binding, open_sealed, seal
from dsar_service.archive import ArchiveWriter, ZipStream
from dsar_service.crypto import AgeEncryptor, parse_recipient
from dsar_service.requests.assembly import COMPRESS_LEVEL

SEAL_CHUNK = 1 << 20
WRITE_PIECE = 64 << 10


@dataclass(frozen=True)
class Payload:
    """Plaintext files (name, bytes) and where they came from."""

    files: list[tuple[str, bytes]]
    origin: str

    @property
    def size(self) -> int:
        return sum(len(data) for _, data in self.files)


@dataclass(frozen=True)
class StageSpeed:
    """One stage: bytes it consumed and the best of its runs, in seconds."""

    stage: str
    size: int
    seconds: float

    @property
    def bytes_per_second(self) -> float:
        return self.size / self.seconds if self.seconds > 0 else float("inf")


def archive_payload(zip_path: Path, limit: int) -> Payload:
    """The data files (JSON and CSV) of a decrypted archive, up to `limit` bytes in all."""
    files: list[tuple[str, bytes]] = []
    total = 0
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            if not info.filename.startswith("data/") or total >= limit:
                continue
            data = archive.read(info)[: limit - total]
            files.append((info.filename, data))
            total += len(data)
    return Payload(files, f"the data files of the archive built ({total / (1 << 20):.1f} MiB)")


def population_payload(population: Population, limit: int) -> Payload:
    """The demo subject's rows as JSON arrays, one file per table, up to `limit` bytes in all."""
    files: list[tuple[str, bytes]] = []
    total = 0
    for system in ("claims", "analytics", "crm", "policy", "recruitment"):
        tables: dict[str, list[bytes]] = {}
        for table, row in population.subject_rows(system):
            tables.setdefault(table, []).append(orjson.dumps(row, default=str))
        for table, rows in tables.items():
            data = (b"[\n" + b",\n".join(rows) + b"\n]\n")[: max(0, limit - total)]
            if data:
                files.append((f"data/{system}/{table}.json", data))
                total += len(data)
    return Payload(files, f"the subject's rows as JSON ({total / (1 << 20):.1f} MiB)")


def measure(payload: Payload, recipient_text: str, repeat: int = 2) -> list[StageSpeed]:
    """Each stage on the payload, best of `repeat` runs; SHA-256 first (the reference).

    `recipient_text` is the age recipient the archive stages encrypt to."""
    plaintext = b"".join(data for _, data in payload.files)
    chunks = [plaintext[i : i + SEAL_CHUNK] for i in range(0, len(plaintext), SEAL_CHUNK)]
    keys = KeyPair.generate()
    recipient = parse_recipient(recipient_text)
    sealed = [seal(chunk, keys.public, chunk_binding("r", "s", 1, n)) for n, chunk in enumerate(chunks)]
    zipped = _zip(payload)

    def sha256() -> None:
        hashlib.sha256(plaintext).digest()

    def sealing() -> None:
        for n, chunk in enumerate(chunks):
            seal(chunk, keys.public, chunk_binding("r", "s", 1, n))

    def opening() -> None:
        for n, piece in enumerate(sealed):
            open_sealed(piece, keys.private, chunk_binding("r", "s", 1, n))

    def age() -> None:
        encryptor = AgeEncryptor([recipient])
        for piece in _pieces(zipped):
            encryptor.update(piece)
        encryptor.finish()

    def writer() -> None:
        archive = ArchiveWriter([recipient], lambda data: None, compresslevel=COMPRESS_LEVEL)
        for name, data in payload.files:
            archive.open_file(name)
            for piece in _pieces(data):
                archive.write(piece)
            archive.close_file()
        archive.close()

    stages: list[tuple[str, int, Callable[[], object]]] = [
        ("sha256", len(plaintext), sha256),
        ("seal", len(plaintext), sealing),
        ("open", len(plaintext), opening),
        ("zip", len(plaintext), lambda: _zip(payload)),
        ("zip-1", len(plaintext), lambda: _zip(payload, level=COMPRESS_LEVEL)),
        ("age", len(zipped), age),
        ("writer", len(plaintext), writer),
    ]
    return [StageSpeed(name, size, _best(run, repeat)) for name, size, run in stages]


def compressed_sizes(payload: Payload) -> dict[str, int]:
    """The ZIP's size at deflate level 6 and 1."""
    return {"zip": len(_zip(payload)), "zip-1": len(_zip(payload, level=COMPRESS_LEVEL))}


def _zip(payload: Payload, level: int = 6) -> bytes:
    out = bytearray()
    stream = ZipStream(out.extend, compresslevel=level)
    for name, data in payload.files:
        stream.start(name)
        for piece in _pieces(data):
            stream.write(piece)
        stream.end()
    stream.close()
    return bytes(out)


def _pieces(data: bytes) -> Iterator[bytes]:
    """`data` in WRITE_PIECE slices, as the assembler hands its writer encoded records in batches."""
    for start in range(0, len(data), WRITE_PIECE):
        yield data[start : start + WRITE_PIECE]


def _best(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best
