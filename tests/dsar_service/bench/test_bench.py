"""`dsar bench --quick` end to end: its own stack, the service and five connector processes, every
scenario, and the table. Tiny sizes: this checks that the bench runs and reports, not the timings."""

import io
import os
import re
from pathlib import Path

import pytest

from dsar_service.bench import SCENARIOS, BenchOptions, run_bench

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

    code = await run_bench(BenchOptions(quick=True, work_dir=tmp_path), out)

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
    assert set(SCENARIOS) <= {row[0] for row in rows}
    assert not os.listdir(tmp_path)  # the work folder, its stack state and archives are gone
