"""The policy connector through the runtime, against real PostgreSQL and a real Tansu broker.

A sealed QueryCommand goes to the command topic; the runtime (run_connectors) answers on the
result topic; the test opens the chunks with the request's key and compares the records with the
exact expected set: the subject's rows, only the fact of the links to the other members (with a
redaction note each), no AML data, no employee identity.
"""

import asyncio
import datetime as dt
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import orjson
import pytest

from connectors import policy
from connectors.runtime import PostgresSource, RuntimeOptions, run_connectors
from connectors.runtime.chunks import MAX_CHUNK_BYTES
from connectors.runtime.messages import identifier_to_proto
from connectors.sdk import REDACTIONS, Ident, Identifier, Query, Record, RequestKind
from dsar.bus.v1 import bus_pb2
from dsar_common import kafka
from dsar_common.sealing import KeyPair, chunk_binding, discovered_binding, open_sealed, query_binding, seal
from dsar_common.settings import Settings
from dsar_common.topics import Topics
from tests.support.local_servers import local_kafka, tansu_settings

pytestmark = pytest.mark.integration

POSTGRES = os.environ.get("DSAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")

SCHEMA = """
CREATE TABLE insured_person (person_id uuid PRIMARY KEY, nir text, last_name text, first_name text,
  birth_date date, email text, phone text, address_line text, postal_code text, city text, country text,
  marital_status text, occupation text, employer_name text, created_at timestamptz, updated_at timestamptz);
CREATE INDEX ON insured_person (lower(email)); CREATE INDEX ON insured_person (nir);
CREATE INDEX ON insured_person (phone); CREATE INDEX ON insured_person (birth_date);
CREATE TABLE policy (policy_number text PRIMARY KEY, product_code text, status text, start_date date,
  end_date date, subscriber_id uuid REFERENCES insured_person, expatriation_country text, premium_cents bigint);
CREATE INDEX ON policy (subscriber_id);
CREATE TABLE policy_member (policy_number text, person_id uuid, role text, PRIMARY KEY (policy_number, person_id));
CREATE INDEX ON policy_member (person_id);
CREATE TABLE bank_account (person_id uuid, iban text, bic text, holder_name text, valid_from date);
CREATE INDEX ON bank_account (person_id);
CREATE TABLE premium_payment (payment_id bigint PRIMARY KEY, policy_number text, due_date date,
  amount_cents bigint, status text, paid_at timestamptz, card_last4 text);
CREATE INDEX ON premium_payment (policy_number);
CREATE TABLE dunning_event (id bigint PRIMARY KEY, policy_number text, occurred_at timestamptz, step text,
  automated boolean);
CREATE INDEX ON dunning_event (policy_number);
CREATE TABLE aml_screening (id bigint PRIMARY KEY, person_id uuid, screened_at timestamptz, pep boolean,
  sanctions_hit boolean, risk_level text, analyst_note text);
CREATE TABLE file_access_log (id bigint PRIMARY KEY, person_id uuid, accessed_at timestamptz,
  accessor_role text, accessor_id text, purpose text);
CREATE INDEX ON file_access_log (person_id);
"""

SUBJECT, SPOUSE, CHILD, OTHER, HEAVY = (uuid.UUID(int=n) for n in (1, 2, 3, 4, 5))
T0 = dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.UTC)
HEAVY_ROWS = 50_000


def person(pid: uuid.UUID, first: str, email: str, nir: str, birth: dt.date, phone: str) -> dict[str, Any]:
    return {
        "person_id": pid, "nir": nir, "last_name": "Martin", "first_name": first, "birth_date": birth,
        "email": email, "phone": phone, "address_line": "1 rue de la Paix", "postal_code": "75002",
        "city": "Paris", "country": "FR", "marital_status": "married", "occupation": "engineer",
        "employer_name": "ACME", "created_at": T0, "updated_at": T0,
    }  # fmt: skip


