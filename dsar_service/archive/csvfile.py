"""CSV rows for a person's spreadsheet and any program: RFC 4180, UTF-8, a header line.

Flat values go in as they are (null as an empty cell, booleans as true/false); nested values
(lists, objects) are JSON-encoded in their cell, so nothing is lost.

An encoder gathers lines in one text buffer and hands them over as UTF-8 by the batch
(`add`, then `take` when `ready`), so the cost of a row is one `csv.writer` call.
"""

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

__all__ = ["BATCH_CHARS", "CsvEncoder", "cell"]

BATCH_CHARS = 64 * 1024  # text gathered before `ready` says to take it


def cell(value: Any) -> str:
    """One value as a CSV cell."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    return orjson.dumps(value).decode()


class CsvEncoder:
    """Encode rows with fixed columns into whole lines of UTF-8."""

    def __init__(self, columns: Sequence[str]) -> None:
        self._columns = list(columns)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def take(self) -> bytes:
        """The lines gathered so far, emptying the buffer."""
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()

    @property
    def ready(self) -> bool:
        """Whether a batch has gathered (`take` it)."""
        return self._buffer.tell() >= BATCH_CHARS

    def add(self, cells: Iterable[str | int | float | None]) -> None:
        """Gather one line of cells, one per column, already as `cell` makes them, or as csv
        writes them the same way: an int, a float, or None for an empty cell."""
        self._writer.writerow(cells)

    def header(self) -> bytes:
        """The header line: the column names (with any lines gathered before it)."""
        self._writer.writerow(self._columns)
        return self.take()

    def row(self, row: Mapping[str, Any]) -> bytes:
        """One record as a line; a column the record lacks is an empty cell."""
        self._writer.writerow([cell(row.get(name)) for name in self._columns])
        return self.take()
