"""The bench's figures without a stack: whose frames a profile holds, CPU from /proc, the CPU table."""

import os
import re
from pathlib import Path

import pytest

from dsar_service.bench._proc import ancestor_named, cpu_seconds, tree_cpu_seconds
from dsar_service.bench._profile import NO_FRAME_OF_OURS, _is_ours, summarize
from dsar_service.bench._run import POSTGRES, _cpu_lines

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("frame", "ours"),
    [
        ("Collector.advance (collection.py)", True),  # py-spy's short name for dsar_service/requests/…
        (f"Collector.advance ({ROOT}/dsar_service/requests/collection.py)", True),
        ("Collector.advance (dsar_service/requests/collection.py)", True),
        ("rows (connectors/claims.py)", True),
        ("main (cli.py)", False),  # the entry point, on every stack
        (f"main ({ROOT}/dsar_service/cli.py)", False),
        ("EpollSelector.select (selectors.py)", False),
        ("AIOKafkaClient.ready (aiokafka/client.py)", False),
        ("<module> (<frozen runpy>)", False),
    ],
)
def test_our_frames_are_recognised_with_short_and_full_file_names(frame: str, ours: bool) -> None:
    assert _is_ours(frame) is ours


def test_summary_charges_samples_to_our_deepest_frame(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        f"main ({ROOT}/dsar_service/cli.py);Collector.advance ({ROOT}/dsar_service/requests/collection.py);"
        "Pool.fetch (/x/site-packages/asyncpg/pool.py) 3\n"
        "main (cli.py);EpollSelector.select (selectors.py) 1\n"
    )

    profile = summarize("many/service", raw)

    assert profile.samples == 4
    assert profile.top_ours == [("Collector.advance (dsar_service/requests/collection.py)", 3), (NO_FRAME_OF_OURS, 1)]


def test_a_process_tree_counts_at_least_its_root() -> None:
    pid = os.getpid()
    command = Path(f"/proc/{pid}/comm").read_text().strip()

    own, tree = cpu_seconds(pid), tree_cpu_seconds(pid)

    assert own is not None and tree is not None and tree >= own
    assert ancestor_named(pid, command) is not None
    assert ancestor_named(pid, "no such command") is None
    assert tree_cpu_seconds(2**22 + 1) is None  # beyond pid_max: no such process


def test_cpu_table_has_a_postgresql_row_or_na() -> None:
    cpu = {"large": ({"service": 0.5, POSTGRES: 0.3}, 1), "many": ({"service": 1.0, POSTGRES: 0.5}, 10)}

    seen = _cpu_lines(cpu, postgres_seen=True)
    remote = _cpu_lines({"many": ({"service": 1.0}, 10)}, postgres_seen=False)

    rows = {cells[0]: cells[1:] for cells in (re.split(r"\s{2,}", line) for line in seen[2:-1])}
    assert rows[POSTGRES] == ["0.3", "50"] and rows["all"] == ["0.8", "150"]
    assert "source systems' databases" in seen[-1]
    assert re.split(r"\s{2,}", next(line for line in remote if line.startswith(POSTGRES))) == [POSTGRES, "n/a"]
    assert "n/a" in remote[-1]
