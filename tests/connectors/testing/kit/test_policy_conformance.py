"""The policy connector against the conformance kit, on real PostgreSQL with the generated population.

The expected records are derived from the population's rows, independently of the connector:
the policies the subject is a member of, every member row of those policies (the others as bare
links, each with a redaction note), his bank accounts and file accesses, and the payments and
dunning events of the policies he subscribed.
"""

import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest

from connectors import policy
from connectors.sdk import REDACTIONS, Ident, Identifier
from connectors.testing.kit import ConformanceSuite, Expected, NegativeCase, SeededStore, SubjectCase
from connectors.testing.population import Population, generate, load_population

pytestmark = pytest.mark.integration

POPULATION = generate(seed=7)
DEMO, NAMESAKE = POPULATION.demo, POPULATION.namesake
HEAVY = uuid.UUID("00000000-0000-4000-8000-00000000cafe")
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def expected_for(population: Population, person_id: str) -> Expected:
    """The records the policy connector must return for one person, from the generated rows."""
    rows = list(population.rows("policy"))
    pid = uuid.UUID(person_id)
    member_of = {r["policy_number"] for t, r in rows if t == "policy_member" and r["person_id"] == pid}
    subscribed = {r["policy_number"] for t, r in rows if t == "policy" and r["subscriber_id"] == pid}
    members = [r for t, r in rows if t == "policy_member" and r["policy_number"] in member_of]

    def keys(table: str, *columns: str, where: Any) -> list[str]:
        return ["/".join(str(r[c]) for c in columns) for t, r in rows if t == table and where(r)]

    return {
        "insured_person": [person_id],
        "policy": sorted(member_of),
        "policy_member": len(members),
        "bank_account": keys("bank_account", "person_id", "iban", "valid_from", where=lambda r: r["person_id"] == pid),
        "premium_payment": keys("premium_payment", "payment_id", where=lambda r: r["policy_number"] in subscribed),
        "dunning_event": keys("dunning_event", "id", where=lambda r: r["policy_number"] in subscribed),
        "file_access_log": keys("file_access_log", "id", where=lambda r: r["person_id"] == pid),
        REDACTIONS: sum(r["person_id"] != pid for r in members),
    }


def full_name(last: str, first: str) -> str:
    return Identifier.full_name(last, first).value


class TestPolicyConformance(ConformanceSuite):
    connector = policy.connector
    subjects = (
        SubjectCase(
            "demo subject",
            {
                Ident.PERSON_ID: DEMO.person_id,
                Ident.EMAIL: DEMO.email,
                Ident.NIR: DEMO.nir,
                Ident.PHONE: DEMO.phone,  # shared with his wife and children
                Ident.FULL_NAME: full_name(DEMO.last_name, DEMO.first_name),  # shared with the namesake
                Ident.POLICY_NUMBER: DEMO.policy_number,  # shared with his family
                Ident.BIRTH_DATE: DEMO.birth_date.isoformat(),
            },
            records=expected_for(POPULATION, DEMO.person_id),
        ),
        SubjectCase(
            "namesake",
            {
                Ident.PERSON_ID: NAMESAKE.person_id,
                Ident.FULL_NAME: full_name(NAMESAKE.last_name, NAMESAKE.first_name),
                Ident.BIRTH_DATE: NAMESAKE.birth_date.isoformat(),
            },
            records=expected_for(POPULATION, NAMESAKE.person_id),
        ),
    )
    negatives = (
        NegativeCase("namesake's full name alone", {Ident.FULL_NAME: full_name(DEMO.last_name, DEMO.first_name)}),
        NegativeCase("shared household phone", {Ident.PHONE: DEMO.phone}),
        NegativeCase("shared family policy number", {Ident.POLICY_NUMBER: DEMO.policy_number}),
        NegativeCase("household phone with the spouse's name", {
            Ident.PHONE: DEMO.phone, Ident.FULL_NAME: full_name(DEMO.last_name, POPULATION.spouse.first_name)}),
        NegativeCase("unknown e-mail", {Ident.EMAIL: "nobody@example.invalid"}),
    )  # fmt: skip

    async def seed(self, store: SeededStore) -> None:
        await load_population(POPULATION, {"policy": store.dsn}, {})

    async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
        conn = await asyncpg.connect(store.dsn)
        try:
            await conn.execute(
                """INSERT INTO insured_person (person_id, last_name, first_name, birth_date, address_line,
                   postal_code, city, country, marital_status, occupation, employer_name, created_at, updated_at)
                   VALUES ($1, 'Lourd', 'Henri', '1960-01-01', '1 rue Haute', '75001', 'Paris', 'FR', 'single',
                   'retraité', '', $2, $2)""",
                HEAVY,
                T0,
            )
            await conn.copy_records_to_table(
                "file_access_log",
                records=_accesses(n),
                columns=["id", "person_id", "accessed_at", "accessor_role", "accessor_id", "purpose"],
            )
        finally:
            await conn.close()
        return SubjectCase("heavy subject", {Ident.PERSON_ID: str(HEAVY)},
                           records={"insured_person": 1, "file_access_log": n})  # fmt: skip


def _accesses(n: int) -> Iterator[tuple[object, ...]]:
    for i in range(n):
        yield 10**12 + i, HEAVY, T0 + dt.timedelta(seconds=i), "advisor", f"EMP-{i % 97}", "customer call"