PEOPLE = [
    person(SUBJECT, "Alice", "Alice.Martin@Example.fr", "285077512345621", dt.date(1985, 7, 12), "+33611111111"),
    person(SPOUSE, "Bob", "bob@example.fr", "184037512345678", dt.date(1984, 3, 1), "+33611111111"),
    person(CHILD, "Chloe", "", "", dt.date(2015, 1, 2), "+33611111111"),
    person(OTHER, "Olga", "olga@example.fr", "290017512345699", dt.date(1990, 1, 1), "+33622222222"),
    person(HEAVY, "Hugo", "hugo@example.fr", "170017512345600", dt.date(1970, 1, 1), "+33633333333"),
]
POLICIES = [  # policy_number, product, status, start, end, subscriber, expatriation, premium
    ("POL1", "HEALTH", "active", dt.date(2020, 1, 1), None, SUBJECT, None, 12_000),
    ("POL2", "EXPAT", "active", dt.date(2021, 6, 1), None, SPOUSE, "SG", 34_000),
    ("POL3", "HEALTH", "ended", dt.date(2019, 1, 1), dt.date(2022, 1, 1), OTHER, None, 9_000),
]
MEMBERS = [
    ("POL1", SUBJECT, "subscriber"), ("POL1", SPOUSE, "spouse"), ("POL1", CHILD, "child"),
    ("POL2", SPOUSE, "subscriber"), ("POL2", SUBJECT, "beneficiary"), ("POL3", OTHER, "subscriber"),
]  # fmt: skip
BANK = [
    (SUBJECT, "FR7612345678901234567890123", "BNPAFRPP", "Alice Martin", dt.date(2020, 1, 1)),
    (SPOUSE, "FR7699999999999999999999999", "SOGEFRPP", "Bob Martin", dt.date(2021, 1, 1)),
]
PAYMENTS = [
    (1, "POL1", dt.date(2024, 1, 1), 12_000, "paid", T0, "4242"),
    (2, "POL1", dt.date(2024, 2, 1), 12_000, "unpaid", None, None),
    (3, "POL2", dt.date(2024, 1, 1), 34_000, "paid", T0, "1111"),
    (4, "POL3", dt.date(2024, 1, 1), 9_000, "paid", T0, "2222"),
]
DUNNING = [(1, "POL1", T0, "reminder", True), (2, "POL2", T0, "formal_notice", False)]
AML = [(1, SUBJECT, T0, True, False, "high", "AML-SECRET-NOTE")]
ACCESSES = [
    (1, SUBJECT, T0, "claims_handler", "EMPLOYEE-42", "claim review"),
    (2, SUBJECT, T0 + dt.timedelta(days=1), "advisor", "EMPLOYEE-43", "customer call"),
    (3, SPOUSE, T0, "advisor", "EMPLOYEE-44", "customer call"),
]


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    """A Tansu broker of this module's own, in memory; its bootstrap address."""
    with local_kafka() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
async def policy_database() -> AsyncIterator[str]:
    """A database of its own with the policy schema and the people above; dropped at the end."""
    name = f"policy_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(f"{POSTGRES}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        db = await asyncpg.connect(f"{POSTGRES}/{name}")
        try:
            await db.execute(SCHEMA)
            await db.copy_records_to_table(
                "insured_person", records=[tuple(p.values()) for p in PEOPLE], columns=list(PEOPLE[0])
            )
            await db.copy_records_to_table(
                "policy",
                records=POLICIES,
                columns=["policy_number", "product_code", "status", "start_date", "end_date", "subscriber_id",
                         "expatriation_country", "premium_cents"],
            )  # fmt: skip
            await db.copy_records_to_table("policy_member", records=MEMBERS)
            await db.copy_records_to_table("bank_account", records=BANK)
            await db.copy_records_to_table("premium_payment", records=PAYMENTS)
            await db.copy_records_to_table("dunning_event", records=DUNNING)
            await db.copy_records_to_table("aml_screening", records=AML)
            heavy = [
                (100 + i, HEAVY, T0 + dt.timedelta(seconds=i), "advisor", f"EMP-{i}", f"consultation {i}")
                for i in range(HEAVY_ROWS)
            ]
            await db.copy_records_to_table("file_access_log", records=ACCESSES + heavy)
        finally:
            await db.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture(scope="module")
