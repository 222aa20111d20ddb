"""The contents of an answer, written into an ArchiveWriter in the order a stream allows.

    builder = ArchiveBuilder(writer, portability=False)
    for each system that answered:
        builder.begin_system("policy", declared_datasets)
        for record in the system's records:  builder.json_record(dataset, fields_json)   # pass 1
        builder.end_json_pass()
        for record in the same records again: builder.csv_record(dataset, fields_json)   # pass 2
        datasets = builder.end_system()            # also writes schemas/<system>/<dataset>.schema.json
    builder.finish(report)                         # index.html, processing.json, manifest.json

ZIP entries are written one after the other, so a dataset's JSON and CSV files cannot grow side
by side. The CSV is written in a second pass over the same records (the caller reads them twice,
from where they are stored sealed) rather than spooled to a temporary file, which would put
the subject's data in plaintext on disk; memory stays one record and a few buffers.
`end_json_pass` says whether that second pass is needed: a builder given a `csv_writer` (a
second SectionWriter, whose bytes go to a sealed spool of their own) writes the CSV twins in
the JSON pass, when each dataset's columns are known from its first record (every field
declared, or all there from the first record on); the CSV files and the schemas are then its
section, which follows the first (`Section.then`). Otherwise that section is given up.

Records come with their dataset name; a system's datasets must each come in one run. The
reserved dataset `_redactions` carries notes of other people's data removed (art. 15(4)).

A system can also be written ahead, while others are still being searched: a builder over a
SectionWriter writes that system alone, `take_part` returns what it wrote and learnt, and the
archive's builder takes it in its place with `add_part`, giving the same archive as writing the
system there.

    ahead = ArchiveBuilder(SectionWriter(spool.write), csv_writer=SectionWriter(csv_spool.write), portability=False)
    ahead.begin_system("claims", declared); …json_record…
    if ahead.end_json_pass(): …csv_record…   # not needed: the CSV twins went to csv_spool
    part = ahead.take_part(ahead.end_system())  # its bytes: spool's, then csv_spool's if csv_alongside
    later, instead of begin_system … end_system:
        splicing = builder.add_part(part)
        for block in spool.blocks(): splicing.write(block)
        splicing.end()
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from ..model import DatasetInfo
from ..register import Labels, Register, load_labels, load_register
from .csvfile import CsvEncoder
from .manifest import build_manifest
from .page import render_index
from .report import ArchiveReport, DatasetReport, Redaction
from .schema import dataset_schema, manifest_schema
from .shape import DERIVED, DatasetShape
from .writer import ArchiveDigest, ArchiveWriter, Section, SectionWriter, Splicing

__all__ = ["REDACTIONS_DATASET", "ArchiveBuilder", "ContentError", "SystemPart"]

log = logging.getLogger(__name__)

REDACTIONS_DATASET = "_redactions"
_JSON = orjson.OPT_INDENT_2


class ContentError(ValueError):
    """The records cannot make a well-formed archive (the message holds no personal data)."""


def safe_name(name: str) -> str:
    """A dataset or system name as a path segment."""
    cleaned = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
    if not cleaned:
        raise ContentError("a dataset has no usable name")
    return cleaned


@dataclass(frozen=True)
class SystemPart:
    """One system written ahead (`ArchiveBuilder.take_part`): its files, and what the archive's
    builder needs to know of them (`add_part`). The files' bytes travel apart, e.g. sealed."""

    system: str
    section: Section
    datasets: tuple[DatasetReport, ...]
    received: int
    redactions: tuple[Redaction, ...]
    not_portable: tuple[str, ...]
    schemas: Mapping[str, str]
    exported: frozenset[tuple[str, str]]


