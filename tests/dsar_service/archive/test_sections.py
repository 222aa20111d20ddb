"""Parts of an archive written ahead, apart, and spliced in later.

- ZipStream.end_section / splice: a spliced section gives the same bytes as writing its entries
  in place (ZIP64 offsets included), keeps its own time, and misuse is refused.
- SealedSpool: bytes come back as written, in blocks of at most 1 MiB; the file holds no
  plaintext; an altered or cut file, or a write once reading has begun, is refused.
- ArchiveBuilder.take_part / add_part: an archive with systems written ahead (SectionWriter ->
  SealedSpool -> add_part) is byte for byte the archive written inline, with the same report.
"""

import dataclasses
import io
import os
import random
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from archive_support import AgeKey
from test_byte_identity import CLAIM, CONSENTS, T0, VISITS, _claims, _consents, _redaction
from test_contents import CANDIDATES

from dsar_service.archive import (
    ArchiveBuilder,
    ArchiveReport,
    ArchiveWriter,
    DatasetReport,
    IdentifierReport,
    Redaction,
    SealedSpool,
    SectionWriter,
    SpoolBudget,
    SpoolChain,
    SpoolError,
    SystemPart,
    SystemReport,
    ZipSection,
    ZipStream,
    verify_zip,
    zipstream,
)
from dsar_service.archive.spool import SPOOL_BLOCK_BYTES
from dsar_service.crypto import parse_recipient
from dsar_service.model import DatasetInfo

MIB = 1024 * 1024

# --- ZipStream: sections ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A file to write: whole (`add`) or streamed (`start`, `write`…, `end`)."""

    name: str
    data: bytes
    streamed: bool


def _entries(prefix: str) -> list[Entry]:
    """Whole and streamed files, compressible and not, empty ones included."""
    rng = random.Random(prefix)
    return [
        Entry(f"{prefix}/README.txt", "Vos données, article 15.\n".encode(), streamed=False),
        Entry(f"{prefix}/empty.txt", b"", streamed=False),
        Entry(f"{prefix}/random.bin", rng.randbytes(30_000), streamed=False),  # stored, not deflated
        Entry(f"{prefix}/contacts.json", b'{"email": "x@example.fr"},' * 3000, streamed=True),
        Entry(f"{prefix}/random-stream.bin", rng.randbytes(50_000), streamed=True),
        Entry(f"{prefix}/empty-stream.csv", b"", streamed=True),
    ]


def _write(stream: ZipStream, entries: Iterable[Entry]) -> None:
    for entry in entries:
        if not entry.streamed:
            stream.add(entry.name, entry.data)
            continue
        stream.start(entry.name)
        for i in range(0, len(entry.data), 7_000):
            stream.write(entry.data[i : i + 7_000])
        stream.end()


def _section(entries: Iterable[Entry], modified: datetime = T0) -> tuple[ZipSection, bytes]:
    """The entries written by a stream of their own, ended as a section; and its bytes."""
    out = io.BytesIO()
    stream = ZipStream(out.write, modified=modified)
    _write(stream, entries)
    section = stream.end_section()
    assert section.size == len(out.getvalue())
    return section, out.getvalue()


def _splice(stream: ZipStream, section: ZipSection, pieces: Iterable[bytes]) -> None:
    """Append a section: its bytes written in `pieces`, then the splice ended."""
    splice = stream.splice(section)
    for piece in pieces:
        splice.write(piece)
    splice.end()


def _uneven_pieces(data: bytes) -> Iterator[bytes]:
    """`data` cut in pieces of varying sizes (where a section's bytes are cut must not matter)."""
    sizes = [1, 4_095, 65_536, 13]
    start, i = 0, 0
    while start < len(data):
        yield data[start : start + sizes[i % len(sizes)]]
        start += sizes[i % len(sizes)]
        i += 1