async def runtime(broker: str, policy_database: str) -> AsyncIterator[tuple[Settings, KeyPair]]:
    """The runtime running the policy connector; stopped gracefully at the end."""
    system = KeyPair.generate()
    settings = Settings(
        connector_key=system.private,
        source_postgres_url=POSTGRES,
        topic_prefix=f"t{secrets.token_hex(4)}",
        heartbeat_seconds=1,
        kafka=tansu_settings(broker),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_connectors(
            settings,
            ["policy"],
            databases={"policy": policy_database},
            options=RuntimeOptions(grace_seconds=5),
            stop=stop,
            handle_signals=False,
        )
    )
    yield settings, system
    stop.set()
    await asyncio.wait_for(task, 30)


async def ask(
    settings: Settings, system: KeyPair, request_id: str, kind: int, identifiers: list[Identifier]
) -> tuple[list[bus_pb2.ResultEvent], KeyPair]:
    """Send a sealed QueryCommand and collect the request's result events up to its Completion."""
    topics = Topics(settings.topic_prefix)
    request = KeyPair.generate()
    query = bus_pb2.Query(kind=kind, identifiers=[identifier_to_proto(i) for i in identifiers])  # type: ignore[arg-type]
    command = bus_pb2.QueryCommand(
        request_id=request_id,
        system="policy",
        attempt=1,
        result_public_key=request.public,
        key_id=system.key_id,
        sealed_query=seal(query.SerializeToString(), system.public, query_binding(request_id, "policy", 1)),
    )
    command.deadline.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(minutes=2))
    await kafka.ensure_topics(settings.kafka, [topics.commands("policy"), topics.results])
    consumer = kafka.consumer(settings.kafka, topics.results, group_id=None)
    producer = kafka.producer(settings.kafka)
    await consumer.start()
    await producer.start()
    events: list[bus_pb2.ResultEvent] = []
    try:
        await producer.send_and_wait(
            topics.commands("policy"), bus_pb2.Command(query=command).SerializeToString(), key=request_id.encode()
        )
        async with asyncio.timeout(120):
            async for message in consumer:
                if message.key != request_id.encode():
                    continue
                event = bus_pb2.ResultEvent.FromString(message.value)
                events.append(event)
                if event.HasField("completion"):
                    return events, request
    finally:
        await consumer.stop()
        await producer.stop()
    raise AssertionError("unreachable")


def opened(events: list[bus_pb2.ResultEvent], request: KeyPair, request_id: str) -> list[tuple[bytes, Record]]:
    out = []
    for event in events:
        if event.HasField("chunk"):
            chunk = event.chunk
            plain = open_sealed(
                chunk.sealed_records, request.private, chunk_binding(request_id, "policy", 1, chunk.sequence)
            )
            assert len(plain) <= MAX_CHUNK_BYTES
            for r in bus_pb2.RecordBatch.FromString(plain).records:
                out.append((r.fields_json, Record(r.dataset, r.key, orjson.loads(r.fields_json))))
    return out


def expected(dataset: str, key: str, fields: dict[str, Any]) -> Record:
    return Record(dataset, key, orjson.loads(Record(dataset, key, fields).fields_json()))


def note(key: str) -> Record:
    reason = "another person on the same policy (GDPR art. 15(4)): only the link is shown"
    return expected(REDACTIONS, f"policy_member/{key}", {
        "dataset": "policy_member", "record_key": key, "fields_removed": ["insured_person", "person_id"],
        "reason": reason})  # fmt: skip


