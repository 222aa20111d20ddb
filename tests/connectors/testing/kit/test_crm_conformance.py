"""The crm connector against the conformance kit, on a MongoDB-protocol server with the generated population.

The expected records are derived from the population's documents, independently of the connector:
a person's contact and the interactions, complaints and quotes that point to it (`contact_id`).
The demo subject's come from `population.subject_rows("crm")`; the rest of the cast's from
`population.rows("crm")`, with the identifiers their own contact holds: his wife (same phone, same
policy numbers, another birth date), the namesake (same name, another birth date) and a prospect
(no person id, no birth date: only her e-mail finds her; her phone and name alone find nothing).

The server is the one the kit picks: `DSAR_TEST_MONGODB_URL`, or an embedded SecantusDB.
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from _population_cases import (  # this folder is on sys.path (pytest prepend import mode)
    DEMO,
    MONGO_STREAM_RECORDS,
    POPULATION,
    WORLD_NEGATIVES,
    Row,
    demo_rows,
    full_name,
    insert_batches,
    keys,
    mongo_database,
    rows,
)
from bson import ObjectId

from connectors import crm
from connectors.sdk import Ident
from connectors.testing.kit import ConformanceSuite, Expected, SeededStore, SubjectCase
from connectors.testing.population import create_mongo_indexes, load_population

pytestmark = pytest.mark.integration

ACTIVITY = ("interactions", "complaints", "quotes")
HEAVY_PERSON = "00000000-0000-4000-8000-00000000c0de"
HEAVY_CONTACT = ObjectId("65a0c0de0000000000000000")
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def contact_records(contact_id: ObjectId) -> Expected:
    """A contact and the documents that point to it, from the population."""
    linked = {name: keys(rows(POPULATION, "crm", name, lambda d: d["contact_id"] == contact_id)) for name in ACTIVITY}
    return {"contacts": [str(contact_id)], **linked}


def contact_case(label: str, contact: Row) -> SubjectCase:
    """A case with every identifier the contact holds, and its records."""
    known: dict[Ident, Any] = {
        Ident.EMAIL: contact["emails"],
        Ident.PHONE: contact["phones"],  # the household's
        Ident.POLICY_NUMBER: contact["policy_numbers"],  # the family's
        Ident.FULL_NAME: full_name(contact["last_name"], contact["first_name"]),
        Ident.PERSON_ID: contact["person_id"],
        Ident.BIRTH_DATE: contact["birth_date"],
    }
    identifiers: dict[Ident, str | list[str]] = {kind: value for kind, value in known.items() if value}
    return SubjectCase(label, identifiers, records=contact_records(contact["_id"]))


def the_contact(where: Any) -> Row:
    """The first contact of the population that `where` accepts."""
    return rows(POPULATION, "crm", "contacts", where)[0]


DEMO_EXPECTED: Expected = {name: keys(demo_rows("crm", name)) for name in ("contacts", *ACTIVITY)}


class TestCrmConformance(ConformanceSuite):
    connector = crm.connector
    subjects = (
        SubjectCase(
            "demo subject",
            {
                Ident.EMAIL: DEMO.email,
                Ident.PERSON_ID: DEMO.person_id,
                Ident.PHONE: DEMO.phone,  # shared with his wife and children
                Ident.POLICY_NUMBER: DEMO.policy_numbers,  # both shared with his family
                Ident.FULL_NAME: full_name(DEMO.last_name, DEMO.first_name),  # shared with the namesake
                Ident.BIRTH_DATE: DEMO.birth_date.isoformat(),
                Ident.NIR: DEMO.nir,  # crm knows no NIR
            },
            records=DEMO_EXPECTED,
        ),
        contact_case("spouse", the_contact(lambda c: c["person_id"] == POPULATION.spouse.person_id)),
        contact_case("namesake", the_contact(lambda c: c["person_id"] == POPULATION.namesake.person_id)),
        contact_case("prospect", the_contact(lambda c: c["person_id"] is None and c["birth_date"] is None)),
    )
    negatives = WORLD_NEGATIVES
    stream_records = MONGO_STREAM_RECORDS  # not 100,000: SecantusDB inserts are slow (see _population_cases)

    async def seed(self, store: SeededStore) -> None:
        async with mongo_database(store) as db:
            await load_population(POPULATION, {}, {"crm": db})

    async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
        async with mongo_database(store) as db:
            await create_mongo_indexes(db, "crm")
            await db.contacts.insert_one({
                "_id": HEAVY_CONTACT, "person_id": HEAVY_PERSON, "emails": ["heavy@example.org"],
                "phones": ["+33600000005"], "first_name": "Henri", "last_name": "Lourd", "birth_date": "1960-01-01",
                "policy_numbers": [], "source": "web", "broker": None,
                "marketing": {"email_opt_in": False, "sms_opt_in": False, "updated_at": T0},
                "created_at": T0, "updated_at": T0,
            })  # fmt: skip
            await insert_batches(db.interactions, _interactions(n))
        return SubjectCase("heavy subject", {Ident.PERSON_ID: HEAVY_PERSON},
                           records={"contacts": 1, "interactions": n})  # fmt: skip


def _interactions(n: int) -> Iterator[Row]:
    """`n` phone calls of the heavy subject's, each with a short note."""
    for i in range(n):
        yield {"_id": ObjectId(), "contact_id": HEAVY_CONTACT, "channel": "phone",
               "occurred_at": T0 + dt.timedelta(minutes=i), "subject": "Question sur un remboursement",
               "notes": "Délai de traitement expliqué.", "agent_id": f"AG-{100 + i % 900}"}  # fmt: skip
