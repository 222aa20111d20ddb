"""The skeleton files, as text with `__NAME__`-style placeholders (no template engine, no data files)."""

_PG_CONNECTOR = '''"""__NAME__: TODO say what the system holds and what for (PostgreSQL `__NAME__`).

Purpose: TODO the processing activity from the privacy policy. The subject is found by e-mail or
person id, or by a phone together with the birth date (a household shares a phone).

What it leaves out, on purpose:
- TODO every table or column never read, and why (a law, another person's data, an employee's identity).

Indexes it expects (equality lookups only): event(person_id), event(lower(email)), event(phone, birth_date).
"""

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from connectors.sdk import Connector, Field, Ident, Query, Record, postgresql, rows
from connectors.sdk import Provenance as P

connector = Connector(
    "__NAME__",
    store=postgresql("__NAME__"),
    accepts=[Ident.EMAIL, Ident.PERSON_ID, (Ident.PHONE, Ident.BIRTH_DATE)],
    discovers=[Ident.PERSON_ID],
)

# TODO one dataset per table returned; every field with its provenance; the activity from the register.
event = connector.dataset("event", activity="policy_management", key="event_id", fields={
    "person_id": Field(P.DERIVED, description="an identifier the insurer assigned"),
    "email": P.PROVIDED, "phone": P.PROVIDED, "birth_date": P.PROVIDED,
    "occurred_at": P.OBSERVED, "kind": P.OBSERVED,
})  # fmt: skip

_EVENTS = "SELECT event_id, person_id, email, phone, birth_date, occurred_at, kind FROM event WHERE "


@event.search
async def find_events(q: Query, db: Any) -> AsyncIterator[Record]:
    """One indexed equality lookup per identifier (or pair), rows streamed by a cursor."""
    lookups: list[tuple[str, tuple[object, ...]]] = [
        *((_EVENTS + "person_id = $1::uuid", (v,)) for v in q.values(Ident.PERSON_ID)),
        *((_EVENTS + "lower(email) = $1", (v,)) for v in q.values(Ident.EMAIL)),
        *((_EVENTS + "phone = $1 AND birth_date = $2", (phone, dt.date.fromisoformat(birth)))
          for phone, birth in q.pairs(Ident.PHONE, Ident.BIRTH_DATE)),
    ]  # fmt: skip
    for sql, args in lookups:
        async for row in rows(db, sql + " ORDER BY event_id", *args):
            yield event.record(row, discovered={Ident.PERSON_ID: row["person_id"]})
'''

_MONGO_CONNECTOR = '''"""__NAME__: TODO say what the system holds and what for (MongoDB `__NAME__`).

Purpose: TODO the processing activity from the privacy policy. The subject is found by e-mail or
person id, or by a phone together with the birth date (a household shares a phone).

What it leaves out, on purpose:
- TODO every collection or field never read, and why (a law, another person's data, an employee's identity).

Indexes it expects (equality lookups only, one query per identifier, never a cross-field `$or`):
events.person_id, events.email, events.(phone, birth_date).
"""

from collections.abc import AsyncIterator
from typing import Any

from connectors.sdk import Connector, Field, Ident, Query, Record, documents, mongodb
from connectors.sdk import Provenance as P

connector = Connector(
    "__NAME__",
    store=mongodb("__NAME__"),
    accepts=[Ident.EMAIL, Ident.PERSON_ID, (Ident.PHONE, Ident.BIRTH_DATE)],
    discovers=[Ident.PERSON_ID],
)

# TODO one dataset per collection returned; every field with its provenance; the activity from the register.
events = connector.dataset("events", activity="policy_management", key="_id", fields={
    "person_id": Field(P.DERIVED, description="an identifier the insurer assigned"),
    "email": P.PROVIDED, "phone": P.PROVIDED, "birth_date": P.PROVIDED,
    "occurred_at": P.OBSERVED, "kind": P.OBSERVED,
})  # fmt: skip

_PROJECTION = {name: 1 for name in events.fields}


@events.search
async def find_events(q: Query, db: Any) -> AsyncIterator[Record]:
    """One indexed equality query per identifier (or pair), documents streamed in batches read ahead."""
    filters: list[dict[str, str]] = [
        *({"person_id": v} for v in q.values(Ident.PERSON_ID)),
        *({"email": v} for v in q.values(Ident.EMAIL)),
        *({"phone": phone, "birth_date": birth} for phone, birth in q.pairs(Ident.PHONE, Ident.BIRTH_DATE)),
    ]
    for query in filters:
        async for doc in documents(db.events, query, _PROJECTION, sort=[("_id", 1)], batch_size=500):
            yield events.record(doc, discovered={Ident.PERSON_ID: doc.get("person_id")})
'''