def _zip_written_directly(*groups: list[Entry]) -> bytes:
    out = io.BytesIO()
    stream = ZipStream(out.write, modified=T0)
    for group in groups:
        _write(stream, group)
    stream.close()
    return out.getvalue()


def _check_zip(data: bytes, expected: Sequence[Entry]) -> zipfile.ZipFile:
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert archive.namelist() == [entry.name for entry in expected]
    for entry in expected:
        assert archive.read(entry.name) == entry.data
    return archive


@pytest.mark.parametrize(
    "layout",
    [
        ("section", "direct", "direct"),
        ("direct", "section", "direct"),
        ("direct", "direct", "section"),
        ("direct", "section", "section"),
        ("section",),
    ],
    ids="-".join,
)
def test_a_spliced_section_gives_the_bytes_of_writing_in_place(layout: tuple[str, ...]) -> None:
    groups = [_entries(f"group{i}") for i in range(len(layout))]
    out = io.BytesIO()
    stream = ZipStream(out.write, modified=T0)
    for how, group in zip(layout, groups, strict=True):
        if how == "direct":
            _write(stream, group)
        else:
            section, data = _section(group)
            _splice(stream, section, _uneven_pieces(data))
    stream.close()

    assert stream.offset == len(out.getvalue())
    assert out.getvalue() == _zip_written_directly(*groups)
    _check_zip(out.getvalue(), [entry for group in groups for entry in group])


def test_an_empty_section_changes_nothing() -> None:
    out = io.BytesIO()
    stream = ZipStream(out.write, modified=T0)
    _write(stream, _entries("a"))
    section, data = _section([])
    assert (section.size, data) == (0, b"")
    _splice(stream, section, [])
    stream.close()
    assert out.getvalue() == _zip_written_directly(_entries("a"))


def test_a_section_cut_short_is_refused_and_the_archive_cannot_close() -> None:
    section, data = _section(_entries("inside"))
    stream = ZipStream(io.BytesIO().write, modified=T0)
    splice = stream.splice(section)
    splice.write(data[:-1])
    with pytest.raises(ValueError, match=f"the section is {section.size} bytes, {section.size - 1} were given"):
        splice.end()
    with pytest.raises(RuntimeError):  # no central directory that would hide the missing byte
        stream.close()


def test_more_bytes_than_the_section_are_refused() -> None:
    section, data = _section(_entries("inside"))
    out = io.BytesIO()
    stream = ZipStream(out.write, modified=T0)
    splice = stream.splice(section)
    with pytest.raises(ValueError, match=f"the section is {section.size} bytes, more were given"):
        splice.write(data + b"x")
    assert out.getvalue() == b""  # the piece was refused whole, not written


def test_a_section_with_a_name_already_used_is_refused() -> None:
    inside = _entries("inside")
    section, data = _section(inside)
    stream = ZipStream(io.BytesIO().write, modified=T0)
    stream.add(inside[-1].name, b"")
    with pytest.raises(ValueError, match="already used"):
        stream.splice(section)

    twice = ZipStream(io.BytesIO().write, modified=T0)
    _splice(twice, section, [data])
    with pytest.raises(ValueError, match="already used"):
        twice.splice(section)


def test_splice_is_refused_with_an_entry_open_or_once_closed() -> None:
    section, _ = _section(_entries("inside"))
    stream = ZipStream(io.BytesIO().write, modified=T0)
    stream.start("open.json")
    with pytest.raises(RuntimeError, match="still open"):
        stream.splice(section)
    stream.end()
    stream.close()
    with pytest.raises(RuntimeError, match="closed"):
        stream.splice(section)

    ended = ZipStream(io.BytesIO().write, modified=T0)
    ended.end_section()
    with pytest.raises(RuntimeError, match="closed"):
        ended.splice(section)


