"""The analytics connector against the conformance kit, on a MongoDB-protocol server with the generated population.

The expected records are derived from the population's documents, independently of the connector,
by the rules of its docstring:
- by person id: the visits and consents made logged in as the person (`user_id`), and the anonymous
  ones (`user_id` null) made with a cookie seen on those;
- by cookie: the anonymous visits and consents made with it, and nothing logged in (the cookie does
  not say whose account was used on that browser).
So a cookie legitimately finds a subset of what the person id finds. The kit expects every accepted
identifier to find the same records on its own, so the demo subject is two cases: by person id (all
of `population.subject_rows("analytics")`) and by his cookie (the anonymous part of them). The
anonymous visitor is found by cookie, the wife and the namesake by person id (`population.rows("analytics")`).

The server is the one the kit picks: `DSAR_TEST_MONGODB_URL`, or an embedded SecantusDB.
"""

import datetime as dt
from collections.abc import Iterator

import pytest
from _population_cases import (  # this folder is on sys.path (pytest prepend import mode)
    DEMO,
    MONGO_STREAM_RECORDS,
    NAMESAKE,
    POPULATION,
    SPOUSE,
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

from connectors import analytics
from connectors.sdk import Ident
from connectors.testing.kit import ConformanceSuite, Expected, NegativeCase, SeededStore, SubjectCase
from connectors.testing.population import create_mongo_indexes, load_population

pytestmark = pytest.mark.integration

COLLECTIONS = ("visits", "cookie_consents")
HEAVY_PERSON = "00000000-0000-4000-8000-0000000a0a0a"
HEAVY_COOKIE = "00000000-0000-4000-8000-00000000c00c"
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def by_person_id(person_id: str) -> Expected:
    """What the person id finds: logged-in documents, and the anonymous ones of the cookies seen on them."""
    found: dict[str, list[str]] = {}
    for collection in COLLECTIONS:
        documents = rows(POPULATION, "analytics", collection)
        cookies = {d["visitor_id"] for d in documents if d["user_id"] == person_id}
        found[collection] = keys(d for d in documents if d["user_id"] == person_id
                                 or (d["user_id"] is None and d["visitor_id"] in cookies))  # fmt: skip
    return found


def by_cookie(visitor_id: str) -> dict[str, list[str]]:
    """What a cookie alone finds: the anonymous documents made with it."""
    return {collection: keys(rows(POPULATION, "analytics", collection,
                                  lambda d: d["visitor_id"] == visitor_id and d["user_id"] is None))
            for collection in COLLECTIONS}  # fmt: skip


DEMO_EXPECTED: Expected = {collection: keys(demo_rows("analytics", collection)) for collection in COLLECTIONS}
DEMO_ANONYMOUS: Expected = {collection: keys(d for d in demo_rows("analytics", collection) if d["user_id"] is None)
                            for collection in COLLECTIONS}  # fmt: skip
ANONYMOUS = POPULATION.anonymous_visitor
ANONYMOUS_EXPECTED = by_cookie(ANONYMOUS.visitor_id)
assert {c: len(k) for c, k in ANONYMOUS_EXPECTED.items()} == ANONYMOUS.expected_counts["analytics"]


class TestAnalyticsConformance(ConformanceSuite):
    connector = analytics.connector
    subjects = (
        SubjectCase(
            "demo subject by person id",
            {
                Ident.PERSON_ID: DEMO.person_id,
                Ident.EMAIL: DEMO.email,  # analytics knows no e-mail
                Ident.PHONE: DEMO.phone,  # shared with his wife and children
                Ident.POLICY_NUMBER: DEMO.policy_number,  # shared with his family
                Ident.FULL_NAME: full_name(DEMO.last_name, DEMO.first_name),  # shared with the namesake
                Ident.BIRTH_DATE: DEMO.birth_date.isoformat(),
            },
            records=DEMO_EXPECTED,
        ),
        SubjectCase("demo subject's cookie", {Ident.VISITOR_ID: DEMO.visitor_id}, records=DEMO_ANONYMOUS),
        SubjectCase("anonymous visitor", {Ident.VISITOR_ID: ANONYMOUS.visitor_id}, records=ANONYMOUS_EXPECTED),
        SubjectCase("spouse", {Ident.PERSON_ID: SPOUSE.person_id}, records=by_person_id(SPOUSE.person_id)),
        # He only ever browsed anonymously: his person id finds none of his cookie's visits.
        SubjectCase(
            "namesake, never logged in", {Ident.PERSON_ID: NAMESAKE.person_id}, records=by_person_id(NAMESAKE.person_id)
        ),
    )
    negatives = (
        *WORLD_NEGATIVES,
        NegativeCase("unknown cookie", {Ident.VISITOR_ID: "00000000-0000-4000-8000-000000000000"}),
        NegativeCase("unknown person id", {Ident.PERSON_ID: "00000000-0000-4000-8000-000000000000"}),
    )
    stream_records = MONGO_STREAM_RECORDS  # not 100,000: SecantusDB inserts are slow (see _population_cases)

    async def seed(self, store: SeededStore) -> None:
        async with mongo_database(store) as db:
            await load_population(POPULATION, {}, {"analytics": db})

    async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
        async with mongo_database(store) as db:
            await create_mongo_indexes(db, "analytics")
            await insert_batches(db.visits, _visits(n))
        return SubjectCase("heavy visitor", {Ident.PERSON_ID: HEAVY_PERSON}, records={"visits": n})


def _visits(n: int) -> Iterator[Row]:
    """`n` visits to the personal space, logged in, each with six pages (about 700 bytes a visit)."""
    for i in range(n):
        started = T0 + dt.timedelta(minutes=i)
        pages = [{"path": "/espace-client/remboursements", "at": started + dt.timedelta(seconds=20 * p),
                  "load_ms": 140 + p} for p in range(6)]  # fmt: skip
        yield {"_id": ObjectId(), "visitor_id": HEAVY_COOKIE, "user_id": HEAVY_PERSON, "ip": "203.0.113.7",
               "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
               "site": "personal_space", "started_at": started, "pages": pages}  # fmt: skip
