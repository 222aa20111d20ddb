"""A reproducible French population across the five source systems, for the demo, tests and benchmarks.

    population = generate(seed=7, sizes=PopulationSizes(households=50))
    await load_population(population, {"policy": policy_conn, "claims": claims_dsn},
                          {"crm": client.crm, "recruitment": client.recruitment, "analytics": client.analytics})
    assert archive_claims == population.demo.expected_counts["claims"]["claim"]

`schemas` holds the systems' tables and indexes (world.md §1); `generator` the population and the
facts about its demo subject; `loader` the bulk insertion.
"""

from ._sizes import PopulationSizes
from .generator import CandidateFacts, DemoSubject, PersonFacts, Population, VisitorFacts, generate
from .loader import load_population
from .schemas import SYSTEMS, create_mongo_indexes, create_postgres_schema

__all__ = [
    "SYSTEMS",
    "CandidateFacts",
    "DemoSubject",
    "PersonFacts",
    "Population",
    "PopulationSizes",
    "VisitorFacts",
    "create_mongo_indexes",
    "create_postgres_schema",
    "generate",
    "load_population",
]
