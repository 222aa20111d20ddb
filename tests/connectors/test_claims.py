"""The claims connector against a real PostgreSQL holding the generated population.

Each test runs one attempt of the runtime (`connectors.runtime.attempt.Attempt`: restriction to the
accepted identifiers, portability filter, de-duplication, redaction notes last, sealed chunks)
with the connector module imported directly and a real asyncpg pool on a database of this module's
own. Only the result topic is in memory: Kafka is covered by test_policy and the integration tests.
The records are compared with the exact set derived here from `population.subject_rows("claims")`.
"""

import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest

from connectors import claims
from connectors.runtime.attempt import Attempt
from connectors.runtime.messages import QueryOrder
from connectors.runtime.sources import PostgresSource
from connectors.sdk import REDACTIONS, Ident, Identifier, Query, Record, RequestKind
from connectors.testing.kit import MemoryProducer
from connectors.testing.population import Population, generate, load_population
from dsar.bus.v1 import bus_pb2
from dsar_common.sealing import KeyPair, chunk_binding, open_sealed
from dsar_common.topics import Topics

pytestmark = pytest.mark.integration

POSTGRES = os.environ.get("DSAR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
# The other person's health data, removed from a claim for care someone else received (world.md §3).
OTHER_CARE = {"patient_person_id", "care_category", "care_date", "provider_name", "diagnosis_code",
              "amount_claimed_cents"}  # fmt: skip


@dataclass
class Answer:
    records: list[Record]
    completion: bus_pb2.Completion

    def of(self, dataset: str) -> dict[str, dict[str, Any]]:
        return {r.key: dict(r.fields) for r in self.records if r.dataset == dataset}


async def ask(source: PostgresSource, kind: RequestKind, identifiers: Iterable[Identifier]) -> Answer:
    """Run one attempt of the claims connector and open what it sent."""
    request = KeyPair.generate()
    order = QueryOrder("req", "claims", 1, request.public, None, Query.of(kind, identifiers))
    outbox = MemoryProducer()
    attempt = Attempt(claims.connector, order, source=source, producer=outbox, topics=Topics("t"), instance_id="t")
    await attempt.run()
    completion = outbox.events[-1].completion
    assert completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED, completion.error
    assert not completion.sealed_discovered  # claims discovers nothing
    records = []
    for event in outbox.events:
        if event.HasField("chunk"):
            binding = chunk_binding("req", "claims", 1, event.chunk.sequence)
            batch = bus_pb2.RecordBatch.FromString(open_sealed(event.chunk.sealed_records, request.private, binding))
            records += [Record(r.dataset, r.key, orjson.loads(r.fields_json)) for r in batch.records]
    assert completion.record_count == len(records)
    return Answer(records, completion)


def as_json(fields: dict[str, Any]) -> dict[str, Any]:
    return dict(orjson.loads(Record("x", "x", fields).fields_json()))


def expected(population: Population) -> dict[tuple[str, str], dict[str, Any]]:
    """What an access request must return: the subject's rows, minus what is not his to see."""
    subject = population.demo.person_id
    out: dict[tuple[str, str], dict[str, Any]] = {}
    own_care: dict[str, bool] = {}

    def note(dataset: str, key: str, removed: Iterable[str]) -> None:
        out[REDACTIONS, f"{dataset}/{key}"] = {"dataset": dataset, "record_key": key, "fields_removed": sorted(removed)}

    for table, row in population.subject_rows("claims"):
        if table == "claim":
            patient, submitter = str(row["patient_person_id"]) == subject, str(row["submitted_by_person_id"]) == subject
            own_care[row["claim_id"]] = patient
            fields = {**row, "subject_role": {(True, True): "patient_and_submitter", (True, False): "patient",
                                              (False, True): "submitter"}[patient, submitter]}  # fmt: skip
            # Deliberate differences from the row: someone else's care loses its health data, and a
            # claim someone else submitted loses the submitter's identity; a note says so.
            if not patient:
                fields = {k: v for k, v in fields.items() if k not in OTHER_CARE}
                note("claim", row["claim_id"], OTHER_CARE)
            elif not submitter:
                note("claim", row["claim_id"], ["submitted_by_person_id"])
            if not submitter:
                del fields["submitted_by_person_id"]
            out["claim", row["claim_id"]] = as_json(fields)
        elif table == "claim_document":
            fields = {k: v for k, v in row.items() if k != "doc_id"}
            if not own_care[row["claim_id"]]:  # kind and filename (with the care date) reveal the care
                fields = {k: v for k, v in fields.items() if k not in ("kind", "filename")}
                note("claim_document", row["doc_id"], ["kind", "filename"])
            out["claim_document", row["doc_id"]] = as_json(fields)
        else:  # fraud_alert: person_id is the subject's, the key the alert's
            fields = {k: v for k, v in row.items() if k not in ("alert_id", "person_id")}
            if not own_care[row["claim_id"]]:
                del fields["rule_code"]
                note("fraud_alert", row["alert_id"], ["rule_code"])
            out["fraud_alert", row["alert_id"]] = as_json(fields)
    return out


@pytest.fixture(scope="module")
def population() -> Population:
    """Seed 3: the subject has fraud alerts on claims for his children's care too, so every kind of
    redaction happens, and the namesake has claims of his own."""
    return generate(seed=3)


@pytest.fixture(scope="module")
async def source(population: Population) -> AsyncIterator[PostgresSource]:
    """A `claims_test_<tag>` database loaded with the population, read through the runtime's pool."""
    name = f"claims_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(f"{POSTGRES}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    source = PostgresSource(POSTGRES, name, max_size=2)
    try:
        await load_population(population, {"claims": f"{POSTGRES}/{name}"}, {})
        yield source
    finally:
        await source.aclose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_access_by_person_id_returns_exactly_the_subjects_claims(
    population: Population, source: PostgresSource
) -> None:
    demo = population.demo
    answer = await ask(source, RequestKind.ACCESS, [Identifier(Ident.PERSON_ID, demo.person_id)])

    notes = {(REDACTIONS, r.key): {k: v for k, v in r.fields.items() if k != "reason"} for r in answer.records
             if r.dataset == REDACTIONS}  # fmt: skip
    got = {(r.dataset, r.key): dict(r.fields) for r in answer.records if r.dataset != REDACTIONS} | notes
    assert got == expected(population)
    assert len(got) == len(answer.records)  # nothing twice
    removed = {tuple(n["fields_removed"]) for n in notes.values()}
    assert removed == {tuple(sorted(OTHER_CARE)), ("submitted_by_person_id",), ("filename", "kind"), ("rule_code",)}
    for table, count in demo.expected_counts["claims"].items():
        assert len(answer.of(table)) == count, table
    datasets = [r.dataset for r in answer.records]  # each dataset contiguous, notes last
    assert datasets == sorted(datasets, key=["claim", "claim_document", "fraud_alert", REDACTIONS].index)
    roles = [c["subject_role"] for c in answer.of("claim").values()]
    assert (roles.count("patient_and_submitter"), roles.count("submitter"), roles.count("patient")) == (
        demo.claims_for_self, demo.claims_for_relatives, demo.claims_by_relatives)  # fmt: skip


async def test_relatives_care_appears_only_as_redacted_submissions(
    population: Population, source: PostgresSource
) -> None:
    demo, subject = population.demo, population.demo.person_id
    answer = await ask(source, RequestKind.ACCESS, [Identifier(Ident.PERSON_ID, subject)])
    returned = answer.of("claim")
    relatives = {demo.spouse_person_id, *demo.children_person_ids}
    for table, row in population.rows("claims"):
        if table != "claim" or str(row["patient_person_id"]) not in relatives:
            continue
        if str(row["submitted_by_person_id"]) != subject:  # the spouse's own claims: none of his
            assert row["claim_id"] not in returned
            continue
        fields = returned[row["claim_id"]]
        assert fields["subject_role"] == "submitter" and not OTHER_CARE & set(fields)
        assert set(fields) == {"claim_id", "policy_number", "submitted_by_person_id", "submitted_at", "status",
                               "amount_reimbursed_cents", "subject_role"}  # fmt: skip
    by_spouse = [c for c in returned.values() if c["subject_role"] == "patient"]
    assert len(by_spouse) == demo.claims_by_relatives and all("submitted_by_person_id" not in c for c in by_spouse)
    assert all(c["care_category"] and c["care_date"] for c in by_spouse)  # his own care: all of it
    everything = orjson.dumps([[r.key, r.fields] for r in answer.records])
    for other in relatives:
        assert other.encode() not in everything
    for claim_id, fields in returned.items():
        if fields["subject_role"] == "submitter":
            docs = [d for d in answer.of("claim_document").values() if d["claim_id"] == claim_id]
            assert docs and all(set(d) == {"claim_id", "received_at"} for d in docs)


async def test_portability_leaves_out_fraud_alerts_and_derived_fields(
    population: Population, source: PostgresSource
) -> None:
    answer = await ask(source, RequestKind.PORTABILITY, [Identifier(Ident.PERSON_ID, population.demo.person_id)])
    assert {r.dataset for r in answer.records} == {"claim", "claim_document", REDACTIONS}
    assert all(not r.key.startswith("fraud_alert/") for r in answer.records if r.dataset == REDACTIONS)
    claims_found = answer.of("claim")
    assert len(claims_found) == population.demo.expected_counts["claims"]["claim"]
    derived = {"amount_reimbursed_cents", "patient_person_id", "submitted_by_person_id"}
    assert all(not derived & set(c) and "submitted_at" in c for c in claims_found.values())


async def test_other_identifiers_and_other_people_find_none_of_the_subjects_claims(
    population: Population, source: PostgresSource
) -> None:
    demo = population.demo
    # Claims knows nobody by e-mail, phone or name: the person id policy discovers is the way in.
    unknown = [Identifier(Ident.EMAIL, demo.email), Identifier(Ident.PHONE, demo.phone),
               Identifier(Ident.BIRTH_DATE, demo.birth_date.isoformat()), Identifier(Ident.PERSON_ID, "not-a-uuid"),
               Identifier(Ident.PERSON_ID, str(uuid.UUID(int=0)))]  # fmt: skip
    assert (await ask(source, RequestKind.ACCESS, unknown)).records == []
    namesake = await ask(source, RequestKind.ACCESS, [Identifier(Ident.PERSON_ID, population.namesake.person_id)])
    assert namesake.records and not set(namesake.of("claim")) & set((await ask(
        source, RequestKind.ACCESS, [Identifier(Ident.PERSON_ID, demo.person_id)])).of("claim"))  # fmt: skip
    assert demo.person_id.encode() not in orjson.dumps([r.fields for r in namesake.records])
