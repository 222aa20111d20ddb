"""The five source systems' schemas, exactly as world.md §1 describes them, with the indexes they'd have.

The systems belong to other teams and already exist in production; tests, the demo and the
benchmark create them with this module. PostgreSQL systems (`policy`, `claims`) get tables,
primary keys, the one declared foreign key (`policy.subscriber_id → insured_person`) and an index
on every identifier a connector looks up. MongoDB systems (`crm`, `recruitment`, `analytics`) get
ordinary ascending indexes on the same (no text indexes: a connector matches by equality, or with
an anchored `{"$regex": …, "$options": "i"}`, never a bare regex).

Both functions are idempotent: running them on an existing schema changes nothing.
"""

from dataclasses import dataclass
from typing import Any

import asyncpg
from pymongo.asynchronous.database import AsyncDatabase

MongoDatabase = AsyncDatabase[dict[str, Any]]
"""A PyMongo asyncio database holding plain documents."""

POSTGRES_SYSTEMS = ("policy", "claims")
MONGO_SYSTEMS = ("crm", "recruitment", "analytics")
SYSTEMS = POSTGRES_SYSTEMS + MONGO_SYSTEMS


@dataclass(frozen=True)
class Table:
    """A PostgreSQL table: columns in order (name, SQL type and constraints) and its secondary indexes."""

    name: str
    columns: tuple[tuple[str, str], ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def ddl(self) -> list[str]:
        """CREATE TABLE and CREATE INDEX statements, each IF NOT EXISTS."""
        lines = [f"{name} {sql_type}" for name, sql_type in self.columns]
        if self.primary_key:
            lines.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        body = ",\n  ".join(lines)
        statements = [f"CREATE TABLE IF NOT EXISTS {self.name} (\n  {body}\n)"]
        for columns in self.indexes:
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {self.name}_{'_'.join(columns)}_idx ON {self.name} ({', '.join(columns)})"
            )
        return statements


_TS = "timestamptz NOT NULL"
_TEXT = "text NOT NULL"

POSTGRES_TABLES: dict[str, tuple[Table, ...]] = {
    # Parents before children: the loader copies tables in this order.
    "policy": (
        Table(
            "insured_person",
            (
                ("person_id", "uuid NOT NULL"),
                ("nir", "text NULL"),
                ("last_name", _TEXT),
                ("first_name", _TEXT),
                ("birth_date", "date NOT NULL"),
                ("email", "text NULL"),
                ("phone", "text NULL"),
                ("address_line", _TEXT),
                ("postal_code", _TEXT),
                ("city", _TEXT),
                ("country", _TEXT),
                ("marital_status", _TEXT),
                ("occupation", _TEXT),
                ("employer_name", _TEXT),
                ("created_at", _TS),
                ("updated_at", _TS),
            ),
            primary_key=("person_id",),
            indexes=(("email",), ("nir",), ("phone",), ("last_name", "first_name", "birth_date")),
        ),
        Table(
            "policy",
            (
                ("policy_number", _TEXT),
                ("product_code", _TEXT),
                ("status", _TEXT),
                ("start_date", "date NOT NULL"),
                ("end_date", "date NULL"),
                ("subscriber_id", "uuid NOT NULL REFERENCES insured_person (person_id)"),
                ("expatriation_country", "text NULL"),
                ("premium_cents", "bigint NOT NULL"),
            ),
            primary_key=("policy_number",),
            indexes=(("subscriber_id",),),
        ),
        Table(
            "policy_member",
            (("policy_number", _TEXT), ("person_id", "uuid NOT NULL"), ("role", _TEXT)),
            primary_key=("policy_number", "person_id"),
            indexes=(("person_id",),),
        ),
        Table(
            "bank_account",
            (
                ("person_id", "uuid NOT NULL"),
                ("iban", _TEXT),
                ("bic", _TEXT),
                ("holder_name", _TEXT),
                ("valid_from", "date NOT NULL"),
            ),
            indexes=(("person_id",),),
        ),
        Table(
            "premium_payment",
            (
                ("payment_id", "bigint NOT NULL"),
                ("policy_number", _TEXT),
                ("due_date", "date NOT NULL"),
                ("amount_cents", "bigint NOT NULL"),
                ("status", _TEXT),
                ("paid_at", "timestamptz NULL"),
                ("card_last4", "text NULL"),
            ),
            primary_key=("payment_id",),
            indexes=(("policy_number",),),
        ),
        Table(
            "dunning_event",
            (
                ("id", "bigint NOT NULL"),
                ("policy_number", _TEXT),
                ("occurred_at", _TS),
                ("step", _TEXT),
                ("automated", "boolean NOT NULL"),
            ),
            primary_key=("id",),
            indexes=(("policy_number",),),
        ),
        Table(
            "aml_screening",
            (
                ("id", "bigint NOT NULL"),
                ("person_id", "uuid NOT NULL"),
                ("screened_at", _TS),
                ("pep", "boolean NOT NULL"),
                ("sanctions_hit", "boolean NOT NULL"),
                ("risk_level", _TEXT),
                ("analyst_note", _TEXT),
            ),
            primary_key=("id",),
            indexes=(("person_id",),),
        ),
        Table(
            "file_access_log",
            (
                ("id", "bigint NOT NULL"),
                ("person_id", "uuid NOT NULL"),
                ("accessed_at", _TS),
                ("accessor_role", _TEXT),
                ("accessor_id", _TEXT),
                ("purpose", _TEXT),
            ),
            primary_key=("id",),
            indexes=(("person_id",),),
        ),
    ),
    "claims": (
        Table(
            "claim",
            (
                ("claim_id", _TEXT),
                ("policy_number", _TEXT),
                ("patient_person_id", "uuid NOT NULL"),
                ("submitted_by_person_id", "uuid NOT NULL"),
                ("care_category", _TEXT),
                ("care_date", "date NOT NULL"),
                ("provider_name", _TEXT),
                ("diagnosis_code", "text NULL"),
                ("amount_claimed_cents", "bigint NOT NULL"),
                ("amount_reimbursed_cents", "bigint NOT NULL"),
                ("status", _TEXT),
                ("submitted_at", _TS),
            ),
            primary_key=("claim_id",),
            indexes=(("patient_person_id",), ("submitted_by_person_id",), ("policy_number",)),
        ),
        Table(
            "claim_document",
            (("doc_id", _TEXT), ("claim_id", _TEXT), ("kind", _TEXT), ("filename", _TEXT), ("received_at", _TS)),
            primary_key=("doc_id",),
            indexes=(("claim_id",),),
        ),
        Table(
            "fraud_alert",
            (
                ("alert_id", _TEXT),
                ("claim_id", _TEXT),
                ("person_id", "uuid NOT NULL"),
                ("raised_at", _TS),
                ("rule_code", _TEXT),
                ("status", _TEXT),
                ("closed_at", "timestamptz NULL"),
            ),
            primary_key=("alert_id",),
            indexes=(("person_id",), ("claim_id",)),
        ),
    ),
}


