"""How one dataset's records become rows of the archive: what portability keeps, codes in words.

A `DatasetShape` is built from the dataset's declaration (its fields' provenance and activity,
as the connector announced them in its heartbeats). `shape` turns one record into the row the
archive writes, in both its JSON and CSV files:

- for portability (art. 20), only fields that are provided or observed and whose activity is
  based on consent or a contract; a record left with nothing is dropped, so a dataset left
  with nothing has no file;
- each coded field (`care_category`) is followed by its label (`care_category_label`), from
  the decode table; a code the table does not know gets a null label.

It also keeps what the data dictionary needs, in memory bounded by the number of fields: the
JSON types each field took and how many records had it.

The work per record is mostly done once per *layout*, the field names of a record in their
order, which the records of a dataset nearly always share: a `_Layout` knows which values go
where in the row and in the CSV line, so a record costs a few C-level calls (`tuple`, a dict
look-up, `operator.itemgetter`) rather than a Python loop over its fields. The statistics
likewise count rows by (names, value types) and are summed per field only when read (or when
too many kinds of rows pile up). Rows, CSV lines and statistics are the same as a field by
field loop would make.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from ..model import DatasetInfo, FieldInfo
from .csvfile import cell

__all__ = ["LABEL_SUFFIX", "DatasetShape", "json_type"]

LABEL_SUFFIX = "_label"
DERIVED = "derived"

# Bounds on the per-dataset caches: layouts compiled, and (names, types) kinds of rows counted
# but not yet summed per field. Real datasets have a handful of each; a dataset with more just
# recompiles or sums more often.
_MAX_LAYOUTS = 256
_MAX_PENDING = 1024

_JSON_TYPES: dict[type, str] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def json_type(value: object) -> str:
    """The JSON Schema type name of a decoded JSON value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_name(kind: type) -> str:
    """`json_type` of any value of type `kind`."""
    found = _JSON_TYPES.get(kind)
    if found is not None:
        return found
    for base, name in _JSON_TYPES.items():  # subclasses, in json_type's order (bool before int)
        if issubclass(kind, base) and base is not type(None):
            return name
    return "object"


@dataclass(frozen=True)
class Column:
    """One column of the dataset's rows: a declared field, or the label of a coded one."""

    name: str
    field: FieldInfo | None  # None for a field the connector did not declare
    label_of: str | None = None  # the coded field this column puts in words


Values = Callable[[Sequence[Any]], tuple[Any, ...]]


def _picker(indices: Sequence[int]) -> Values:
    """A function taking the values at `indices` from a sequence, as a tuple (C speed)."""
    if len(indices) == 1:
        (index,) = indices
        return lambda values: (values[index],)
    if not indices:
        return lambda values: ()
    return itemgetter(*indices)  # a tuple for two indices or more


class _Layout:
    """What becomes of the records with one layout: these field names, in this order.

    Values are addressed by position in the record's values, then its labels (one per coded
    field kept, in order), then a last None for the cells of columns the record lacks.
    """

    __slots__ = ("coded", "csv", "csv_columns", "empty", "identity", "names", "pick")

    def __init__(self, shape: "DatasetShape", keys: tuple[str, ...]) -> None:
        # Where each name of the row takes its value from, built as shape() did field by
        # field: a name set twice keeps its first place and its last value.
        sources: dict[str, int] = {}
        coded: list[tuple[int, Callable[[Any], str | None]]] = []
        for index, name in enumerate(keys):
            if not shape._keeps(name):
                continue
            sources[name] = index
            table = shape._codes.get(name)
            if table is not None:
                sources[name + LABEL_SUFFIX] = len(keys) + len(coded)
                coded.append((index, dict(table).get))  # a dict's get: faster than a read-only view's
        self.names = tuple(sources)
        self.empty = not sources
        self.coded = tuple(coded)
        self.identity = bool(keys) and not coded and self.names == keys  # the row is the record itself
        self.pick = _picker(tuple(sources.values()))
        self.csv: Values | None = None  # set by the CSV pass, once the columns are fixed
        self.csv_columns: tuple[str, ...] = ()

    def values(self, fields: Mapping[str, Any]) -> list[Any]:
        """The record's values, then its labels."""
        values = list(fields.values())
        for index, label in self.coded:
            value = values[index]
            values.append(label(value) if type(value) is str else None if value is None else label(str(value)))
        return values