async def test_access_returns_the_subjects_data_and_nothing_else(runtime: tuple[Settings, KeyPair]) -> None:
    settings, system = runtime
    email = Identifier(Ident.EMAIL, "alice.martin@example.fr")
    events, request = await ask(settings, system, "req-access", bus_pb2.REQUEST_KIND_ACCESS, [email])

    completion = events[-1].completion
    assert completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED, completion.error
    assert not any(e.HasField("progress") for e in events)  # a search this short reports no progress
    records = opened(events, request, "req-access")
    s = str(SUBJECT)
    subject = {k: v for k, v in PEOPLE[0].items()}
    assert [r for _, r in records] == [
        expected("insured_person", s, subject),
        expected("policy", "POL1", {"policy_number": "POL1", "product_code": "HEALTH", "status": "active",
                 "start_date": "2020-01-01", "end_date": None, "expatriation_country": None,
                 "premium_cents": 12_000, "subject_is_subscriber": True}),
        expected("policy", "POL2", {"policy_number": "POL2", "product_code": "EXPAT", "status": "active",
                 "start_date": "2021-06-01", "end_date": None, "expatriation_country": "SG",
                 "premium_cents": 34_000, "subject_is_subscriber": False}),
        expected("policy_member", "POL1/child-1", {"policy_number": "POL1", "role": "child", "member": "other"}),
        expected("policy_member", "POL1/spouse-1", {"policy_number": "POL1", "role": "spouse", "member": "other"}),
        expected("policy_member", f"POL1/{s}",
                 {"policy_number": "POL1", "role": "subscriber", "person_id": s, "member": "subject"}),
        expected("policy_member", f"POL2/{s}",
                 {"policy_number": "POL2", "role": "beneficiary", "person_id": s, "member": "subject"}),
        expected("policy_member", "POL2/subscriber-1",
                 {"policy_number": "POL2", "role": "subscriber", "member": "other"}),
        expected("bank_account", f"{s}/FR7612345678901234567890123/2020-01-01", {"iban": "FR7612345678901234567890123",
                 "bic": "BNPAFRPP", "holder_name": "Alice Martin", "valid_from": "2020-01-01"}),
        expected("premium_payment", "1", {"policy_number": "POL1", "due_date": "2024-01-01", "amount_cents": 12_000,
                 "status": "paid", "paid_at": T0, "card_last4": "4242"}),
        expected("premium_payment", "2", {"policy_number": "POL1", "due_date": "2024-02-01", "amount_cents": 12_000,
                 "status": "unpaid", "paid_at": None, "card_last4": None}),
        expected("dunning_event", "1", {"policy_number": "POL1", "occurred_at": T0, "step": "reminder",
                 "automated": True}),
        expected("file_access_log", "1", {"accessed_at": T0, "accessor_role": "claims_handler",
                 "purpose": "claim review"}),
        expected("file_access_log", "2", {"accessed_at": T0 + dt.timedelta(days=1), "accessor_role": "advisor",
                 "purpose": "customer call"}),
        note("POL1/child-1"),
        note("POL1/spouse-1"),
        note("POL2/subscriber-1"),
    ]  # fmt: skip
    everything = b"".join(raw + r.key.encode() for raw, r in records)
    for secret in (str(SPOUSE), str(CHILD), "AML-SECRET-NOTE", "EMPLOYEE-42", "aml", "FR7699999999"):
        assert secret.encode() not in everything
    assert (completion.record_count, completion.chunk_count) == (len(records), 1)

    found = bus_pb2.Discovered.FromString(
        open_sealed(completion.sealed_discovered, request.private, discovered_binding("req-access", "policy", 1))
    )
    assert {(i.kind, i.value, i.source) for i in found.identifiers} == {
        (bus_pb2.IDENTIFIER_KIND_PERSON_ID, s, "policy"),
        (bus_pb2.IDENTIFIER_KIND_NIR, "285077512345621", "policy"),
    }


async def test_portability_by_phone_and_birth_date_keeps_provided_and_observed_data(
    runtime: tuple[Settings, KeyPair],
) -> None:
    settings, system = runtime
    identifiers = [Identifier(Ident.PHONE, "+33611111111"), Identifier(Ident.BIRTH_DATE, "1985-07-12")]
    events, request = await ask(settings, system, "req-port", bus_pb2.REQUEST_KIND_PORTABILITY, identifiers)
    assert events[-1].completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED
    records = [r for _, r in opened(events, request, "req-port")]
    by_dataset: dict[str, list[Record]] = {}
    for r in records:
        by_dataset.setdefault(r.dataset, []).append(r)
    assert list(by_dataset) == [
        "insured_person",
        "policy",
        "policy_member",
        "bank_account",
        "premium_payment",
        "dunning_event",
        REDACTIONS,
    ]  # fmt: skip  (file_access_log holds derived fields only)
    (insured,) = by_dataset["insured_person"]
    assert insured.fields["first_name"] == "Alice" and "person_id" not in insured.fields
    assert all("premium_cents" not in r.fields for r in by_dataset["policy"])
    assert by_dataset["dunning_event"][0].fields == {
        "policy_number": "POL1",
        "occurred_at": "2024-03-01T09:30:00+00:00",
    }
    assert all("person_id" not in r.fields for r in by_dataset["policy_member"])