def test_nothing_else_is_written_while_a_section_is_spliced() -> None:
    section, data = _section(_entries("inside"))
    other, _ = _section([Entry("other.txt", b"", streamed=False)])
    stream = ZipStream(io.BytesIO().write, modified=T0)
    splice = stream.splice(section)
    splice.write(data[:100])
    calls: list[Callable[[], object]] = [
        lambda: stream.add("a.txt", b""),
        lambda: stream.start("b.json"),
        lambda: stream.splice(other),
        stream.close,
        stream.end_section,
    ]
    for call in calls:
        with pytest.raises(RuntimeError):
            call()
    splice.write(data[100:])
    splice.end()
    with pytest.raises(RuntimeError, match="ended"):
        splice.write(b"")
    with pytest.raises(RuntimeError, match="ended"):
        splice.end()
    stream.close()


def _local_header_date_time(data: bytes, info: zipfile.ZipInfo) -> tuple[int, ...]:
    """The modification time in an entry's local header (zipfile reads it from the central directory)."""
    signature, time, date = struct.unpack_from("<I6xHH", data, info.header_offset)
    assert signature == 0x04034B50
    return (date >> 9) + 1980, date >> 5 & 0xF, date & 0x1F, time >> 11, time >> 5 & 0x3F, (time & 0x1F) * 2


def test_a_section_keeps_the_time_it_was_written() -> None:
    later = datetime(2026, 7, 8, 9, 10, 12, tzinfo=UTC)
    before, inside = _entries("before"), _entries("inside")
    out = io.BytesIO()
    stream = ZipStream(out.write, modified=T0)
    _write(stream, before)
    section, data = _section(inside, modified=later)
    _splice(stream, section, [data])
    stream.close()

    archive = _check_zip(out.getvalue(), before + inside)
    for info in archive.infolist():
        written = later if info.filename.startswith("inside/") else T0
        expected = (written.year, written.month, written.day, written.hour, written.minute, written.second)
        assert info.date_time == expected, info.filename  # central directory
        assert _local_header_date_time(out.getvalue(), info) == expected, info.filename


