"""CSV rows for a person's spreadsheet and any program: RFC 4180, UTF-8, a header line.

Flat values go in as they are (null as an empty cell, booleans as true/false); nested values
(lists, objects) are JSON-encoded in their cell, so nothing is lost.
"""

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

__all__ = ["CsvEncoder", "cell"]


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
    """Encode rows with fixed columns; each call returns the bytes of whole lines."""

    def __init__(self, columns: Sequence[str]) -> None:
        self._columns = list(columns)
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="\r\n")

    def _take(self) -> bytes:
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return text.encode()

    def header(self) -> bytes:
        """The header line: the column names."""
        self._writer.writerow(self._columns)
        return self._take()

    def row(self, row: Mapping[str, Any]) -> bytes:
        """One record as a line; a column the record lacks is an empty cell."""
        self._writer.writerow([cell(row.get(name)) for name in self._columns])
        return self._take()
