"""What `dsar bench` can be told, and the sizes each mode runs at."""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from connectors.testing.population import PopulationSizes

SCENARIOS = ("large", "tenth", "many", "crypto")
MAX_REPEAT = 9  # `--repeat`: the heavy requests, each against its floor
DEFAULT_REPEAT = 3  # the verdict on the large ratio is a median: one run on a shared machine says little
"""The scenarios, in the order the table shows them:

- large: one subject with a heavy record (PopulationSizes.benchmark()), end to end against a plain read;
- tenth: the same subject at a tenth of the volumes, to show that memory does not grow with size;
- many: many ordinary subjects at once (throughput, p50/p99 latency) and one alone (latency);
- crypto: the sealing, ZIP and age floors on archive-like bytes.
"""


@dataclass(frozen=True)
class BenchSizes:
    """How big each scenario is."""

    large: PopulationSizes
    tenth: PopulationSizes
    many_requests: int  # distinct ordinary subjects, one request each
    many_in_flight: int  # requests the client keeps in flight at once
    single_requests: int  # requests alone on an idle stack (the median is reported)
    crypto_bytes: int  # plaintext the crypto floors work on (at most)

    @classmethod
    def full(cls) -> "BenchSizes":
        """The issue's sizes: 200,000 page views, 20,000 claims, 5,000 interactions; 500 requests."""
        large = PopulationSizes.benchmark()
        tenth = dataclasses.replace(
            large,
            households=50,
            demo_claims=large.demo_claims // 10,
            demo_visits=large.demo_visits // 10,
            demo_interactions=large.demo_interactions // 10,
            lone_candidates=5,
            anonymous_visitors=20,
            prospects=10,
        )
        return cls(large, tenth, many_requests=500, many_in_flight=50, single_requests=3, crypto_bytes=48 << 20)

    @classmethod
    def quick(cls) -> "BenchSizes":
        """Tiny sizes that run in well under a minute: to check the bench works, not to measure."""
        large = PopulationSizes(households=20, demo_claims=200, demo_visits=200, pages_per_visit=10,
                                demo_interactions=50)  # fmt: skip
        tenth = PopulationSizes(households=4, demo_claims=20, demo_visits=20, pages_per_visit=10,
                                demo_interactions=5)  # fmt: skip
        return cls(large, tenth, many_requests=10, many_in_flight=5, single_requests=1, crypto_bytes=2 << 20)


@dataclass(frozen=True)
class BenchOptions:
    """What `dsar bench` can be told (see `dsar bench --help`).

    `only` names one scenario of SCENARIOS (None: all). `work_dir` is where the bench's own state
    folder is made (a fresh temporary folder inside it, removed at the end; the system's temporary
    folder by default). `postgres` is the stack's PostgreSQL: "embedded" (default: a server of its
    own, so that the `policy` and `claims` databases the bench drops and fills are nobody else's),
    "auto", or a URL. `profile_dir`, if set, gets a py-spy profile of the service and of each
    connector during the `large` and `many` scenarios (py-spy must be installed), and the table is
    followed by each process's top functions. `repeat` times the `large` and `tenth` requests
    that many times (DEFAULT_REPEAT unless told), each against its own floor reads; the table
    shows the median run (of an even count, the worse of the two middle ones), the CPU, profile
    and download figures of the first, and each process's peak memory over them all (a process
    that kept something of each request would show it).
    """

    quick: bool = False
    only: str | None = None
    seed: int = 15
    work_dir: Path | None = None
    postgres: str = "embedded"
    profile_dir: Path | None = None
    keep_work_dir: bool = False
    repeat: int = DEFAULT_REPEAT

    def __post_init__(self) -> None:
        if self.only is not None and self.only not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.only!r}; expected one of {', '.join(SCENARIOS)}")
        if not 1 <= self.repeat <= MAX_REPEAT:
            raise ValueError(f"repeat is 1 to {MAX_REPEAT}")

    @property
    def sizes(self) -> BenchSizes:
        return BenchSizes.quick() if self.quick else BenchSizes.full()

    def runs(self, scenario: str) -> bool:
        """Whether `scenario` is part of this run."""
        return self.only is None or self.only == scenario