class ArchiveBuilder:
    """Writes data files, their CSV twins and schemas, then the page, the register extract and the manifest."""

    def __init__(
        self,
        writer: ArchiveWriter | SectionWriter,
        *,
        portability: bool,
        register: Register | None = None,
        labels: Labels | None = None,
        csv_writer: SectionWriter | None = None,
    ) -> None:
        self._writer = writer
        self._csv_writer = csv_writer  # where the CSV twins go when written in the JSON pass
        self._alongside = False  # the current system's CSV twins are being written in the JSON pass
        self.portability = portability
        self.register = register or _default_register()
        self.labels = labels or _default_labels()
        self._redactions: list[Redaction] = []
        self._exported: set[tuple[str, str]] = set()
        self._not_portable: dict[str, None] = {}
        self._schemas: dict[str, str] = {}
        self._system: str | None = None
        self._begun: list[str] = []  # the systems begun, in order
        self._declared: dict[str, DatasetInfo] = {}
        self._shapes: dict[str, DatasetShape] = {}
        self._order: list[str] = []
        self._current: str | None = None
        self._current_shape: DatasetShape | None = None  # the shape of `_current`, once looked up
        self._csv: CsvEncoder | None = None
        self._columns: tuple[str, ...] = ()  # the CSV's columns: one tuple per file, its layouts' key
        self._csv_rows = 0
        self.received = 0  # records the current (or last) system sent, before any filter

    # --- what portability covers -------------------------------------------------------------------

    def _portable_activity(self, activity: str) -> bool:
        found = self.register.activities.get(activity)
        if found is None:
            log.warning("processing activity %r is not in the register", activity)
            return True  # not described: the connector's own filter (provenance) stands
        return found.portable

    # --- pass 1: JSON --------------------------------------------------------------------------------

    def begin_system(self, system: str, declared: Sequence[DatasetInfo]) -> None:
        """Start a system's records; `declared` are its datasets as its connector announced them."""
        if self._system is not None:
            raise RuntimeError("end_system() the previous system first")
        self._system = safe_name(system)
        self._begun.append(self._system)
        self._alongside = self._csv_writer is not None
        self.received = 0
        self._declared = {d.name: d for d in declared}
        self._shapes, self._order, self._current, self._current_shape = {}, [], None, None
        if self.portability:
            for dataset in declared:
                for field in dataset.fields:
                    if field.provenance != DERIVED and not self._portable_activity(field.activity):
                        self._not_portable.setdefault(field.activity, None)

    def _shape(self, dataset: str) -> DatasetShape:
        assert self._system is not None
        shape = self._shapes.get(dataset)
        if shape is None:
            shape = DatasetShape(
                self._system,
                safe_name(dataset),
                self._declared.get(dataset),
                portability=self.portability,
                portable_activity=self._portable_activity,
                codes=self.labels.coded_fields(self._system, dataset),
            )
            self._shapes[dataset] = shape
        return shape

    def _switch(self, dataset: str) -> None:
        """Move to `dataset`, another than the current one; a dataset seen before is an error."""
        if dataset in self._order:
            raise ContentError(f"{self._system} sent dataset {dataset} in two separate runs")
        self._order.append(dataset)
        self._current = dataset

    def json_record(self, dataset: str, fields_json: bytes) -> None:
        """One record of the current system, in the order it was sent."""
        if self._system is None:
            raise RuntimeError("begin_system() first")
        try:
            fields = orjson.loads(fields_json)  # (inline: this runs once per record)
        except orjson.JSONDecodeError:
            raise ContentError("a record is not valid JSON") from None
        if type(fields) is not dict:
            raise ContentError("a record is not a JSON object")
        if dataset == REDACTIONS_DATASET:
            self._redaction(fields)
            return
        shape = self._current_shape
        if dataset != self._current or shape is None:
            self._end_csv_alongside()
            self._switch(dataset)
            self._close_json()
            shape = self._current_shape = self._shape(dataset)
        self.received += 1
        if self._alongside and shape.records:  # the CSV twin is open: its columns are known
            shaped = shape.shape_count_and_cells(fields, self._columns)
            if shaped is not None:
                self._writer.write_json_object(orjson.dumps(shaped[0]))
                self._add_csv_cells(shaped[1])
            return
        first = shape.records == 0
        row = shape.shape_and_count(fields)
        if row is None:
            return
        if first:
            self._writer.open_json_array(self._path("data", shape, ".json"))
            if self._alongside:
                self._open_csv(shape)
        self._writer.write_json_object(orjson.dumps(row))
        if self._alongside:
            self._add_csv_row(shape, fields)

    def _redaction(self, fields: Mapping[str, Any]) -> None:
        assert self._system is not None
        removed = fields.get("fields_removed") or ()
        self._redactions.append(
            Redaction(
                system=self._system,
                dataset=str(fields.get("dataset", "")),
                record_key=str(fields.get("record_key", "")),
                fields_removed=tuple(str(f) for f in removed),
                reason=str(fields.get("reason", "")),
            )
        )

    def _close_json(self) -> None:
        previous = self._order[-2] if len(self._order) > 1 else None
        if previous is not None and not self._shapes[previous].empty:
            self._writer.close_json_array()

    def end_json_pass(self) -> bool:
        """End the first pass. True: the CSV pass must follow, over the same records in the same
        order; False: the CSV twins were written alongside (`csv_alongside`), end_system() now."""
        self._end_csv_alongside()
        if self._current is not None and not self._shapes[self._current].empty:
            self._writer.close_json_array()
        self._current, self._current_shape = None, None
        return not self._alongside

    @property
    def csv_alongside(self) -> bool:
        """Whether the current (or last) system's CSV twins and schemas went to the `csv_writer`,
        in the JSON pass: its section then follows the first one's."""
        return self._alongside

    # --- the CSV files, in either pass -------------------------------------------------------------

    @property
    def _csv_out(self) -> ArchiveWriter | SectionWriter:
        """Where the CSV twins (and the schemas after them) go: the CSV section when they are
        written alongside, else the builder's writer."""
        if self._alongside and self._csv_writer is not None:
            return self._csv_writer
        return self._writer

    def _open_csv(self, shape: DatasetShape) -> None:
        """Open the dataset's CSV twin, with the columns known so far (in the CSV pass, all of
        them; alongside, the declared fields and those of the first record)."""
        self._columns = tuple(c.name for c in shape.columns)
        self._csv = CsvEncoder(self._columns)
        self._csv_out.open_file(self._path("data", shape, ".csv"))
        self._csv_out.write(self._csv.header())
        self._csv_rows = 0

    def _add_csv_row(self, shape: DatasetShape, fields: Mapping[str, Any]) -> None:
        cells = shape.csv_cells(fields, self._columns)
        if cells is not None:
            self._add_csv_cells(cells)

    def _add_csv_cells(self, cells: list[str]) -> None:
        assert self._csv is not None
        self._csv.add_texts(cells)
        self._csv_rows += 1
        if self._csv.ready:
            self._csv_out.write(self._csv.take())

    def _close_csv(self) -> None:
        if self._csv is None or self._current is None:
            return
        expected = self._shapes[self._current].records
        self._csv_out.write(self._csv.take())
        self._csv_out.close_file(records=self._csv_rows)
        self._csv = None
        if self._csv_rows != expected:
            raise ContentError(f"{self._system}.{self._current} changed between the JSON and CSV passes")

    def _end_csv_alongside(self) -> None:
        """Close the current dataset's CSV twin in the CSV section. If the dataset turned out to
        have columns its first record did not show (undeclared fields), the CSV section is given
        up: the CSV pass writes the twins, as without a `csv_writer`."""
        if self._csv is None or self._current is None or not self._alongside:
            return
        self._close_csv()
        if tuple(c.name for c in self._shapes[self._current].columns) != self._columns:
            self._alongside = False

    # --- pass 2: CSV ---------------------------------------------------------------------------------

    def csv_record(self, dataset: str, fields_json: bytes) -> None:
        """The same record again, for the CSV file."""
        if self._alongside:
            raise RuntimeError("the CSV twins were written in the JSON pass: end_system() now")
        shape = self._current_shape
        if dataset != self._current or shape is None:
            if dataset == REDACTIONS_DATASET:
                return
            shape = self._shapes.get(dataset)
            if shape is None:
                raise ContentError(f"{self._system} sent dataset {dataset} in the second pass only")
            self._close_csv()
            self._current, self._current_shape = dataset, shape
            if not shape.empty:
                self._open_csv(shape)
        if self._csv is None:
            return
        try:
            fields = orjson.loads(fields_json)  # (inline: this runs once per record)
        except orjson.JSONDecodeError:
            raise ContentError("a record is not valid JSON") from None
        if type(fields) is not dict:
            raise ContentError("a record is not a JSON object")
        self._add_csv_row(shape, fields)

    def end_system(self) -> tuple[DatasetReport, ...]:
        """End the system: write its schemas; return what was exported, dataset by dataset."""
        self._close_csv()
        system = self._system
        if system is None:
            raise RuntimeError("begin_system() first")
        reports = []
        for name in self._order:
            shape = self._shapes[name]
            if shape.empty:
                continue
            label = self.labels.dataset(system, name, shape.declared.description if shape.declared else "")
            description = shape.declared.description if shape.declared and shape.declared.description else ""
            json_path, csv_path = self._path("data", shape, ".json"), self._path("data", shape, ".csv")
            schema_path = self._path("schemas", shape, ".schema.json")
            schema = dataset_schema(shape, label.title, " ".join(x for x in (description, label.note) if x))
            self._csv_out.add_file(schema_path, orjson.dumps(schema, option=_JSON))
            self._schemas[json_path] = schema_path
            self._exported.add((system, name))
            activities = dict.fromkeys(c.field.activity for c in shape.columns if c.field is not None)
            reports.append(
                DatasetReport(
                    system=system,
                    name=name,
                    title=label.title,
                    note=label.note,
                    activity=shape.activity,
                    activities=tuple(activities) or ((shape.activity,) if shape.activity else ()),
                    records=shape.records,
                    json_path=json_path,
                    csv_path=csv_path,
                    schema_path=schema_path,
                )
            )
        self._system, self._current, self._current_shape = None, None, None
        return tuple(reports)

    def _path(self, top: str, shape: DatasetShape, suffix: str) -> str:
        return f"{top}/{shape.system}/{shape.name}{suffix}"

    # --- the end -----------------------------------------------------------------------------------

    @property
    def redactions(self) -> tuple[Redaction, ...]:
        """Removals of other people's data; for portability, those of the data exported only."""
        if not self.portability:
            return tuple(self._redactions)
        return tuple(r for r in self._redactions if (r.system, r.dataset) in self._exported)

    @property
    def not_portable(self) -> tuple[str, ...]:
        """For portability: activities of the searched systems' non-derived data that art. 20 does not cover."""
        return tuple(self._not_portable)

    # --- a system written ahead ----------------------------------------------------------------------

    def take_part(self, datasets: tuple[DatasetReport, ...]) -> SystemPart:
        """For a builder over a SectionWriter that wrote one system (`datasets`, from end_system):
        end its section, and return the part for the archive's builder."""
        writer = self._writer
        if not isinstance(writer, SectionWriter):
            raise RuntimeError("take_part() is for a builder over a SectionWriter")
        if self._system is not None:
            raise RuntimeError("end_system() first")
        if len(self._begun) != 1:
            raise RuntimeError("a part holds one system")
        section = writer.finish()
        if self._alongside and self._csv_writer is not None:
            section = section.then(self._csv_writer.finish())
        return SystemPart(
            system=self._begun[0],
            section=section,
            datasets=datasets,
            received=self.received,
            redactions=tuple(self._redactions),
            not_portable=tuple(self._not_portable),
            schemas=dict(self._schemas),
            exported=frozenset(self._exported),
        )

    def add_part(self, part: SystemPart) -> Splicing:
        """Add a system written ahead, in place of begin_system … end_system (its datasets are
        `part.datasets`): write the section's bytes into the returned Splicing, then `end` it."""
        if self._system is not None:
            raise RuntimeError("end_system() the previous system first")
        writer = self._writer
        if not isinstance(writer, ArchiveWriter):
            raise RuntimeError("add_part() is for the archive's builder")
        splicing = writer.splice(part.section)
        self._redactions.extend(part.redactions)
        self._not_portable.update(dict.fromkeys(part.not_portable))
        self._schemas.update(part.schemas)
        self._exported |= part.exported
        self.received = part.received
        return splicing

    def finish(self, report: ArchiveReport) -> ArchiveDigest:
        """Write index.html, processing.json, the manifest's schema and the manifest; close the archive."""
        if self._system is not None:
            raise RuntimeError("end_system() first")
        writer = self._writer
        if not isinstance(writer, ArchiveWriter):
            raise RuntimeError("finish() is for the archive's builder; a section ends with take_part()")
        writer.add_file("index.html", render_index(report, self.register, self.labels).encode())
        writer.add_file("processing.json", orjson.dumps(self._processing(report), option=_JSON), reuse=True)
        writer.add_file("schemas/manifest.schema.json", _manifest_schema_json(), reuse=True)
        manifest = build_manifest(
            report,
            writer.files,
            schemas=self._schemas,
            register_version=self.register.version,
            labels_version=self.labels.version,
        )
        writer.add_file("manifest.json", orjson.dumps(manifest, option=_JSON))
        return writer.close()

    def _processing(self, report: ArchiveReport) -> dict[str, Any]:
        """The register, limited to the activities of the exported data (and the handling of this request)."""
        full = dict(_register_json(self.register))  # a copy of the top level: the cached one stays whole
        wanted = [a for a in [*report.activities, "rights_management"] if a in full["activities"]]
        full["activities"] = {a: full["activities"][a] for a in dict.fromkeys(wanted)}
        return full


# --- what does not depend on the request: made once per process (or per register) -----------------


@cache
def _default_register() -> Register:
    """The register shipped with the package, read once (it changes with a release only)."""
    return load_register()


@cache
def _default_labels() -> Labels:
    """The decode table shipped with the package, read once."""
    return load_labels()


@cache
def _manifest_schema_json() -> bytes:
    """schemas/manifest.schema.json as written into every archive."""
    return orjson.dumps(manifest_schema(), option=_JSON)


_REGISTER_JSON: dict[int, tuple[Register, dict[str, Any]]] = {}  # id -> (register, register.to_json())
_REGISTER_JSON_MAX = 8


def _register_json(register: Register) -> dict[str, Any]:
    """`register.to_json()`, made once per register (it is immutable); do not change the result.

    Keyed by identity (a register holds mappings, so it does not hash): the entry holds the
    register itself, so its id cannot be reused by another object while the entry is there."""
    found = _REGISTER_JSON.get(id(register))
    if found is None or found[0] is not register:
        if len(_REGISTER_JSON) >= _REGISTER_JSON_MAX:
            _REGISTER_JSON.clear()
        found = _REGISTER_JSON[id(register)] = (register, register.to_json())
    return found[1]
