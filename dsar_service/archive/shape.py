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
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import DatasetInfo, FieldInfo

__all__ = ["LABEL_SUFFIX", "DatasetShape", "json_type"]

LABEL_SUFFIX = "_label"
DERIVED = "derived"


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


@dataclass(frozen=True)
class Column:
    """One column of the dataset's rows: a declared field, or the label of a coded one."""

    name: str
    field: FieldInfo | None  # None for a field the connector did not declare
    label_of: str | None = None  # the coded field this column puts in words


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
        self.types: dict[str, set[str]] = {}
        self.present: dict[str, int] = {}

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

    def shape(self, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        """The row for one record (None when portability leaves nothing of it)."""
        row: dict[str, Any] = {}
        for name, value in fields.items():
            if not self._keeps(name):
                continue
            row[name] = value
            table = self._codes.get(name)
            if table is not None:
                row[name + LABEL_SUFFIX] = None if value is None else table.get(str(value))
        if not row:
            return None
        return row

    def count(self, row: Mapping[str, Any]) -> None:
        """Record a written row in the statistics (types, presence) of the data dictionary."""
        self.records += 1
        for name, value in row.items():
            self.types.setdefault(name, set()).add(json_type(value))
            self.present[name] = self.present.get(name, 0) + 1
            if name not in self._kept and name not in self._extra and not self._is_label(name):
                self._extra[name] = None

    def _is_label(self, name: str) -> bool:
        return name.endswith(LABEL_SUFFIX) and name.removesuffix(LABEL_SUFFIX) in self._codes

    @property
    def columns(self) -> list[Column]:
        """Every column, in the declared order, each coded field followed by its label; then
        the fields seen that the connector did not declare. Fixed once the JSON pass is over."""
        columns: list[Column] = []
        names = [*self._kept, *self._extra]
        for name in names:
            info = self._kept.get(name)
            columns.append(Column(name, info))
            if name in self._codes:
                columns.append(Column(name + LABEL_SUFFIX, info, label_of=name))
        return columns
