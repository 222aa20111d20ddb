"""The conformance kit: the checks every connector passes against its own store, before it ships.

A connector's test module subclasses `ConformanceSuite`, says which subjects its seeded data
holds, and seeds a database the kit creates. The kit then checks the declaration, that each
accepted identifier finds exactly the subject, that weak identifiers alone find nothing, that
portability sends no derived field, that the runtime's counts match what it sealed, that 100,000
records stream in bounded memory, and that a cancelled search stops within a second. It runs
against a real server (PostgreSQL at `DSAR_TEST_POSTGRES_URL`, MongoDB at `DSAR_TEST_MONGODB_URL`
or an embedded SecantusDB) and needs no Kafka: results go through the runtime's own `Attempt` with
an in-memory producer.

The recipe (tests/connectors/test_<name>_conformance.py; `dsar connectors new NAME` writes one):

    import asyncpg
    from connectors import claims
    from connectors.sdk import Ident
    from connectors.testing.kit import ConformanceSuite, NegativeCase, SeededStore, SubjectCase

    class TestClaimsConformance(ConformanceSuite):
        connector = claims.connector
        subjects = (SubjectCase("demo subject", {Ident.PERSON_ID: "3f6c2a9e-…"},
                                records={"claim": 24, "claim_document": 31}),)
        negatives = (NegativeCase("shared policy number", {Ident.POLICY_NUMBER: "SF-2017-048213"}),)

        async def seed(self, store: SeededStore) -> None:
            await load_population(POPULATION, {"claims": store.dsn}, {})  # schema and rows

        async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
            conn = await asyncpg.connect(store.dsn)
            try:
                await conn.copy_records_to_table("claim", records=many_claims(HEAVY_ID, n))
            finally:
                await conn.close()
            return SubjectCase("heavy subject", {Ident.PERSON_ID: HEAVY_ID}, records={"claim": n})

Run it with `pytest tests/connectors/test_claims_conformance.py`; each check is a test of its own
(see `ConformanceSuite`). Identifier values are given normalised, as queries carry them
(`connectors.sdk.Query`); full names as `"<last>\\x1f<first>"`. For a MongoDB store, seed through
`pymongo.AsyncMongoClient(store.url)[store.database]` and create the indexes your searches need.

The checks are also plain async functions (`check_finds_subjects`, `check_streams`, …) taking a
connector, a runtime `Source` (`open_source(store)`) and cases, for use outside pytest.
"""

from connectors.testing.kit._attempt import AttemptResult, MemoryProducer, run_attempt
from connectors.testing.kit._cases import Expected, NegativeCase, SeededStore, SubjectCase
from connectors.testing.kit._checks import (
    CancelFigures,
    ConformanceFailure,
    StreamFigures,
    check_activities,
    check_cancellation,
    check_counts,
    check_declaration,
    check_finds_subjects,
    check_portability,
    check_streams,
    check_weak_alone,
)
from connectors.testing.kit._search import found_keys, stream_records
from connectors.testing.kit._stores import embedded_mongodb, open_source, temporary_database
from connectors.testing.kit._suite import KNOWN_ACTIVITIES, ConformanceSuite

__all__ = [
    "KNOWN_ACTIVITIES",
    "AttemptResult",
    "CancelFigures",
    "ConformanceFailure",
    "ConformanceSuite",
    "Expected",
    "MemoryProducer",
    "NegativeCase",
    "SeededStore",
    "StreamFigures",
    "SubjectCase",
    "check_activities",
    "check_cancellation",
    "check_counts",
    "check_declaration",
    "check_finds_subjects",
    "check_portability",
    "check_streams",
    "check_weak_alone",
    "embedded_mongodb",
    "found_keys",
    "open_source",
    "run_attempt",
    "stream_records",
    "temporary_database",
]