class DatasetShape:
    """The rows of one dataset of one system, for one request kind."""

    def __init__(
        self,
        system: str,
        name: str,
        declared: DatasetInfo | None,
        *,
        portability: bool,
        portable_activity: Callable[[str], bool],
        codes: Mapping[str, Mapping[str, str]],
    ) -> None:
        self.system = system
        self.name = name
        self.declared = declared
        self.portability = portability
        self._codes = codes
        fields: Iterable[FieldInfo] = declared.fields if declared else ()
        self._kept: dict[str, FieldInfo] = {
            f.name: f for f in fields if not portability or (f.provenance != DERIVED and portable_activity(f.activity))
        }
        self._extra: dict[str, None] = {}  # fields seen but not declared, in order (access only)
        self.records = 0
        self._types: dict[str, set[str]] = {}
        self._present: dict[str, int] = {}
        self._pending: dict[tuple[tuple[str, ...], tuple[type, ...]], int] = {}  # rows not yet summed
        self._layouts: dict[tuple[str, ...], _Layout] = {}
        self._columns: tuple[Column, ...] | None = None  # `columns`, until a field not declared shows

    @property
    def activity(self) -> str:
        """The dataset's processing activity ('' when the connector has not declared it)."""
        return self.declared.activity if self.declared else ""

    @property
    def empty(self) -> bool:
        """Whether no record was kept (then the dataset gets no file)."""
        return self.records == 0

    def _keeps(self, name: str) -> bool:
        if name in self._kept or self.declared is None:
            return True  # declared and kept; or nothing declared: the connector's filter stands
        return not self.portability  # undeclared: its provenance is unknown, portability leaves it

    def _layout(self, fields: Mapping[str, Any]) -> _Layout:
        keys = tuple(fields)
        layout = self._layouts.get(keys)
        if layout is None:
            if len(self._layouts) >= _MAX_LAYOUTS:
                self._layouts.clear()
            layout = self._layouts[keys] = _Layout(self, keys)
        return layout

    def shape(self, fields: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The row for one record (None when portability leaves nothing of it).

        The row may be `fields` itself, when it keeps every field and adds no label: read it,
        do not change it."""
        layout = self._layout(fields)
        if layout.identity:
            return fields
        if layout.empty:
            return None
        return dict(zip(layout.names, layout.pick(layout.values(fields)), strict=True))

    def shape_and_count(self, fields: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """`shape`, and `count` the row when there is one: the JSON pass, in one call.

        (`_layout` and `_count` inlined: this runs once per record.)"""
        layout = self._layouts.get(tuple(fields)) or self._layout(fields)
        names = layout.names
        if layout.identity:
            row = fields
        elif layout.empty:
            return None
        else:
            row = dict(zip(names, layout.pick(layout.values(fields)), strict=True))
        self.records += 1
        key = (names, tuple(map(type, row.values())))
        pending = self._pending
        pending[key] = pending.get(key, 0) + 1
        if len(pending) >= _MAX_PENDING:
            self._sum()
        return row

    def count(self, row: Mapping[str, Any]) -> None:
        """Record a written row in the statistics (types, presence) of the data dictionary."""
        self._count(tuple(row), row)

    def _count(self, names: tuple[str, ...], row: Mapping[str, Any]) -> None:
        self.records += 1
        key = (names, tuple(map(type, row.values())))
        pending = self._pending
        pending[key] = pending.get(key, 0) + 1
        if len(pending) >= _MAX_PENDING:
            self._sum()

    def _sum(self) -> None:
        """Add the rows counted by kind to the per-field statistics (in the order rows came)."""
        pending, self._pending = self._pending, {}
        for (names, kinds), rows in pending.items():
            for name, kind in zip(names, kinds, strict=True):
                self._types.setdefault(name, set()).add(_type_name(kind))
                self._present[name] = self._present.get(name, 0) + rows
                if name not in self._kept and name not in self._extra and not self._is_label(name):
                    self._extra[name] = None
                    self._columns = None

    @property
    def types(self) -> dict[str, set[str]]:
        """The JSON types each field took, by field name, in the order fields were first seen."""
        self._sum()
        return self._types

    @property
    def present(self) -> dict[str, int]:
        """How many rows had each field."""
        self._sum()
        return self._present

    def _is_label(self, name: str) -> bool:
        return name.endswith(LABEL_SUFFIX) and name.removesuffix(LABEL_SUFFIX) in self._codes

    @property
    def columns(self) -> tuple[Column, ...]:
        """Every column, in the declared order, each coded field followed by its label; then
        the fields seen that the connector did not declare. Fixed once the JSON pass is over.

        Made again only when a field not declared shows (a build reads them several times a
        dataset: a quarter of a typical archive's assembly when they were made each time)."""
        self._sum()
        if self._columns is None:
            columns: list[Column] = []
            for name in [*self._kept, *self._extra]:
                info = self._kept.get(name)
                columns.append(Column(name, info))
                if name in self._codes:
                    columns.append(Column(name + LABEL_SUFFIX, info, label_of=name))
            self._columns = tuple(columns)
        return self._columns

    def csv_cells(self, fields: Mapping[str, Any], columns: tuple[str, ...]) -> list[str] | None:
        """The CSV cells of one record, one per column of `columns` (None when portability
        leaves nothing of it), each as the text `csvfile.cell` makes of its value (an empty
        cell for a column the record lacks)."""
        layout = self._layouts.get(tuple(fields)) or self._layout(fields)
        if layout.empty:
            return None
        return _cells(layout, layout.values(fields), columns)

    def shape_count_and_cells(
        self, fields: Mapping[str, Any], columns: tuple[str, ...]
    ) -> tuple[Mapping[str, Any], list[str]] | None:
        """`shape_and_count` and `csv_cells` in one call, the record's values taken once: the
        JSON pass when the CSV twin is written alongside."""
        layout = self._layouts.get(tuple(fields)) or self._layout(fields)
        if layout.empty:
            return None
        values = layout.values(fields)
        row = fields if layout.identity else dict(zip(layout.names, layout.pick(values), strict=True))
        self._count(layout.names, row)
        return row, _cells(layout, values, columns)


def _cells(layout: _Layout, values: list[Any], columns: tuple[str, ...]) -> list[str]:
    """The CSV cells of a record of `layout` whose values (`_Layout.values`) are `values`, for
    `columns`; `values` gets a last None, the cell of the columns the record lacks."""
    if layout.csv is None or layout.csv_columns is not columns:
        count = len(values)
        where = dict(zip(layout.names, layout.pick(range(count)), strict=True))
        layout.csv = _picker([where.get(column, count) for column in columns])  # count: the None appended
        layout.csv_columns = columns
    values.append(None)
    # `cell` inlined for the common types (str(float) is its repr; bool is not `int` here).
    return [
        value
        if type(value) is str
        else ""
        if value is None
        else str(value)
        if type(value) is int or type(value) is float
        else cell(value)
        for value in layout.csv(values)
    ]