@dataclass(frozen=True)
class MongoIndex:
    """An ascending index on one collection, over one or more fields (arrays are multikey)."""

    collection: str
    keys: tuple[str, ...]

    @property
    def name(self) -> str:
        return "_".join(f"{key}_1" for key in self.keys)


MONGO_COLLECTIONS: dict[str, tuple[str, ...]] = {
    # Parents before children: the loader inserts collections in this order.
    "crm": ("contacts", "interactions", "complaints", "quotes"),
    "recruitment": ("candidates",),
    "analytics": ("visits", "cookie_consents"),
}

MONGO_INDEXES: dict[str, tuple[MongoIndex, ...]] = {
    "crm": (
        MongoIndex("contacts", ("emails",)),
        MongoIndex("contacts", ("phones",)),
        MongoIndex("contacts", ("person_id",)),
        MongoIndex("contacts", ("policy_numbers",)),
        MongoIndex("contacts", ("last_name", "first_name", "birth_date")),
        MongoIndex("interactions", ("contact_id", "occurred_at")),
        MongoIndex("complaints", ("contact_id", "opened_at")),
        MongoIndex("quotes", ("contact_id", "requested_at")),
    ),
    "recruitment": (
        MongoIndex("candidates", ("email",)),
        MongoIndex("candidates", ("phone",)),
        MongoIndex("candidates", ("last_name", "first_name")),
    ),
    "analytics": (
        MongoIndex("visits", ("visitor_id",)),
        MongoIndex("visits", ("user_id",)),
        MongoIndex("cookie_consents", ("visitor_id",)),
        MongoIndex("cookie_consents", ("user_id",)),
    ),
}


def table_names(system: str) -> tuple[str, ...]:
    """The tables (PostgreSQL) or collections (MongoDB) of a system, parents first."""
    if system in MONGO_COLLECTIONS:
        return MONGO_COLLECTIONS[system]
    return tuple(table.name for table in _postgres_tables(system))


def postgres_table(system: str, name: str) -> Table:
    """The table `name` of a PostgreSQL system."""
    for table in _postgres_tables(system):
        if table.name == name:
            return table
    raise ValueError(f"the {system} system has no table {name!r}")


async def create_postgres_schema(conn: asyncpg.Connection, system: str) -> None:
    """Create the tables and indexes of `system` ("policy" or "claims") through an asyncpg connection,
    in one transaction. Existing tables and indexes are left as they are."""
    async with conn.transaction():
        for table in _postgres_tables(system):
            for statement in table.ddl():
                await conn.execute(statement)


async def create_mongo_indexes(db: MongoDatabase, system: str) -> None:
    """Create the indexes of `system` ("crm", "recruitment" or "analytics") in a MongoDB database.
    Creating an index that exists with the same keys and name does nothing."""
    if system not in MONGO_INDEXES:
        raise ValueError(f"unknown MongoDB system {system!r}; expected one of {', '.join(MONGO_SYSTEMS)}")
    for index in MONGO_INDEXES[system]:
        await db[index.collection].create_index([(key, 1) for key in index.keys], name=index.name)


def _postgres_tables(system: str) -> tuple[Table, ...]:
    try:
        return POSTGRES_TABLES[system]
    except KeyError:
        raise ValueError(
            f"unknown PostgreSQL system {system!r}; expected one of {', '.join(POSTGRES_SYSTEMS)}"
        ) from None
