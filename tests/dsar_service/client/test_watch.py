"""Live progress: what each view writes for a sequence of snapshots, and when following stops."""

import io

import pytest
from fake_dsar_service import Served

from dsar.v1 import dsar_pb2
from dsar_service.client import ClientError, DsarClient, LiveView, LogView, follow, make_view

S = dsar_pb2


def snapshot(state: int, *systems: tuple[str, int, int, int, int, str]) -> dsar_pb2.DataRequest:
    """A request `r-1` with (system, state, records, bytes, attempts, error) per system."""
    return S.DataRequest(
        request_id="r-1",
        kind=S.REQUEST_KIND_ACCESS,
        state=state,  # type: ignore[arg-type]
        systems=[
            S.SystemStatus(system=n, state=st, records=r, bytes=b, attempts=a, error=e)  # type: ignore[arg-type]
            for n, st, r, b, a, e in systems
        ],
    )


START = snapshot(
    S.REQUEST_STATE_COLLECTING,
    ("policy", S.SYSTEM_STATE_DISPATCHED, 0, 0, 1, ""),
    ("crm", S.SYSTEM_STATE_PENDING, 0, 0, 0, ""),
)
POLICY_RUNNING = snapshot(
    S.REQUEST_STATE_COLLECTING,
    ("policy", S.SYSTEM_STATE_RUNNING, 1200, 3 * 1024 * 1024, 1, ""),
    ("crm", S.SYSTEM_STATE_PENDING, 0, 0, 0, ""),
)
READY = snapshot(
    S.REQUEST_STATE_READY,
    ("policy", S.SYSTEM_STATE_COMPLETED, 1250, 3 * 1024 * 1024, 1, ""),
    ("crm", S.SYSTEM_STATE_TIMED_OUT, 0, 0, 3, "no answer after 3 attempts"),
)


def test_log_view_writes_one_line_per_change() -> None:
    out = io.StringIO()
    view = LogView(out)
    for request in (START, POLICY_RUNNING, POLICY_RUNNING, READY):
        view.update(request)
    assert out.getvalue().splitlines() == [
        "r-1  COLLECTING access      systems 0/2  due -",
        "  policy DISPATCHED         0 records        0 B  attempt 1",
        "  crm    PENDING            0 records        0 B  attempt 0",
        "  policy RUNNING        1,200 records    3.0 MiB  attempt 1",
        "r-1  READY      access      systems 2/2  due -",
        "  policy COMPLETED      1,250 records    3.0 MiB  attempt 1",
        "  crm    TIMED_OUT          0 records        0 B  attempt 3  (no answer after 3 attempts)",
    ]


def test_live_view_redraws_the_block_in_place() -> None:
    out = io.StringIO()
    view = LiveView(out)
    view.update(START)
    first = out.getvalue()
    view.update(POLICY_RUNNING)
    second = out.getvalue()[len(first) :]

    assert first.count("\n") == 3 and "\x1b[" in first and not first.startswith("\x1b[3F")
    assert second.startswith("\x1b[3F")  # back up over the three lines drawn
    assert second.count("\x1b[2K") == 3  # each line erased before it is rewritten
    assert "RUNNING        1,200 records" in second


def test_live_view_blanks_lines_left_over_by_a_shorter_snapshot() -> None:
    out = io.StringIO()
    view = LiveView(out)
    view.update(START)
    drawn = len(out.getvalue())
    view.update(snapshot(S.REQUEST_STATE_COLLECTING, ("policy", S.SYSTEM_STATE_RUNNING, 1, 1, 1, "")))
    redraw = out.getvalue()[drawn:]
    assert redraw.startswith("\x1b[3F")
    assert redraw.endswith("\x1b[2K\n\x1b[1F")  # the old third line blanked, cursor back below the block


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_make_view_redraws_only_on_a_terminal() -> None:
    assert isinstance(make_view(_Terminal()), LiveView)
    assert isinstance(make_view(io.StringIO()), LogView)


async def test_follow_returns_at_the_final_snapshot_without_waiting_for_the_stream(served: Served) -> None:
    served.service.snapshots = [START, POLICY_RUNNING, READY]
    served.service.hang_after_snapshots = True
    out = io.StringIO()
    async with DsarClient.connect(served.settings) as client:
        last = await follow(client.watch("r-1"), LogView(out))
    assert last == READY
    assert out.getvalue().splitlines()[-3].startswith("r-1  READY")
    await served.service.watch_cancelled.wait()  # the stream was closed, not left open


async def test_follow_reports_a_stream_that_ends_before_the_request(served: Served) -> None:
    served.service.snapshots = [START, POLICY_RUNNING]
    async with DsarClient.connect(served.settings) as client:
        with pytest.raises(ClientError, match="watch ended while the request was collecting"):
            await follow(client.watch("r-1"), LogView(io.StringIO()))
