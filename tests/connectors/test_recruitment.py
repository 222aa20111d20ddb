"""The recruitment connector through the runtime, against a real SecantusDB and a real Tansu broker.

The population (connectors.testing.population) is loaded into a SecantusDB of this module's own.
Each export runs one runtime `Attempt` of the connector (the API below the entry points, which
take Connector objects) with a real MongoDB source and a real Kafka producer, on topics of its
own; the test reads the result topic, opens the sealed chunks and compares the records with the
exact expected set, built from `population.subject_rows("recruitment")`.
"""

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from pymongo import AsyncMongoClient

from connectors import recruitment
from connectors.runtime.attempt import Attempt
from connectors.runtime.messages import QueryOrder, kind_from_proto
from connectors.runtime.sources import MongoSource
from connectors.sdk import Ident, Identifier, Query, Record, RequestKind
from connectors.testing.population import Population, generate, load_population
from dsar.bus.v1 import bus_pb2
from dsar_common import kafka
from dsar_common.sealing import KeyPair, chunk_binding, discovered_binding, open_sealed
from dsar_common.settings import KafkaSettings
from dsar_common.topics import Topics
from tests.support.local_servers import local_kafka, local_mongodb, tansu_settings

pytestmark = pytest.mark.integration

DATABASE = "recruitment_test"
ACCESS, PORTABILITY = RequestKind.ACCESS, RequestKind.PORTABILITY


@pytest.fixture(scope="module")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SecantusDB server of this module's own; its URL."""
    with local_mongodb(tmp_path_factory.mktemp("secantus")) as url:
        yield url


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    """A Tansu broker of this module's own, in memory; its bootstrap address."""
    with local_kafka() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
async def population(mongo_url: str) -> Population:
    population = generate(seed=11)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        await load_population(population, {}, {"recruitment": client[DATABASE]})
    finally:
        await client.close()
    return population


@dataclass
class Export:
    """What one attempt sent: its completion, its records and what it discovered."""

    completion: bus_pb2.Completion
    records: list[Record]
    discovered: set[tuple[Ident | None, str]]

    def of(self, dataset: str) -> list[Record]:
        return [r for r in self.records if r.dataset == dataset]


class Exporter:
    """Runs attempts of the recruitment connector and reads back what they sent."""

    def __init__(self, settings: KafkaSettings, source: MongoSource, producer: Any) -> None:
        self.settings, self.source, self.producer = settings, source, producer

    async def __call__(self, kind: RequestKind, identifiers: Sequence[Identifier]) -> Export:
        topics, request, request_id = Topics(f"t{secrets.token_hex(4)}"), KeyPair.generate(), secrets.token_hex(8)
        await kafka.ensure_topics(self.settings, [topics.results], partitions=1)
        order = QueryOrder(request_id, "recruitment", 1, request.public, None, Query.of(kind, identifiers))
        await Attempt(recruitment.connector, order, source=self.source, producer=self.producer, topics=topics,
                      instance_id="test").run()  # fmt: skip
        consumer = kafka.consumer(self.settings, topics.results, group_id=None)
        await consumer.start()
        records: list[Record] = []
        try:
            async with asyncio.timeout(120):
                async for message in consumer:
                    event = bus_pb2.ResultEvent.FromString(message.value)
                    if event.HasField("chunk"):
                        binding = chunk_binding(request_id, "recruitment", 1, event.chunk.sequence)
                        batch = bus_pb2.RecordBatch.FromString(open_sealed(event.chunk.sealed_records, request.private,
                                                                           binding))  # fmt: skip
                        records += [Record(r.dataset, r.key, orjson.loads(r.fields_json)) for r in batch.records]
                    elif event.HasField("completion"):
                        completion = event.completion
                        break
        finally:
            await consumer.stop()
        discovered: set[tuple[Ident | None, str]] = set()
        if completion.sealed_discovered:
            plain = open_sealed(completion.sealed_discovered, request.private,
                                discovered_binding(request_id, "recruitment", 1))  # fmt: skip
            discovered = {(kind_from_proto(i.kind), i.value) for i in bus_pb2.Discovered.FromString(plain).identifiers}
        return Export(completion, records, discovered)


@pytest.fixture(scope="module")
async def export(mongo_url: str, broker: str, population: Population) -> AsyncIterator[Exporter]:
    settings = tansu_settings(broker)
    source = MongoSource(mongo_url, DATABASE, 4)
    producer = kafka.producer(settings)
    await producer.start()
    try:
        yield Exporter(settings, source, producer)
    finally:
        await producer.stop()
        await source.aclose()


