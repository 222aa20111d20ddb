"""Fixtures of the fault tests: the databases once for the folder, a broker of its own per test.

The databases are the embedded stack's (PostgreSQL of its own, SecantusDB), loaded once with a
population whose demo subject has 20,000 claims (about 80,000 records from the claims system),
so that streams and assemblies last long enough to be interrupted. Each test gets a fresh Tansu
broker (which it may kill) and starts its own service and connectors with tests.support.
"""

import sys
from collections.abc import AsyncIterator
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[3])
if _ROOT not in sys.path:  # tests.support, until pytest's `pythonpath` names the project's root
    sys.path.insert(0, _ROOT)

import pyrage  # noqa: E402
import pytest  # noqa: E402

from connectors.testing.population import Population, PopulationSizes, generate  # noqa: E402
from dsar_service.stack import StackInfo  # noqa: E402
from tests.support.broker import Broker, running_broker  # noqa: E402
from tests.support.servers import load_sources, running_servers  # noqa: E402

DEMO_CLAIMS = 20_000


@pytest.fixture(scope="package")
def population() -> Population:
    return generate(seed=7, sizes=PopulationSizes(households=4, demo_claims=DEMO_CLAIMS))


@pytest.fixture(scope="package")
async def servers(tmp_path_factory: pytest.TempPathFactory, population: Population) -> AsyncIterator[StackInfo]:
    """The embedded stack's databases, with the population in policy and claims."""
    async with running_servers(tmp_path_factory.mktemp("fault-stack")) as info:
        rows = await load_sources(info, population, ["policy", "claims"])
        print(f"\n[faults] population loaded: {rows}")
        yield info


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    async with running_broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def identity() -> pyrage.x25519.Identity:
    """The requester's age identity; the archive is encrypted to its public key."""
    return pyrage.x25519.Identity.generate()
