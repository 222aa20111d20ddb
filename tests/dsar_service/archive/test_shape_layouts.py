"""DatasetShape's per-layout fast path makes exactly the rows, CSV lines and data dictionary
that the plain field-by-field rules make (the rules are written out again here, slowly)."""

import csv
import io
from collections.abc import Mapping
from typing import Any
from unittest import mock

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from dsar_service.archive import shape as shape_module
from dsar_service.archive.csvfile import BATCH_CHARS, CsvEncoder, cell, line
from dsar_service.archive.shape import DatasetShape, json_type
from dsar_service.model import DatasetInfo, FieldInfo

DECLARED = DatasetInfo(
    "things",
    "policy_management",
    "",
    ("a",),
    (
        FieldInfo("a", "provided", "policy_management"),
        FieldInfo("b", "derived", "policy_management"),
        FieldInfo("c", "provided", "policy_management"),
        FieldInfo("d", "observed", "prospection"),  # an activity portability does not cover
    ),
)
TABLE = {"1": "one", "True": "yes", "v": "V", "1.5": "one and a half", "": "blank"}
CODES = {"c": TABLE, "d": TABLE, "x": TABLE}
NAMES = ["a", "b", "c", "c_label", "d", "d_label", "x", "x_label", "y"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["1", "v", "", "True", 'say "hi", bye', "line\r\nbreak", "é€😀"]),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
# A record: names in any order, with repeats (a repeated name keeps its first place, its last value).
records = st.lists(st.tuples(st.sampled_from(NAMES), values), max_size=8).map(dict)


def _new(declared: DatasetInfo | None, portability: bool) -> DatasetShape:
    return DatasetShape(
        "policy",
        "things",
        declared,
        portability=portability,
        portable_activity=lambda a: a != "prospection",
        codes=CODES,
    )


class Reference:
    """The rules, field by field: what DatasetShape must agree with."""

    def __init__(self, declared: DatasetInfo | None, portability: bool) -> None:
        fields = declared.fields if declared else ()
        self.kept = [
            f.name for f in fields if not portability or (f.provenance != "derived" and f.activity != "prospection")
        ]
        self.declared, self.portability = declared, portability
        self.types: dict[str, set[str]] = {}
        self.present: dict[str, int] = {}
        self.extra: list[str] = []
        self.records = 0

    def shape(self, fields: Mapping[str, Any]) -> dict[str, Any] | None:
        row: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in self.kept and self.declared is not None and self.portability:
                continue
            row[name] = value
            if name in CODES:
                row[name + "_label"] = None if value is None else CODES[name].get(str(value))
        return row or None

    def count(self, row: Mapping[str, Any]) -> None:
        self.records += 1
        for name, value in row.items():
            self.types.setdefault(name, set()).add(json_type(value))
            self.present[name] = self.present.get(name, 0) + 1
            is_label = name.endswith("_label") and name.removesuffix("_label") in CODES
            if name not in self.kept and name not in self.extra and not is_label:
                self.extra.append(name)

    def columns(self) -> list[str]:
        names = []
        for name in [*self.kept, *self.extra]:
            names += [name, name + "_label"] if name in CODES else [name]
        return names


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


def _check(batch: list[dict[str, Any]], declared: DatasetInfo | None, portability: bool) -> None:
    shape, reference = _new(declared, portability), Reference(declared, portability)
    # The JSON pass.
    for fields in batch:
        expected = reference.shape(fields)
        row = shape.shape_and_count(fields)
        assert (row is None) == (expected is None)
        if row is not None and expected is not None:
            assert orjson.dumps(row) == orjson.dumps(expected)  # same names, order and values
            assert shape.shape(fields) == expected
            reference.count(expected)
    assert shape.records == reference.records
    assert shape.types == reference.types and shape.present == reference.present
    assert list(shape.present) == list(reference.present)  # first seen first
    columns = tuple(c.name for c in shape.columns)
    assert list(columns) == reference.columns()
    # The CSV pass.
    encoder, lines = CsvEncoder(columns), []
    for fields in batch:
        cells = shape.csv_cells(fields, columns)
        expected = reference.shape(fields)
        assert (cells is None) == (expected is None)
        if cells is not None and expected is not None:
            encoder.add(cells)
            lines.append([cell(expected.get(name)) for name in columns])
    assert encoder.take() == _csv(lines)
    # Both in one call (the JSON pass writing the CSV alongside, the columns known): the same.
    alongside = _new(declared, portability)
    for fields in batch:
        shaped = alongside.shape_count_and_cells(fields, columns)
        expected = reference.shape(fields)
        assert (shaped is None) == (expected is None)
        if shaped is not None and expected is not None:
            assert orjson.dumps(shaped[0]) == orjson.dumps(expected)
            assert shaped[1] == shape.csv_cells(fields, columns)
    assert (alongside.records, alongside.types, alongside.present) == (shape.records, shape.types, shape.present)


@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=12), st.booleans(), st.booleans())
def test_rows_csv_and_statistics_follow_the_field_by_field_rules(
    batch: list[dict[str, Any]], declared: bool, portability: bool
) -> None:
    _check(batch, DECLARED if declared else None, portability)


@settings(max_examples=100, deadline=None)
@given(st.lists(records, min_size=5, max_size=30), st.booleans())
def test_the_caches_bounds_change_nothing(batch: list[dict[str, Any]], portability: bool) -> None:
    # Tiny caches: layouts recompiled, statistics summed after nearly every record.
    with mock.patch.object(shape_module, "_MAX_LAYOUTS", 2), mock.patch.object(shape_module, "_MAX_PENDING", 2):
        _check(batch, DECLARED, portability)


def test_a_record_that_keeps_everything_is_its_own_row() -> None:
    shape = _new(DECLARED, portability=False)
    fields = {"a": 1, "b": [True]}
    assert shape.shape(fields) is fields  # no copy where nothing changes
    assert shape.shape({"c": "v", "a": None}) == {"c": "v", "c_label": "V", "a": None}


def test_csv_lines_come_by_the_batch() -> None:
    encoder = CsvEncoder(["a", "b"])
    assert encoder.header() == b"a,b\r\n"
    taken: list[bytes] = []
    rows = 0
    while len(taken) < 2:
        encoder.add(["é" * 100, rows])
        rows += 1
        if encoder.ready:
            taken.append(encoder.take())
    assert all(len(piece.decode()) >= BATCH_CHARS for piece in taken)
    assert b"".join(taken) == _csv([["é" * 100, str(i)] for i in range(rows)])
    assert encoder.take() == b""


cells = st.one_of(
    st.none(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(alphabet=st.sampled_from(",\"\r\n \t\x00;'aé€😀"), max_size=6),
    st.text(max_size=6),
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(cells, max_size=5))
def test_lines_are_what_the_csv_module_writes(row: list[str | int | float | None]) -> None:
    assert line(row).encode() == _csv([row])  # type: ignore[list-item]  # csv takes any value


def test_columns_read_during_the_pass_grow_when_a_field_not_declared_shows() -> None:
    shape = _new(DECLARED, portability=False)
    shape.shape_and_count({"a": 1, "c": "v"})
    before = [c.name for c in shape.columns]
    assert before == ["a", "b", "c", "c_label", "d", "d_label"]
    shape.shape_and_count({"a": 2, "y": 3})
    assert [c.name for c in shape.columns] == [*before, "y"]
