"""Loading a population into a real PostgreSQL and a real SecantusDB, then reading it back by index."""

import secrets
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from pymongo import AsyncMongoClient

from connectors.testing.population import (
    Population,
    PopulationSizes,
    create_mongo_indexes,
    create_postgres_schema,
    generate,
    load_population,
)
from connectors.testing.population.loader import LoadCounts
from connectors.testing.population.schemas import MONGO_INDEXES, MONGO_SYSTEMS, POSTGRES_TABLES

pytestmark = pytest.mark.integration

Client = AsyncMongoClient[dict[str, Any]]


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(seed=21, sizes=PopulationSizes(households=30))


@pytest.fixture(scope="module")
def mongo_names() -> dict[str, str]:
    tag = secrets.token_hex(4)
    return {system: f"{system}_test_{tag}" for system in MONGO_SYSTEMS}


@pytest.fixture(scope="module")
async def loaded(
    population: Population, postgres_dsns: dict[str, str], mongo_client: Client, mongo_names: dict[str, str]
) -> AsyncIterator[LoadCounts]:
    """The population, loaded once for the module (batches of 100 rows, to cross batch boundaries)."""
    counts = await load_population(
        population, postgres_dsns, {system: mongo_client[name] for system, name in mongo_names.items()}, batch_size=100
    )
    yield counts
    for name in mongo_names.values():
        await mongo_client.drop_database(name)


async def test_every_row_is_loaded(
    population: Population,
    loaded: LoadCounts,
    postgres_dsns: dict[str, str],
    mongo_client: Client,
    mongo_names: dict[str, str],
) -> None:
    generated: dict[str, dict[str, int]] = {}
    for system in (*POSTGRES_TABLES, *MONGO_SYSTEMS):
        per_table = generated.setdefault(system, {})
        for table, _ in population.rows(system):
            per_table[table] = per_table.get(table, 0) + 1
    assert loaded == generated
    for system, dsn in postgres_dsns.items():
        conn = await asyncpg.connect(dsn)
        try:
            for table, expected in generated[system].items():
                assert await conn.fetchval(f"SELECT count(*) FROM {table}") == expected, table
        finally:
            await conn.close()
    for system, name in mongo_names.items():
        for collection, expected in generated[system].items():
            assert await mongo_client[name][collection].count_documents({}) == expected, collection


async def test_the_demo_subject_is_found_by_indexed_lookups(
    population: Population,
    loaded: LoadCounts,
    postgres_dsns: dict[str, str],
    mongo_client: Client,
    mongo_names: dict[str, str],
) -> None:
    demo, expected = population.demo, population.demo.expected_counts
    policy = await asyncpg.connect(postgres_dsns["policy"])
    claims = await asyncpg.connect(postgres_dsns["claims"])
    try:
        [person_id] = await policy.fetch("SELECT person_id FROM insured_person WHERE email = $1", demo.email)
        assert str(person_id[0]) == demo.person_id
        assert len(await policy.fetch("SELECT 1 FROM insured_person WHERE nir = $1", demo.nir)) == 1
        assert len(await policy.fetch("SELECT 1 FROM insured_person WHERE phone = $1", demo.phone)) == 4
        assert (
            len(
                await policy.fetch(
                    "SELECT 1 FROM insured_person WHERE last_name = $1 AND first_name = $2 AND birth_date = $3",
                    demo.last_name,
                    demo.first_name,
                    demo.birth_date,
                )
            )
            == 1
        )
        assert (
            await policy.fetchval(
                "SELECT count(*) FROM premium_payment WHERE policy_number = ANY($1::text[])", list(demo.policy_numbers)
            )
            == expected["policy"]["premium_payment"]
        )
        assert (
            await policy.fetchval("SELECT count(*) FROM aml_screening WHERE person_id = $1", demo.person_id)
            == expected["policy"]["aml_screening"]
        )
        assert (
            await claims.fetchval(
                "SELECT count(*) FROM claim WHERE patient_person_id = $1 OR submitted_by_person_id = $1", demo.person_id
            )
            == expected["claims"]["claim"]
        )
        assert (
            await claims.fetchval("SELECT count(*) FROM fraud_alert WHERE person_id = $1", demo.person_id)
            == expected["claims"]["fraud_alert"]
        )
    finally:
        await policy.close()
        await claims.close()
    crm = mongo_client[mongo_names["crm"]]
    [contact] = await crm.contacts.find({"emails": demo.email}).to_list(None)
    assert str(contact["_id"]) == demo.contact_id and contact["person_id"] == demo.person_id
    # An anchored, case-insensitive regex (never a bare one) finds the address typed in capitals.
    pattern = "^" + demo.email.upper().replace(".", r"\.") + "$"
    assert await crm.contacts.count_documents({"emails": {"$regex": pattern, "$options": "i"}}) == 1
    assert await crm.interactions.count_documents({"contact_id": contact["_id"]}) == expected["crm"]["interactions"]
    recruitment = mongo_client[mongo_names["recruitment"]]
    [candidate] = await recruitment.candidates.find({"email": demo.email}).to_list(None)
    assert str(candidate["_id"]) == demo.candidate_id
    visits = mongo_client[mongo_names["analytics"]].visits
    by_cookie = await visits.count_documents({"visitor_id": demo.visitor_id})
    logged_in = await visits.count_documents({"user_id": demo.person_id})
    assert (by_cookie, logged_in) == (expected["analytics"]["visits"], demo.visits_logged_in)
    anonymous = population.anonymous_visitor
    assert (
        await visits.count_documents({"visitor_id": anonymous.visitor_id})
        == anonymous.expected_counts["analytics"]["visits"]
    )


async def test_schemas_have_the_indexes_and_can_be_created_again(
    loaded: LoadCounts, postgres_dsns: dict[str, str], mongo_client: Client, mongo_names: dict[str, str]
) -> None:
    for system, dsn in postgres_dsns.items():
        conn = await asyncpg.connect(dsn)
        try:
            await create_postgres_schema(conn, system)  # again: nothing changes, nothing fails
            names = {row["indexname"] for row in await conn.fetch("SELECT indexname FROM pg_indexes")}
            for table in POSTGRES_TABLES[system]:
                for columns in table.indexes:
                    assert f"{table.name}_{'_'.join(columns)}_idx" in names
        finally:
            await conn.close()
    for system, name in mongo_names.items():
        db = mongo_client[name]
        await create_mongo_indexes(db, system)
        for index in MONGO_INDEXES[system]:
            info = await db[index.collection].index_information()
            assert index.name in info, index


async def test_every_table_has_statistics_once_loaded(loaded: LoadCounts, postgres_dsns: dict[str, str]) -> None:
    """As autovacuum would give it a minute later: the planner's row counts and value frequencies."""
    for system, dsn in postgres_dsns.items():
        conn = await asyncpg.connect(dsn)
        try:
            analyzed = {row["tablename"] for row in await conn.fetch("SELECT DISTINCT tablename FROM pg_stats")}
            assert {table.name for table in POSTGRES_TABLES[system]} <= analyzed, system
        finally:
            await conn.close()


async def test_unknown_systems_are_refused(population: Population) -> None:
    with pytest.raises(ValueError):
        await load_population(population, {"billing": "postgresql://nowhere"}, {})
