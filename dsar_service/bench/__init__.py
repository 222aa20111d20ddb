"""`dsar bench`: speed and memory at scale, each figure against a reference measured in the same run.

    await run_bench(BenchOptions(), sys.stdout)                 # the full run (a minute or two)
    await run_bench(BenchOptions(quick=True), sys.stdout)       # tiny sizes, under a minute
    await run_bench(BenchOptions(only="many"), sys.stdout)      # one scenario

The bench makes its own data with the population generator, runs on an embedded stack of its own
(a temporary state folder, its own PostgreSQL by default, stopped at the end), starts the service
and one process per connector as `dsar serve` / `dsar connectors run --system NAME`, and prints a
table. The scenarios (SCENARIOS):

- large: one subject with 20,000 claims, 20,000 visits (~200,000 page views), 5,000 CRM
  interactions and the rest of a normal record. Submit-to-ready time against the floor (the same
  rows read with asyncpg and motor in one plain loop), records/s, archive MB/s, download MB/s.
- tenth: the same at a tenth of the volumes. With `large`: each process's peak resident memory
  (VmHWM) at both sizes and their ratio, which must not grow with the size.
- many: 500 ordinary subjects at once (50 in flight): requests/s, p50 and p99 latency; one
  request alone on the idle stack.
- crypto: MB/s of HPKE sealing and opening (1 MiB chunks), ZIP streaming, age encryption and the
  archive writer, on the large archive's data files, against SHA-256 of the same bytes.

The large and tenth requests are timed `repeat` times (DEFAULT_REPEAT, 3), each against its own
floor, and the median run is shown and judged. With `profile_dir`, py-spy records the service and every
connector during `large` and `many`, and the top functions of each follow the table.
"""

from ._options import DEFAULT_REPEAT, MAX_REPEAT, SCENARIOS, BenchOptions, BenchSizes
from ._requests import BenchError
from ._run import run_bench

__all__ = ["DEFAULT_REPEAT", "MAX_REPEAT", "SCENARIOS", "BenchError", "BenchOptions", "BenchSizes", "run_bench"]
