"""CSV rows for a person's spreadsheet and any program: RFC 4180, UTF-8, a header line.

Flat values go in as they are (null as an empty cell, booleans as true/false); nested values
(lists, objects) are JSON-encoded in their cell, so nothing is lost.

Lines are what `csv.writer(lineterminator="\r\n")` writes (minimal quoting: a cell is quoted
when it holds a comma, a double quote, CR or LF, its double quotes doubled; a line of one empty
cell is `""`), made here with str.join and str.replace, which on long cells (a visit's pages
as JSON) are several times faster than the csv module's character by character copy. An
encoder gathers lines and hands them over as UTF-8 by the batch (`add`, then `take` when
`ready`).
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

__all__ = ["BATCH_CHARS", "CsvEncoder", "cell", "line", "text_line"]

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


def text_line(texts: list[str]) -> str:
    """One CSV line, with its CRLF, of cells already made text (as `cell` makes them)."""
    joined = ",".join(texts)
    if '"' in joined or "\r" in joined or "\n" in joined or joined.count(",") != len(texts) - 1:
        # Some cell needs quotes: quote those (inline: a call per cell would cost more than the test).
        joined = ",".join(
            [
                '"' + text.replace('"', '""') + '"'
                if "," in text or '"' in text or "\r" in text or "\n" in text
                else text
                for text in texts
            ]
        )
    elif not joined and len(texts) == 1:
        joined = '""'  # else the line would read as no cell at all
    return joined + "\r\n"


def line(cells: Iterable[str | int | float | None]) -> str:
    """One CSV line, with its CRLF: cells as `cell` makes them, or an int, a float (its repr)
    or None (an empty cell), which `cell` would make the same way."""
    return text_line([value if type(value) is str else "" if value is None else str(value) for value in cells])


class CsvEncoder:
    """Encode rows with fixed columns into whole lines of UTF-8."""

    def __init__(self, columns: Sequence[str]) -> None:
        self._columns = list(columns)
        self._lines: list[str] = []
        self._chars = 0

    def take(self) -> bytes:
        """The lines gathered so far, emptying the buffer."""
        text = "".join(self._lines)
        self._lines.clear()
        self._chars = 0
        return text.encode()

    @property
    def ready(self) -> bool:
        """Whether a batch has gathered (`take` it)."""
        return self._chars >= BATCH_CHARS

    def add(self, cells: Iterable[str | int | float | None]) -> None:
        """Gather one line of cells, one per column (see `line`)."""
        self.add_texts([value if type(value) is str else "" if value is None else str(value) for value in cells])

    def add_texts(self, texts: list[str]) -> None:
        """Gather one line of cells already made text, one per column (see `text_line`)."""
        text = text_line(texts)
        self._lines.append(text)
        self._chars += len(text)

    def header(self) -> bytes:
        """The header line: the column names (with any lines gathered before it)."""
        self.add(self._columns)
        return self.take()

    def row(self, row: Mapping[str, Any]) -> bytes:
        """One record as a line; a column the record lacks is an empty cell."""
        self.add([cell(row.get(name)) for name in self._columns])
        return self.take()