def _central_offsets_and_extras(data: bytes, start: int) -> dict[str, tuple[int, bytes]]:
    """Each central directory header's name -> its 4-byte offset field and its extra field."""
    found, position = {}, start
    while data[position : position + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = struct.unpack_from("<HHH", data, position + 28)
        (offset,) = struct.unpack_from("<I", data, position + 42)
        name = data[position + 46 : position + 46 + name_length]
        extra = data[position + 46 + name_length : position + 46 + name_length + extra_length]
        found[name.decode()] = (offset, extra)
        position += 46 + name_length + extra_length + comment_length
    return found


def test_a_section_spliced_beyond_the_zip64_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    # As in test_zipstream: a lower threshold takes the ZIP64 paths without writing 4 GiB. Every
    # file stays below it, and so do the section's own offsets: only where it lands needs ZIP64.
    threshold = 40_000
    monkeypatch.setattr(zipstream, "_ZIP64_FROM", threshold)
    rng = random.Random(64)
    before = [Entry(f"before/{i}.bin", rng.randbytes(9_000), streamed=i % 2 == 1) for i in range(5)]
    inside = [Entry(f"inside/{i}.bin", rng.randbytes(6_000), streamed=i % 2 == 0) for i in range(3)]
    out = io.BytesIO()
    stream = ZipStream(out.write, modified=T0)
    _write(stream, before)
    landing = stream.offset
    section, data = _section(inside)
    assert section.size < threshold <= landing
    _splice(stream, section, _uneven_pieces(data))
    central_start = stream.offset
    stream.close()

    assert out.getvalue() == _zip_written_directly(before, inside)
    archive = _check_zip(out.getvalue(), before + inside)
    central = _central_offsets_and_extras(out.getvalue(), central_start)
    assert len(central) == len(before) + len(inside)
    for entry in section.entries:
        name, offset = entry.name.decode(), landing + entry.offset
        assert archive.getinfo(name).header_offset == offset >= threshold
        # The offset field says "see ZIP64", and the ZIP64 extra field holds the offset alone.
        assert central[name] == (0xFFFFFFFF, struct.pack("<HHQ", 0x0001, 8, offset))


# --- SealedSpool -----------------------------------------------------------------------------------


def _spool_fd(spool: SealedSpool) -> int:
    # The one private attribute these tests touch: the spool's temporary file, to look at and
    # damage what is on disk. pread/pwrite/ftruncate leave the file's position alone.
    return spool._file.fileno()


def _spool_file_bytes(spool: SealedSpool) -> bytes:
    fd = _spool_fd(spool)
    return os.pread(fd, os.fstat(fd).st_size, 0)


def _uneven_writes(total: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    pieces, written = [], 0
    while written < total:
        piece = rng.randbytes(min(rng.choice([1, 17, 999, 65_536, 300_000, 1_500_000]), total - written))
        pieces.append(piece)
        written += len(piece)
    return pieces


@pytest.mark.parametrize("total", [1, MIB - 1, MIB, 2 * MIB, 5 * MIB + 12_345])
def test_spool_gives_back_what_was_written(total: int) -> None:
    pieces = _uneven_writes(total, seed=total)
    with SealedSpool() as spool:
        for piece in pieces:
            spool.write(piece)
        assert spool.size == total
        blocks = list(spool.blocks())
        assert b"".join(blocks) == b"".join(pieces)
        assert all(len(block) <= SPOOL_BLOCK_BYTES for block in blocks)
        assert len(blocks) == max(1, -(-total // SPOOL_BLOCK_BYTES))
        assert b"".join(spool.blocks()) == b"".join(pieces)  # read again


def test_spool_of_nothing_gives_nothing() -> None:
    with SealedSpool() as spool:
        assert b"".join(spool.blocks()) == b""


def test_spool_file_holds_no_plaintext() -> None:
    marker = b"jeanne.martin@example.fr;K35.8;"
    with SealedSpool() as spool:
        for _ in range(100_000):  # ~3 MB: several sealed blocks, and the last one
            spool.write(marker)
        list(spool.blocks())
        on_disk = _spool_file_bytes(spool)
    assert len(on_disk) >= 100_000 * len(marker)  # it is all there, sealed
    assert marker[:8] not in on_disk and b"example.fr" not in on_disk


def _filled_spool(megabytes: float) -> tuple[SealedSpool, bytes]:
    data = random.Random(7).randbytes(int(megabytes * MIB))
    spool = SealedSpool()
    spool.write(data)
    assert b"".join(spool.blocks()) == data  # sealed, and reads back before being damaged
    return spool, data


@pytest.mark.parametrize("where", [0, MIB + 100, -1])
def test_spool_with_a_byte_altered_is_refused(where: int) -> None:
    spool, _ = _filled_spool(2.5)
    fd = _spool_fd(spool)
    position = where % os.fstat(fd).st_size
    os.pwrite(fd, bytes([os.pread(fd, 1, position)[0] ^ 0x01]), position)
    with spool, pytest.raises(SpoolError, match="altered or cut short"):
        list(spool.blocks())


@pytest.mark.parametrize("cut", [1, 16, 2 * MIB + 100], ids=["a byte", "a tag", "whole blocks"])
def test_spool_cut_short_is_refused(cut: int) -> None:
    spool, _ = _filled_spool(2.5)
    fd = _spool_fd(spool)
    os.ftruncate(fd, os.fstat(fd).st_size - cut)
    with spool, pytest.raises(SpoolError, match="altered or cut short"):
        list(spool.blocks())


def test_spool_with_blocks_swapped_is_refused() -> None:
    spool, _ = _filled_spool(2.5)
    fd, sealed = _spool_fd(spool), MIB + 16
    first, second = os.pread(fd, sealed, 0), os.pread(fd, sealed, sealed)
    os.pwrite(fd, second + first, 0)
    with spool, pytest.raises(SpoolError):
        list(spool.blocks())


def test_spool_refuses_writes_once_read() -> None:
    with SealedSpool() as spool:
        spool.write(b"data")
        blocks = spool.blocks()  # not iterated yet: the spool is sealed by the call itself
        with pytest.raises(RuntimeError, match="being read"):
            spool.write(b"more")
        assert b"".join(blocks) == b"data"
        assert b"".join(spool.blocks()) == b"data"


# --- ArchiveBuilder: systems written ahead -----------------------------------------------------------

Records = list[tuple[str, bytes]]  # (dataset, fields as JSON), in the order a system sends them


def _bulk_visits(count: int) -> list[bytes]:
    """Visits with random tokens: a section of a few MB, more than one spool block and 64 KiB batch."""
    rng = random.Random(count)
    return [
        orjson.dumps(
            {
                "visitor_id": f"v-{i % 5}",
                "site": ("public", "personal_space")[i % 2],
                "started_at": f"2024-05-06T10:{i % 60:02d}:00Z",
                "pages": [{"path": f"/p/{rng.randbytes(60).hex()}", "load_ms": i * 0.5}],
            }
        )
        for i in range(count)
    ]


def _candidate_redaction() -> bytes:
    return orjson.dumps({"dataset": "candidates", "record_key": "c-2", "fields_removed": ["email"], "reason": "x"})


# claims: a redaction of exported data; analytics: bulk; recruitment: not portable, and a redaction of it.
SYSTEMS: dict[str, tuple[tuple[DatasetInfo, ...], Records]] = {
    "claims": ((CLAIM,), [("claim", r) for r in _claims()] + [("_redactions", _redaction())]),
    "analytics": (
        (VISITS, CONSENTS),
        [("visits", r) for r in _bulk_visits(12_000)] + [("cookie_consents", r) for r in _consents()],
    ),
    "recruitment": (
        (CANDIDATES,),
        [("_redactions", _candidate_redaction())]
        + [("candidates", orjson.dumps({"email": f"c{i}@example.fr"})) for i in range(3)],
    ),
}


def _write_system(builder: ArchiveBuilder, system: str, records: Records | None = None) -> tuple[DatasetReport, ...]:
    declared, sent = SYSTEMS[system]
    records = sent if records is None else records
    builder.begin_system(system, declared)
    for dataset, fields in records:
        builder.json_record(dataset, fields)
    if builder.end_json_pass():
        for dataset, fields in records:
            builder.csv_record(dataset, fields)
    return builder.end_system()


def _write_ahead(system: str, portability: bool, spool: SealedSpool, records: Records | None = None) -> SystemPart:
    """One system written apart, its bytes sealed in `spool`."""
    ahead = ArchiveBuilder(SectionWriter(spool.write, modified=T0), portability=portability)
    return ahead.take_part(_write_system(ahead, system, records))


def _write_ahead_alongside(
    system: str, portability: bool, spool: SealedSpool, csv_spool: SealedSpool, records: Records | None = None
) -> tuple[SystemPart, SealedSpool | SpoolChain, bool]:
    """One system written apart in one pass, its CSV twins (when its columns allow) in a second
    section sealed in `csv_spool`; the part, its bytes, and whether the CSV went alongside."""
    ahead = ArchiveBuilder(
        SectionWriter(spool.write, modified=T0),
        csv_writer=SectionWriter(csv_spool.write, modified=T0),
        portability=portability,
    )
    part = ahead.take_part(_write_system(ahead, system, records))
    return part, SpoolChain(spool, csv_spool) if ahead.csv_alongside else spool, ahead.csv_alongside


def _add_part(builder: ArchiveBuilder, part: SystemPart, spool: SealedSpool | SpoolChain) -> tuple[DatasetReport, ...]:
    """A system written ahead, in place of begin_system … end_system: its bytes from the spool."""
    splicing = builder.add_part(part)
    for block in spool.blocks():
        splicing.write(block)
    splicing.end()
    return part.datasets


@dataclass(frozen=True)
class Built:
    """A decrypted archive, and what its builder gave for the report."""

    plaintext: bytes
    datasets: dict[str, tuple[DatasetReport, ...]]
    received: dict[str, int]
    redactions: tuple[Redaction, ...]
    not_portable: tuple[str, ...]
    alongside: frozenset[str] = frozenset()  # the systems written ahead with their CSV twins in one pass


def _report(kind: str, systems: list[SystemReport], builder: ArchiveBuilder) -> ArchiveReport:
    return ArchiveReport(
        request_id="r-sections", kind=kind, received_at=T0, generated_at=T0 + timedelta(days=2),
        due_at=T0 + timedelta(days=31), extension_reason="",
        identifiers=(IdentifierReport("email", "j****r", "request"),),
        systems=tuple(systems), redactions=builder.redactions, not_portable=builder.not_portable,
    )  # fmt: skip


def _build(
    age_key: AgeKey,
    decrypt: Callable[[bytes], bytes],
    portability: bool,
    ahead: frozenset[str] = frozenset(),
    alongside: bool = False,
) -> Built:
    """The archive of SYSTEMS, those in `ahead` written first as parts, sealed, then added in
    place; with `alongside`, the parts' CSV twins written in their JSON pass."""
    with ExitStack() as closing:
        parts: dict[str, SystemPart] = {}
        spools: dict[str, SealedSpool | SpoolChain] = {}
        went: set[str] = set()
        for system in ahead:
            spool = closing.enter_context(SealedSpool())
            if alongside:
                csv_spool = closing.enter_context(SealedSpool())
                parts[system], spools[system], one_pass = _write_ahead_alongside(system, portability, spool, csv_spool)
                went |= {system} if one_pass else set()
            else:
                parts[system], spools[system] = _write_ahead(system, portability, spool), spool
        built = _build_with_parts(age_key, decrypt, portability, parts, spools)
        return dataclasses.replace(built, alongside=frozenset(went))


def _build_with_parts(
    age_key: AgeKey,
    decrypt: Callable[[bytes], bytes],
    portability: bool,
    parts: dict[str, SystemPart],
    spools: Mapping[str, SealedSpool | SpoolChain],
) -> Built:
    pieces: list[bytes] = []
    writer = ArchiveWriter([parse_recipient(age_key.recipient)], pieces.append, modified=T0)
    builder = ArchiveBuilder(writer, portability=portability)
    systems, datasets, received = [], {}, {}
    for system in SYSTEMS:
        if system in parts:
            datasets[system] = _add_part(builder, parts[system], spools[system])
        else:
            datasets[system] = _write_system(builder, system)
        received[system] = builder.received
        systems.append(SystemReport(system, "", "completed", 1, "", T0, datasets[system], builder.received))
    kind = "portability" if portability else "access"
    builder.finish(_report(kind, systems, builder))
    plaintext = decrypt(b"".join(pieces))
    return Built(plaintext, datasets, received, builder.redactions, builder.not_portable)


@pytest.mark.parametrize("alongside", [False, True], ids=["csv-second-pass", "csv-alongside"])
@pytest.mark.parametrize("portability", [False, True], ids=["access", "portability"])
@pytest.mark.parametrize(
    "ahead",
    [{"claims"}, {"analytics"}, {"claims", "recruitment"}, {"claims", "analytics", "recruitment"}],
    ids=lambda ahead: "+".join(sorted(ahead)),
)
def test_systems_written_ahead_give_the_same_archive(
    age_key: AgeKey, age_decrypt: Callable[[bytes], bytes], portability: bool, ahead: set[str], alongside: bool
) -> None:
    inline = _build(age_key, age_decrypt, portability)
    spliced = _build(age_key, age_decrypt, portability, frozenset(ahead), alongside)
    # claims and analytics send fields they did not declare, after their first records: access
    # keeps them (new CSV columns: a second pass); portability leaves them out (one pass)
    one_pass = set(ahead) if portability else set(ahead) & {"recruitment"}
    assert spliced.alongside == (one_pass if alongside else set())

    assert spliced.plaintext == inline.plaintext
    assert spliced.datasets == inline.datasets
    assert spliced.received == inline.received
    assert spliced.redactions == inline.redactions
    assert spliced.not_portable == inline.not_portable
    # What was compared is not empty: the parts carried redactions, datasets, and (portability) exclusions.
    redacted = {(r.system, r.dataset) for r in inline.redactions}
    assert redacted == ({("claims", "claim")} if portability else {("claims", "claim"), ("recruitment", "candidates")})
    assert inline.not_portable == (("recruitment",) if portability else ())
    assert inline.datasets["analytics"] and inline.received["analytics"] > 10_000
    report = verify_zip(inline.plaintext)
    assert report.ok, report.problems


def _recipient_writer(age_key: AgeKey) -> ArchiveWriter:
    return ArchiveWriter([parse_recipient(age_key.recipient)], lambda _: None, modified=T0)


def _visits_with_a_field_not_declared() -> Records:
    """analytics' records, one visit in the middle with a field its connector did not declare."""
    records = list(SYSTEMS["analytics"][1])
    fields = orjson.loads(records[500][1])
    records[500] = ("visits", orjson.dumps({**fields, "referrer": "https://example.org/"}))
    return records


@pytest.mark.parametrize("portability", [False, True], ids=["access", "portability"])
def test_a_field_not_declared_sends_the_csv_twins_to_a_second_pass(
    age_key: AgeKey, age_decrypt: Callable[[bytes], bytes], portability: bool
) -> None:
    """Access keeps the undeclared field: a CSV column the first record did not show, so the
    CSV section is given up and the twins are written by a second pass, as without one.
    Portability leaves the field out: the columns hold, and the twins go alongside."""
    records = _visits_with_a_field_not_declared()
    with ExitStack() as closing:
        spool, csv_spool, plain_spool = (closing.enter_context(SealedSpool()) for _ in range(3))
        part, spools, alongside = _write_ahead_alongside("analytics", portability, spool, csv_spool, records)
        plain = _write_ahead("analytics", portability, plain_spool, records)
        built = _build_with_parts(age_key, age_decrypt, portability, {"analytics": part}, {"analytics": spools})
        expected = _build_with_parts(
            age_key, age_decrypt, portability, {"analytics": plain}, {"analytics": plain_spool}
        )
    assert alongside is portability
    assert built.plaintext == expected.plaintext
    with zipfile.ZipFile(io.BytesIO(built.plaintext)) as archive:
        header = archive.read("data/analytics/visits.csv").split(b"\r\n", 1)[0].decode()
    assert ("referrer" in header.split(",")) is not portability


def test_the_csv_pass_is_refused_once_the_twins_went_alongside() -> None:
    with ExitStack() as closing:
        spool, csv_spool = (closing.enter_context(SealedSpool()) for _ in range(2))
        ahead = ArchiveBuilder(SectionWriter(spool.write), csv_writer=SectionWriter(csv_spool.write), portability=False)
        declared, records = SYSTEMS["recruitment"]
        ahead.begin_system("recruitment", declared)
        for dataset, fields in records:
            ahead.json_record(dataset, fields)
        assert ahead.end_json_pass() is False and ahead.csv_alongside
        with pytest.raises(RuntimeError, match="written in the JSON pass"):
            ahead.csv_record(*records[-1])


def test_sections_joined_with_then_refuse_a_path_twice() -> None:
    sections = []
    for _ in range(2):
        writer = SectionWriter(lambda _: None)
        writer.add_file("data/x.json", b"[]\n")
        sections.append(writer.finish())
    with pytest.raises(ValueError, match="already used"):
        sections[0].then(sections[1])


def test_a_spool_chain_reads_its_spools_in_turn_and_closes_them_all() -> None:
    budget = SpoolBudget(10 << 20)
    first, second = SealedSpool(budget=budget), SealedSpool(budget=budget)
    first.write(b"a" * (SPOOL_BLOCK_BYTES + 10))
    second.write(b"b" * 20)
    chain = SpoolChain(first, second)
    assert chain.size == SPOOL_BLOCK_BYTES + 30
    assert b"".join(chain.blocks()) == b"a" * (SPOOL_BLOCK_BYTES + 10) + b"b" * 20
    chain.close()
    assert budget.used == 0


def test_take_part_is_for_a_section_builder(age_key: AgeKey) -> None:
    builder = ArchiveBuilder(_recipient_writer(age_key), portability=False)
    with pytest.raises(RuntimeError, match="SectionWriter"):
        builder.take_part(_write_system(builder, "recruitment"))


def test_take_part_holds_one_ended_system() -> None:
    begun = ArchiveBuilder(SectionWriter(lambda _: None, modified=T0), portability=False)
    begun.begin_system("recruitment", SYSTEMS["recruitment"][0])
    with pytest.raises(RuntimeError, match="end_system"):
        begun.take_part(())

    two = ArchiveBuilder(SectionWriter(lambda _: None, modified=T0), portability=False)
    _write_system(two, "claims")
    with pytest.raises(RuntimeError, match="one system"):
        two.take_part(_write_system(two, "recruitment"))


def test_finish_is_for_the_archive_builder() -> None:
    builder = ArchiveBuilder(SectionWriter(lambda _: None, modified=T0), portability=False)
    datasets = _write_system(builder, "recruitment")
    system = SystemReport("recruitment", "", "completed", 1, "", T0, datasets, builder.received)
    with pytest.raises(RuntimeError, match="take_part"):
        builder.finish(_report("access", [system], builder))


def test_add_part_is_refused_while_a_system_is_begun(age_key: AgeKey) -> None:
    with SealedSpool() as spool:
        part = _write_ahead("recruitment", False, spool)
        builder = ArchiveBuilder(_recipient_writer(age_key), portability=False)
        builder.begin_system("claims", SYSTEMS["claims"][0])
        with pytest.raises(RuntimeError, match="end_system"):
            builder.add_part(part)

        section_builder = ArchiveBuilder(SectionWriter(lambda _: None, modified=T0), portability=False)
        with pytest.raises(RuntimeError, match="archive's builder"):
            section_builder.add_part(part)


def test_the_archive_cannot_finish_while_a_part_is_being_spliced(age_key: AgeKey) -> None:
    with SealedSpool() as spool:
        part = _write_ahead("recruitment", False, spool)
        builder = ArchiveBuilder(_recipient_writer(age_key), portability=False)
        splicing = builder.add_part(part)
        for block in spool.blocks():
            splicing.write(block)
        system = SystemReport("recruitment", "", "completed", 1, "", T0, part.datasets, builder.received)
        with pytest.raises(RuntimeError, match="being spliced"):
            builder.finish(_report("access", [system], builder))


def test_a_part_whose_files_are_already_in_the_archive_is_refused(age_key: AgeKey) -> None:
    with SealedSpool() as spool:
        part = _write_ahead("recruitment", False, spool)
        writer = _recipient_writer(age_key)
        writer.add_file(part.section.files[0].path, b"[]\n")
        with pytest.raises(ValueError, match="already used"):
            writer.splice(part.section)


def test_spools_sharing_a_budget_stop_at_it_and_give_it_back_when_closed() -> None:
    budget = SpoolBudget(3 * SPOOL_BLOCK_BYTES)
    first = SealedSpool(budget=budget)
    first.write(bytes(2 * SPOOL_BLOCK_BYTES + 1))  # two blocks sealed and on disk, one byte pending
    assert budget.used == 2 * (SPOOL_BLOCK_BYTES + 16)
    second = SealedSpool(budget=budget)
    with pytest.raises(SpoolError, match="temporary space"):
        second.write(bytes(2 * SPOOL_BLOCK_BYTES + 1))  # its second block does not fit
    first.close()
    second.close()
    assert budget.used == 0
