"""Live per-system progress of a request, drawn on a terminal or logged line by line.

Two views take the same snapshots (DataRequest, as Watch streams them):

- LiveView redraws a block in place (a header line, then one line per system) on a TTY;
- LogView writes one line per change, for pipes, files and CI logs.

`follow` feeds a view from the Watch stream and returns the last snapshot once the request has ended.
"""

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Protocol, TextIO

from dsar.v1 import dsar_pb2

from ._errors import ClientError
from ._render import FINAL_REQUEST_STATES, request_line, request_state_name, system_lines

# ANSI: cursor up N lines to column 1, and erase the whole line.
_UP = "\x1b[{}F"
_ERASE = "\x1b[2K"


class ProgressView(Protocol):
    """Something that shows successive snapshots of one request."""

    def update(self, request: dsar_pb2.DataRequest) -> None: ...

    def close(self) -> None: ...


class LiveView:
    """Redraws the request's header and system lines in place (for a terminal)."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._drawn = 0

    def update(self, request: dsar_pb2.DataRequest) -> None:
        lines = [request_line(request), *(f"  {line}" for line in system_lines(request))]
        parts = [_UP.format(self._drawn)] if self._drawn else []
        parts.extend(f"{_ERASE}{line}\n" for line in lines)
        # A snapshot with fewer systems than the last one: blank the lines left over.
        leftover = self._drawn - len(lines)
        if leftover > 0:
            parts.extend(f"{_ERASE}\n" for _ in range(leftover))
            parts.append(_UP.format(leftover))
        self._out.write("".join(parts))
        self._out.flush()
        self._drawn = len(lines)

    def close(self) -> None:
        self._out.flush()


class LogView:
    """Writes the request line when the request changes state, and a system's line when it changes."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._state: dsar_pb2.RequestState.ValueType | None = None
        self._systems: dict[str, tuple[object, ...]] = {}

    def update(self, request: dsar_pb2.DataRequest) -> None:
        lines: list[str] = []
        if request.state != self._state:
            self._state = request.state
            lines.append(request_line(request))
        for status, line in zip(request.systems, system_lines(request), strict=True):
            seen = (status.state, status.records, status.bytes, status.attempts, status.error)
            if self._systems.get(status.system) != seen:
                self._systems[status.system] = seen
                lines.append(f"  {line}")
        if lines:
            self._out.write("".join(f"{line}\n" for line in lines))
            self._out.flush()

    def close(self) -> None:
        self._out.flush()


def make_view(out: TextIO) -> ProgressView:
    """A LiveView on a terminal, a LogView anywhere else."""
    return LiveView(out) if out.isatty() else LogView(out)


async def follow(snapshots: AsyncIterator[dsar_pb2.DataRequest], view: ProgressView) -> dsar_pb2.DataRequest:
    """Show every snapshot until the request ends, and return the last one.

    Stops reading as soon as a snapshot is final (READY, FAILED, CANCELLED). A stream that ends
    before that is an error: the service went away while the request was still running.
    """
    last: dsar_pb2.DataRequest | None = None
    try:
        async for request in snapshots:
            view.update(request)
            last = request
            if request.state in FINAL_REQUEST_STATES:
                return request
    finally:
        view.close()
        if isinstance(snapshots, AsyncGenerator):
            await snapshots.aclose()
    if last is None:
        raise ClientError("the service closed the watch without sending the request")
    state = request_state_name(last.state).lower()
    raise ClientError(f"the watch ended while the request was {state}; run `dsar watch` again")