_TEST_HEAD = '''"""The __NAME__ connector against the conformance kit, on a __STORE_TITLE__ database the kit creates.

The seed is an example shaped like the skeleton's `event` data: a subject, the other member of
his household (same phone, another birth date), a namesake-like stranger, and a heavy subject for
the streaming checks. TODO: seed the system's real schema and data shaped like it (or the
population generator's, connectors.testing.population), and keep every subject case exact.
"""

import datetime as dt
import uuid
from collections.abc import Iterator

__DRIVER_IMPORT__
from __IMPORT_FROM__ import __NAME__
from connectors.sdk import Ident
from connectors.testing.kit import ConformanceSuite, NegativeCase, SeededStore, SubjectCase

SUBJECT, PARTNER, STRANGER, HEAVY = (uuid.UUID(int=n) for n in (1, 2, 3, 4))
HOUSEHOLD_PHONE = "+33600000001"
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
Row = __ROW__


def events(first_id: int, person: uuid.UUID, email: str, phone: str, birth: str, n: int) -> Iterator[Row]:
    """`n` events of one person, numbered from `first_id`."""
    for i in range(n):
        yield __ROW_EXPR__


SEED = [
    *events(1, SUBJECT, "subject@example.org", HOUSEHOLD_PHONE, "1980-01-01", 3),
    *events(100, PARTNER, "partner@example.org", HOUSEHOLD_PHONE, "1982-02-02", 2),
    *events(200, STRANGER, "stranger@example.org", "+33600000009", "1980-01-01", 2),
]


class Test__CLASS__Conformance(ConformanceSuite):
    connector = __NAME__.connector
    subjects = (
        SubjectCase(
            "subject",
            {Ident.PERSON_ID: str(SUBJECT), Ident.EMAIL: "subject@example.org", Ident.PHONE: HOUSEHOLD_PHONE,
             Ident.BIRTH_DATE: "1980-01-01"},
            records={"__DATASET__": __SUBJECT_KEYS__},
        ),
    )  # fmt: skip
    negatives = (
        NegativeCase("shared household phone", {Ident.PHONE: HOUSEHOLD_PHONE}),
        NegativeCase("unknown e-mail", {Ident.EMAIL: "nobody@example.invalid"}),
    )
'''

_PG_TEST_TAIL = '''
    async def seed(self, store: SeededStore) -> None:
        conn = await asyncpg.connect(store.dsn)
        try:
            await conn.execute(SCHEMA)
            await conn.copy_records_to_table("event", records=SEED, columns=COLUMNS)
        finally:
            await conn.close()

    async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
        conn = await asyncpg.connect(store.dsn)
        try:
            rows = events(1_000_000, HEAVY, "heavy@example.org", "+33600000004", "1970-01-01", n)
            await conn.copy_records_to_table("event", records=rows, columns=COLUMNS)
        finally:
            await conn.close()
        return SubjectCase("heavy subject", {Ident.PERSON_ID: str(HEAVY)}, records={"event": n})


COLUMNS = ["event_id", "person_id", "email", "phone", "birth_date", "occurred_at", "kind"]
SCHEMA = """
CREATE TABLE event (event_id bigint PRIMARY KEY, person_id uuid NOT NULL, email text, phone text,
                    birth_date date, occurred_at timestamptz NOT NULL, kind text NOT NULL);
CREATE INDEX ON event (person_id);
CREATE INDEX ON event (lower(email));
CREATE INDEX ON event (phone, birth_date);
"""
'''

_MONGO_TEST_TAIL = """
    async def seed(self, store: SeededStore) -> None:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(store.url)
        try:
            db = client[store.database]
            for index in ("person_id", "email", [("phone", 1), ("birth_date", 1)]):
                await db.events.create_index(index)
            await db.events.insert_many(SEED)
        finally:
            await client.close()

    async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(store.url)
        try:
            batch: list[dict[str, object]] = []
            for document in events(1_000_000, HEAVY, "heavy@example.org", "+33600000004", "1970-01-01", n):
                batch.append(document)
                if len(batch) == 10_000:
                    await client[store.database].events.insert_many(batch)
                    batch = []
            if batch:
                await client[store.database].events.insert_many(batch)
        finally:
            await client.close()
        return SubjectCase("heavy subject", {Ident.PERSON_ID: str(HEAVY)}, records={"events": n})
"""

_PG = {
    "__DRIVER_IMPORT__": "import asyncpg\n",
    "__ROW__": "tuple[object, ...]",
    "__ROW_EXPR__": (
        'first_id + i, person, email, phone, dt.date.fromisoformat(birth), T0 + dt.timedelta(minutes=i), "login"'
    ),
    "__DATASET__": "event",
    "__SUBJECT_KEYS__": '["1", "2", "3"]',
    "__STORE_TITLE__": "PostgreSQL",
}
_MONGO = {
    "__DRIVER_IMPORT__": "from bson import ObjectId\nfrom pymongo import AsyncMongoClient\n",
    "__ROW__": "dict[str, object]",
    "__ROW_EXPR__": (
        '{"_id": ObjectId(f"{first_id + i:024x}"), "person_id": str(person), "email": email, "phone": phone,\n'
        '               "birth_date": birth, "occurred_at": T0 + dt.timedelta(minutes=i), "kind": "login"}'
    ),
    "__DATASET__": "events",
    "__SUBJECT_KEYS__": '[f"{i:024x}" for i in (1, 2, 3)]',
    "__STORE_TITLE__": "MongoDB",
}


def _fill(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def connector_source(name: str, store: str) -> str:
    """The connector module's text."""
    return _fill(_PG_CONNECTOR if store == "postgresql" else _MONGO_CONNECTOR, {"__NAME__": name})


def test_source(name: str, store: str, module: str) -> str:
    """The conformance test module's text; `module` is the connector's dotted import path."""
    package, _, _ = module.rpartition(".")
    import_from = package if package else "."  # a plain module: `from . import x` fails, handled below
    values = dict(_PG if store == "postgresql" else _MONGO)
    values.update({
        "__NAME__": name,
        "__CLASS__": "".join(part.capitalize() for part in name.split("_")),
        "__IMPORT_FROM__": import_from,
    })  # fmt: skip
    text = _fill(_TEST_HEAD, values) + _fill(_PG_TEST_TAIL if store == "postgresql" else _MONGO_TEST_TAIL, values)
    if not package:
        text = text.replace(f"from . import {name}\n", f"import {name}\n")
    return text
