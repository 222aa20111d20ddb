"""Fixtures of the replica tests: the databases once for the folder, a broker of their own per test.

The population has 50 background households (some twenty subscribers suit as subjects: subjects.py) and a demo
subject with 20,000 claims (about 80,000 records from claims, in some 20 sealed chunks), so that
a stream lasts long enough to kill a process in the middle of it. Every source system is loaded:
the first test asks all five.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pyrage
import pytest

from connectors.testing.population import Population, PopulationSizes, generate
from connectors.testing.population.schemas import SYSTEMS
from dsar_service.stack import StackInfo
from tests.support.broker import Broker, running_broker
from tests.support.servers import load_sources, running_servers

BACKGROUND_HOUSEHOLDS = 50  # not every background subscriber suits (see subjects.py)
DEMO_CLAIMS = 20_000


@pytest.fixture(scope="package")
def population() -> Population:
    return generate(seed=11, sizes=PopulationSizes(households=BACKGROUND_HOUSEHOLDS, demo_claims=DEMO_CLAIMS))


@pytest.fixture(scope="package")
async def servers(tmp_path_factory: pytest.TempPathFactory, population: Population) -> AsyncIterator[StackInfo]:
    """The embedded stack's databases, with the population in all five systems."""
    async with running_servers(tmp_path_factory.mktemp("replica-stack")) as info:
        rows = await load_sources(info, population, SYSTEMS)
        print(f"\n[replicas] population loaded: {rows}")
        yield info


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    async with running_broker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def identity() -> pyrage.x25519.Identity:
    """The requester's age identity; the archives are encrypted to its public key."""
    return pyrage.x25519.Identity.generate()
