"""The crm connector against a real MongoDB-protocol server (SecantusDB) holding the generated population.

Each test runs one attempt of the runtime (`connectors.runtime.attempt.Attempt`: restriction to the
accepted identifiers, portability filter, de-duplication, discoveries, sealed chunks) with the
connector module imported directly and the runtime's MongoDB source (naive datetimes in UTC) on a server of
this module's own. Only the result topic is in memory: Kafka is covered by test_policy and the
integration tests. The records are compared with the exact set derived from
`population.subject_rows("crm")`.
"""

from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from pymongo import AsyncMongoClient

from connectors import crm
from connectors.runtime.attempt import Attempt
from connectors.runtime.messages import QueryOrder, kind_from_proto
from connectors.runtime.sources import MongoSource
from connectors.sdk import Ident, Identifier, Query, Record, RequestKind
from connectors.testing.kit import MemoryProducer
from connectors.testing.population import Population, generate, load_population
from dsar.bus.v1 import bus_pb2
from dsar_common.sealing import KeyPair, chunk_binding, discovered_binding, open_sealed
from dsar_common.topics import Topics
from tests.support.local_servers import local_mongodb

pytestmark = pytest.mark.integration

DATABASE = "crm_test"
NEVER_EXPORTED = {"_id", "contact_id", "agent_id"}  # keys and links; the agent who wrote an interaction


@dataclass
class Answer:
    records: list[Record]
    discovered: set[tuple[Ident, str]]

    def of(self, dataset: str) -> dict[str, dict[str, Any]]:
        return {r.key: dict(r.fields) for r in self.records if r.dataset == dataset}

    @property
    def all(self) -> dict[tuple[str, str], dict[str, Any]]:
        return {(r.dataset, r.key): dict(r.fields) for r in self.records}


async def ask(source: MongoSource, kind: RequestKind, identifiers: Iterable[Identifier]) -> Answer:
    """Run one attempt of the crm connector and open what it sent."""
    request = KeyPair.generate()
    order = QueryOrder("req", "crm", 1, request.public, None, Query.of(kind, identifiers))
    outbox = MemoryProducer()
    await Attempt(crm.connector, order, source=source, producer=outbox, topics=Topics("t"), instance_id="t").run()
    completion = outbox.events[-1].completion
    assert completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED, completion.error
    records = []
    for event in outbox.events:
        if event.HasField("chunk"):
            binding = chunk_binding("req", "crm", 1, event.chunk.sequence)
            batch = bus_pb2.RecordBatch.FromString(open_sealed(event.chunk.sealed_records, request.private, binding))
            records += [Record(r.dataset, r.key, orjson.loads(r.fields_json)) for r in batch.records]
    assert completion.record_count == len(records)
    discovered: set[tuple[Ident, str]] = set()
    if completion.sealed_discovered:
        plain = open_sealed(completion.sealed_discovered, request.private, discovered_binding("req", "crm", 1))
        for found in bus_pb2.Discovered.FromString(plain).identifiers:
            assert found.source == "crm"
            ident = kind_from_proto(found.kind)
            assert ident is not None
            discovered.add((ident, found.value))
    return Answer(records, discovered)


def expected(population: Population) -> dict[tuple[str, str], dict[str, Any]]:
    """The subject's documents, as JSON. Deliberate differences from the stored documents: `_id`
    becomes the record key; `contact_id` (a link) and `agent_id` (an employee) are not exported."""
    return {
        (collection, str(doc["_id"])): orjson.loads(
            Record(collection, "", {k: v for k, v in doc.items() if k not in NEVER_EXPORTED}).fields_json())
        for collection, doc in population.subject_rows("crm")
    }  # fmt: skip


def contact_of(population: Population, person_id: str) -> str:
    """The `_id` of the contact holding `person_id`."""
    (found,) = [str(d["_id"]) for c, d in population.rows("crm") if c == "contacts" and d["person_id"] == person_id]
    return found


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(seed=3)


@pytest.fixture(scope="module")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB server of this module's own; its URL."""
    with local_mongodb(tmp_path_factory.mktemp("secantus")) as url:
        yield url


@pytest.fixture(scope="module")
async def source(population: Population, mongo_url: str) -> AsyncIterator[MongoSource]:
    """The population's crm collections, with their indexes, read through the runtime's MongoDB source."""
    loader: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        await load_population(population, {}, {"crm": loader[DATABASE]})
    finally:
        await loader.close()
    source = MongoSource(mongo_url, DATABASE, max_size=4)
    yield source
    await source.aclose()


DESIGNATIONS = ["email", "person_id", "phone+birth_date", "policy_number+birth_date", "full_name+birth_date",
                "full_name in capitals+birth_date"]  # fmt: skip