async def test_a_large_answer_streams_in_chunks_under_one_mebibyte(runtime: tuple[Settings, KeyPair]) -> None:
    settings, system = runtime
    started = time.perf_counter()
    person_id = Identifier(Ident.PERSON_ID, str(HEAVY))
    events, request = await ask(settings, system, "req-heavy", bus_pb2.REQUEST_KIND_ACCESS, [person_id])
    elapsed = time.perf_counter() - started
    completion = events[-1].completion
    assert completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED, completion.error
    records = opened(events, request, "req-heavy")
    assert len(records) == completion.record_count == HEAVY_ROWS + 1
    assert completion.chunk_count == sum(e.HasField("chunk") for e in events) > 1
    assert [r.key for _, r in records[1:]] == [str(100 + i) for i in range(HEAVY_ROWS)]
    print(f"\n{HEAVY_ROWS + 1} records, {completion.byte_count} bytes, {completion.chunk_count} chunks "
          f"in {elapsed:.2f}s: {(HEAVY_ROWS + 1) / elapsed:,.0f} records/s")  # fmt: skip


class Counting:
    """A lent connection that counts the statements a search sends with `fetch` (the id lookups)."""

    def __init__(self, db: Any, sent: list[str]) -> None:
        self._db, self._sent = db, sent

    async def fetch(self, sql: str, *args: object) -> Any:
        self._sent.append(sql)
        return await self._db.fetch(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def test_an_attempt_looks_the_subject_up_once_in_one_statement(policy_database: str) -> None:
    asked = [
        Identifier(Ident.EMAIL, "alice.martin@example.fr"),
        Identifier(Ident.NIR, "285077512345621"),
        Identifier(Ident.PERSON_ID, str(SUBJECT)),
        Identifier(Ident.PHONE, "+33611111111"),
        Identifier(Ident.BIRTH_DATE, "1985-07-12"),
        Identifier(Ident.FULL_NAME, "Martin\x1fAlice"),
        Identifier(Ident.POLICY_NUMBER, "POL1"),
    ]
    source = PostgresSource(POSTGRES, policy_database, max_size=2)

    async def attempt(query: Query) -> tuple[list[str], set[tuple[str, str]]]:
        sent: list[str] = []
        keys: set[tuple[str, str]] = set()
        async with source.lend() as db:  # as the runtime runs them: one Query and one snapshot for every search
            for dataset in policy.connector.datasets:
                keys |= {(r.dataset, r.key) async for r in dataset.searcher(query, Counting(db, sent))}
        return sent, keys

    try:
        sent, together = await attempt(policy.connector.restrict(Query.of(RequestKind.ACCESS, asked)))
        assert len(sent) == 1 and sent[0].count(" UNION ") == 5  # six lookups, one statement, once
        assert ("insured_person", str(SUBJECT)) in together
        for one in ([asked[0]], [asked[1]], [asked[2]], asked[3:5], [asked[4], asked[5]], [asked[4], asked[6]]):
            again, alone = await attempt(policy.connector.restrict(Query.of(RequestKind.ACCESS, one)))
            assert len(again) == 1  # a new Query (a new attempt) looks the subject up again
            assert alone == together  # each lookup alone finds Alice, and only her
        spouse = Query.of(RequestKind.ACCESS, [Identifier(Ident.PHONE, "+33611111111"),
                                               Identifier(Ident.BIRTH_DATE, "1984-03-01")])  # fmt: skip
        assert ("insured_person", str(SPOUSE)) in (await attempt(spouse))[1]
        nobody, found = await attempt(Query.of(RequestKind.ACCESS, [Identifier(Ident.EMAIL, "nobody@example.fr")]))
        assert (len(nobody), found) == (1, set())
    finally:
        await source.aclose()