def json_record(dataset: str, key: str, fields: dict[str, Any]) -> Record:
    """A record as it comes out of a chunk: its fields through JSON."""
    return Record(dataset, key, orjson.loads(Record(dataset, key, fields).fields_json()))


def expected_records(population: Population, candidate: str | None = None) -> list[Record]:
    """The exact records of a candidate's file (the demo subject's by default): the file itself,
    then one record per application. They are the rows of `subject_rows`, with two deliberate
    differences: `_id` is exported as `candidate_id`, and `applications` becomes its own dataset."""
    if candidate is None:
        rows = [row for _, row in population.subject_rows("recruitment")]
    else:
        rows = [row for _, row in population.rows("recruitment") if str(row["_id"]) == candidate]
    files, applications = [], []
    for row in rows:
        candidate_id = str(row["_id"])
        fields = {name: value for name, value in row.items() if name not in ("_id", "applications")}
        files.append(json_record("candidates", candidate_id, {"candidate_id": candidate_id, **fields}))
        for application in row["applications"]:
            key = f"{candidate_id}/{application['job_ref']}/{application['applied_at'].isoformat()}"
            applications.append(json_record("applications", key, {"candidate_id": candidate_id, **application}))
    return files + applications


async def test_every_strong_identifier_finds_the_subjects_file_and_nothing_else(
    export: Exporter, population: Population
) -> None:
    demo = population.demo
    expected = expected_records(population)
    assert [r.dataset for r in expected] == ["candidates"] + ["applications"] * (len(expected) - 1)
    assert len(expected) - 1 >= 1 and population.demo.expected_counts["recruitment"]["candidates"] == 1

    by_email = await export(ACCESS, [Identifier(Ident.EMAIL, demo.email)])
    by_id = await export(ACCESS, [Identifier(Ident.CANDIDATE_ID, demo.candidate_id)])
    by_both = await export(ACCESS, [Identifier(Ident.EMAIL, demo.email),
                                    Identifier(Ident.CANDIDATE_ID, demo.candidate_id)])  # fmt: skip
    for found in (by_email, by_id, by_both):
        assert found.completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED, found.completion.error
        assert found.records == expected  # once each, although both identifiers match the file
        assert found.completion.record_count == len(expected)

    assert by_email.discovered == {(Ident.CANDIDATE_ID, demo.candidate_id)}
    assert by_id.discovered == by_both.discovered == set()  # the runtime reports only what was not asked

    former = population.former_candidate
    everything = b"".join(orjson.dumps(r.fields) + r.key.encode() for r in by_both.records)
    for secret in (former.candidate_id, former.email, former.phone, former.last_name):
        assert secret.encode() not in everything


async def test_the_former_candidates_file_says_it_came_from_an_agency(export: Exporter, population: Population) -> None:
    former = population.former_candidate
    found = await export(ACCESS, [Identifier(Ident.EMAIL, former.email)])
    assert found.records == expected_records(population, former.candidate_id)
    (file,) = found.of("candidates")
    assert file.fields["source"] == "agency" and file.fields["agency_name"]
    assert len(found.of("applications")) == 2  # she applied twice (the population's cast)
    fields = recruitment.candidates.fields
    assert "recruitment firm" in fields["source"].description and fields["agency_name"].description


async def test_portability_drops_the_recruiters_notes_and_assessments(export: Exporter, population: Population) -> None:
    found = await export(PORTABILITY, [Identifier(Ident.EMAIL, population.demo.email)])
    assert found.completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED
    derived = {"candidate_id", "interview_notes", "recruiter_assessment"}
    assert found.records == [
        Record(r.dataset, r.key, {k: v for k, v in r.fields.items() if k not in derived})
        for r in expected_records(population)
    ]
    (application, *_) = found.of("applications")
    assert set(application.fields) == {"job_ref", "applied_at", "status"}


async def test_a_phone_is_not_accepted_alone_nor_narrows_an_email(export: Exporter, population: Population) -> None:
    demo = population.demo
    alone = await export(ACCESS, [Identifier(Ident.PHONE, demo.phone)])
    assert alone.completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED and alone.records == []
    with_email = await export(ACCESS, [Identifier(Ident.PHONE, "+33100000000"), Identifier(Ident.EMAIL, demo.email)])
    assert with_email.records == expected_records(population)


async def test_a_malformed_candidate_id_fails_without_revealing_it(export: Exporter) -> None:
    found = await export(ACCESS, [Identifier(Ident.CANDIDATE_ID, "not-an-object-id")])
    assert found.completion.status == bus_pb2.COMPLETION_STATUS_FAILED and not found.completion.retryable
    assert "not-an-object-id" not in found.completion.error and found.records == []