def designations(population: Population) -> dict[str, list[Identifier]]:
    demo, birth = population.demo, Identifier(Ident.BIRTH_DATE, population.demo.birth_date.isoformat())
    return {
        "email": [Identifier(Ident.EMAIL, demo.email)],
        "person_id": [Identifier(Ident.PERSON_ID, demo.person_id)],
        "phone+birth_date": [Identifier(Ident.PHONE, demo.phone), birth],
        "policy_number+birth_date": [Identifier(Ident.POLICY_NUMBER, demo.policy_number), birth],
        "full_name+birth_date": [Identifier.full_name(demo.last_name, demo.first_name), birth],
        "full_name in capitals+birth_date": [Identifier.full_name(demo.last_name.upper(), demo.first_name), birth],
    }


@pytest.mark.parametrize("designation", DESIGNATIONS)
async def test_every_designation_finds_exactly_the_subjects_documents(
    population: Population, source: MongoSource, designation: str
) -> None:
    demo = population.demo
    answer = await ask(source, RequestKind.ACCESS, designations(population)[designation])
    assert answer.all == expected(population)
    assert len(answer.all) == len(answer.records)  # nothing twice
    for collection, count in demo.expected_counts["crm"].items():
        assert len(answer.of(collection)) == count, collection
    assert list(answer.of("contacts")) == [demo.contact_id]
    assert b"AG-" not in orjson.dumps([r.fields for r in answer.records])  # no agent identifier
    asked = {(i.kind, i.value) for i in designations(population)[designation]}
    assert answer.discovered == {(Ident.PERSON_ID, demo.person_id), (Ident.EMAIL, demo.email)} - asked


async def test_the_household_phone_finds_nobody_alone_and_only_the_matching_birth_date(
    population: Population, source: MongoSource
) -> None:
    demo, spouse = population.demo, population.spouse
    phone = Identifier(Ident.PHONE, demo.phone)
    assert (await ask(source, RequestKind.ACCESS, [phone])).records == []
    alone = [phone, Identifier(Ident.POLICY_NUMBER, demo.policy_number), Identifier.full_name("Moreau", "Julien")]
    assert (await ask(source, RequestKind.ACCESS, alone)).records == []
    spouse_born = Identifier(Ident.BIRTH_DATE, spouse.birth_date.isoformat())
    answer = await ask(source, RequestKind.ACCESS, [phone, spouse_born])
    assert list(answer.of("contacts")) == [contact_of(population, spouse.person_id)] != [demo.contact_id]
    assert demo.email.encode() not in orjson.dumps([r.fields for r in answer.records])


async def test_the_namesake_is_told_apart_by_birth_date(population: Population, source: MongoSource) -> None:
    demo, namesake = population.demo, population.namesake
    assert (namesake.last_name, namesake.first_name) == (demo.last_name, demo.first_name)
    name = Identifier.full_name(demo.last_name, demo.first_name)
    mine = await ask(source, RequestKind.ACCESS, [name, Identifier(Ident.BIRTH_DATE, demo.birth_date.isoformat())])
    assert list(mine.of("contacts")) == [demo.contact_id]
    theirs = await ask(
        source, RequestKind.ACCESS, [name, Identifier(Ident.BIRTH_DATE, namesake.birth_date.isoformat())]
    )
    assert list(theirs.of("contacts")) == [contact_of(population, namesake.person_id)]
    assert not set(theirs.all) & set(mine.all)


async def test_portability_keeps_provided_and_observed_fields(population: Population, source: MongoSource) -> None:
    answer = await ask(source, RequestKind.PORTABILITY, [Identifier(Ident.EMAIL, population.demo.email)])
    assert answer.discovered == {(Ident.PERSON_ID, population.demo.person_id)}
    full = expected(population)
    for (collection, key), fields in full.items():
        dropped = {"contacts": {"person_id"}, "complaints": {"resolution"}}.get(collection, set())
        assert answer.all[collection, key] == {k: v for k, v in fields.items() if k not in dropped}
    assert len(answer.all) == len(full)


async def test_an_attempt_looks_the_contacts_up_once_for_its_four_searches(
    population: Population, source: MongoSource, monkeypatch: pytest.MonkeyPatch
) -> None:
    look_ups: list[Query] = []
    look_up = crm._look_up_contact_ids

    async def counted(q: Query, db: Any) -> list[Any]:
        look_ups.append(q)
        return await look_up(q, db)

    monkeypatch.setattr(crm, "_look_up_contact_ids", counted)
    everything = [i for identifiers in designations(population).values() for i in identifiers]
    answer = await ask(source, RequestKind.ACCESS, everything)
    assert answer.all == expected(population)
    assert len(look_ups) == 1  # contacts, interactions, complaints and quotes share it
    await ask(source, RequestKind.ACCESS, designations(population)["email"])
    assert len(look_ups) == 2 and look_ups[1] is not look_ups[0]  # a new attempt looks them up again
