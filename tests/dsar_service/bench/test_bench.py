"""`dsar bench --quick` end to end: its own stack, the service and five connector processes, every
scenario, and the table. Tiny sizes: this checks that the bench runs and reports, not the timings."""

import io
import os
import re
from pathlib import Path

import pytest

from dsar_service.bench import SCENARIOS, BenchOptions, run_bench
from dsar_service.bench import _run as bench_run
from dsar_service.bench._requests import BenchError

pytestmark = pytest.mark.integration

MEASURES = {
    "large": ["submit → ready", "records/s", "archive MB/s (assembly)", "download MB/s"],
    "tenth": ["submit → ready", "records/s"],
    "memory": [f"peak RSS {name}" for name in ("service", "policy", "claims", "crm", "recruitment", "analytics")],
    "many": ["throughput", "latency p50", "latency p99", "single request (idle)", "peak RSS service"],
    "crypto": ["sha256", "seal", "open", "zip", "age", "writer"],
}


async def test_quick_bench_prints_every_scenario_and_cleans_up(tmp_path: Path) -> None:
    out = io.StringIO()

    code = await run_bench(BenchOptions(quick=True, work_dir=tmp_path, repeat=2), out)

    text = out.getvalue()
    assert code == 0, text
    table = text[text.index("scenario  measure") :]
    rows = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()[2:] if line.strip()]
    for scenario, measures in MEASURES.items():
        found = {row[1] for row in rows if row[0] == scenario}
        assert set(measures) <= found, (scenario, found)
    # A figure with a reference shows the ratio; a judged one a verdict.
    ready = next(row for row in rows if row[:2] == ["large", "submit → ready"])
    assert ready[3].startswith("floor ") and float(ready[4]) > 0 and ready[-1] in ("ok", "MISS")
    # The ratio target is the large subject's; at a tenth the ratio is shown, not judged.
    tenth = next(row for row in rows if row[:2] == ["tenth", "submit → ready"])
    assert tenth[3].startswith("floor ") and float(tenth[4]) > 0 and tenth[-1] not in ("ok", "MISS")
    assert set(SCENARIOS) <= {row[0] for row in rows}
    # Two runs of each heavy request: both ratios listed; the one shown is the worse (the upper median).
    for label in ("large", "tenth"):
        listed = next(row[2] for row in rows if row[:2] == [label, "ratio of each run"])
        ratios = re.findall(r"\d+\.\d\d", listed)
        shown = next(row[4] for row in rows if row[:2] == [label, "submit → ready"])
        assert len(ratios) == 2 and shown == max(ratios, key=float), (listed, shown)
    assert not os.listdir(tmp_path)  # the work folder, its stack state and archives are gone


async def test_a_failed_run_keeps_its_logs_and_removes_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_warm_up(*_: object) -> None:
        raise BenchError("the warm-up request did not end READY")

    monkeypatch.setattr(bench_run, "_warm_up", failing_warm_up)  # with the children up and logging
    out = io.StringIO()

    with pytest.raises(BenchError):
        await run_bench(BenchOptions(quick=True, only="tenth", work_dir=tmp_path), out)

    said = re.search(r"its logs are kept in (\S+)", out.getvalue())
    assert said is not None, out.getvalue()
    kept = Path(said.group(1))
    assert os.listdir(tmp_path) == [kept.name]  # the work folder (state, identity) is gone
    logs = set(os.listdir(kept))
    assert {"bench-tenth-service.log", "bench-tenth-claims.log", "stack-kafka.log"} <= logs, logs
    assert all(name.endswith(".log") for name in logs)
