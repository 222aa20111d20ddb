"""The analytics connector through the runtime, against a real SecantusDB and a real Tansu broker.

A population whose demo subject has 3,000 visits (about 30,000 page views, several chunks) is
loaded into a SecantusDB of this module's own, with one visit added: the subject's browser while
his wife was logged in. Each export runs one runtime `Attempt` of the connector (the API below
the entry points, which takes Connector objects) with a real MongoDB source and a real Kafka
producer, on topics of its own; the test reads the result topic, opens the sealed chunks and
compares the records with the exact expected set, built from `population.subject_rows`.
Speed against a plain motor read is measured by the benchmark (`dsar bench`), not here.
"""

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from connectors import analytics
from connectors.runtime.attempt import Attempt
from connectors.runtime.messages import QueryOrder, kind_from_proto
from connectors.runtime.sources import MongoSource
from connectors.sdk import Ident, Identifier, Query, Record, RequestKind
from connectors.testing.population import Population, PopulationSizes, generate, load_population
from dsar.bus.v1 import bus_pb2
from dsar_common import kafka
from dsar_common.sealing import KeyPair, chunk_binding, discovered_binding, open_sealed
from dsar_common.settings import KafkaSettings
from dsar_common.topics import Topics
from tests.support.local_servers import local_kafka, local_mongodb, tansu_settings

pytestmark = pytest.mark.integration

DATABASE = "analytics_test"
ACCESS, PORTABILITY = RequestKind.ACCESS, RequestKind.PORTABILITY
SHARED_VISIT_ID = ObjectId("65a0c0ffee00000000000001")  # the subject's cookie, his wife logged in


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
    population = generate(seed=11, sizes=PopulationSizes(demo_visits=3_000, pages_per_visit=10))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_url)
    try:
        await load_population(population, {}, {"analytics": client[DATABASE]})
        at = dt.datetime(2025, 6, 1, 20, 0, tzinfo=dt.UTC)
        await client[DATABASE].visits.insert_one({
            "_id": SHARED_VISIT_ID, "visitor_id": population.demo.visitor_id,
            "user_id": population.spouse.person_id, "ip": "192.0.2.77", "user_agent": "Mozilla/5.0",
            "site": "personal_space", "started_at": at,
            "pages": [{"path": "/espace-client/remboursements", "at": at, "load_ms": 300}]})  # fmt: skip
    finally:
        await client.close()
    return population


@dataclass
class Export:
    """What one attempt sent: its completion, its records and what it discovered."""

    completion: bus_pb2.Completion
    records: list[Record]
    discovered: set[tuple[Ident | None, str]]
    seconds: float  # the attempt's run: search, encoding, sealing, sending to the broker

    def of(self, dataset: str) -> list[Record]:
        return [r for r in self.records if r.dataset == dataset]


class Exporter:
    """Runs attempts of the analytics connector and reads back what they sent."""

    def __init__(self, settings: KafkaSettings, source: MongoSource, producer: Any) -> None:
        self.settings, self.source, self.producer = settings, source, producer

    async def __call__(self, kind: RequestKind, identifiers: Sequence[Identifier]) -> Export:
        topics, request, request_id = Topics(f"t{secrets.token_hex(4)}"), KeyPair.generate(), secrets.token_hex(8)
        await kafka.ensure_topics(self.settings, [topics.results], partitions=1)
        order = QueryOrder(request_id, "analytics", 1, request.public, None, Query.of(kind, identifiers))
        started = time.perf_counter()
        await Attempt(analytics.connector, order, source=self.source, producer=self.producer, topics=topics,
                      instance_id="test").run()  # fmt: skip
        seconds = time.perf_counter() - started
        consumer = kafka.consumer(self.settings, topics.results, group_id=None)
        await consumer.start()
        records: list[Record] = []
        try:
            async with asyncio.timeout(120):
                async for message in consumer:
                    event = bus_pb2.ResultEvent.FromString(message.value)
                    if event.HasField("chunk"):
                        binding = chunk_binding(request_id, "analytics", 1, event.chunk.sequence)
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
                                discovered_binding(request_id, "analytics", 1))  # fmt: skip
            discovered = {(kind_from_proto(i.kind), i.value) for i in bus_pb2.Discovered.FromString(plain).identifiers}
        return Export(completion, records, discovered, seconds)


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


def expected(population: Population, keep: Callable[[dict[str, Any]], bool]) -> dict[tuple[str, str], Record]:
    """The demo subject's rows that `keep` selects, as records come out of a chunk, by (dataset, key).

    `subject_rows` holds every row with his cookie or his user id. The export leaves out, on
    purpose, the rows with his cookie and someone else's user id; the population has none, and the
    one this module adds (SHARED_VISIT_ID) is not in `subject_rows`, so no row needs removing."""
    out = {}
    for table, row in population.subject_rows("analytics"):
        if keep(row):
            key, fields = str(row["_id"]), {name: value for name, value in row.items() if name != "_id"}
            out[table, key] = Record(table, key, orjson.loads(Record(table, key, fields).fields_json()))
    return out


def by_key(found: Export) -> dict[tuple[str, str], Record]:
    """The records by (dataset, key), each dataset's records together and no key twice."""
    datasets = [r.dataset for r in found.records]
    assert datasets == sorted(datasets, key=["visits", "cookie_consents"].index)
    records = {(r.dataset, r.key): r for r in found.records}
    assert len(records) == len(found.records)
    return records


def identifiers(population: Population, *kinds: Ident) -> list[Identifier]:
    demo = population.demo
    values = {Ident.PERSON_ID: demo.person_id, Ident.VISITOR_ID: demo.visitor_id}
    return [Identifier(kind, values[kind]) for kind in kinds]


async def test_person_id_and_cookie_find_exactly_the_subjects_visits_and_consents(
    export: Exporter, population: Population
) -> None:
    demo = population.demo
    found = await export(ACCESS, identifiers(population, Ident.PERSON_ID, Ident.VISITOR_ID))
    assert found.completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED, found.completion.error
    records = by_key(found)
    assert records == expected(population, lambda row: True)
    counts = demo.expected_counts["analytics"]
    assert len(found.of("visits")) == counts["visits"] == demo.visits_logged_in + demo.visits_anonymous == 3_000
    assert len(found.of("cookie_consents")) == counts["cookie_consents"] == 2
    assert sum(len(r.fields["pages"]) for r in found.of("visits")) == demo.page_views
    assert found.completion.record_count == len(records) and found.completion.chunk_count > 1
    assert ("visits", str(SHARED_VISIT_ID)) not in records  # his browser, but his wife's session
    cookies = {r.fields["visitor_id"] for r in found.records}
    assert cookies == {demo.visitor_id} and population.anonymous_visitor.visitor_id not in cookies
    assert found.discovered == set()  # his cookie was asked already


async def test_a_person_id_follows_his_own_cookie_to_his_anonymous_visits(
    export: Exporter, population: Population
) -> None:
    demo = population.demo
    found = await export(ACCESS, identifiers(population, Ident.PERSON_ID))
    assert by_key(found) == expected(population, lambda row: True)
    assert len(found.of("visits")) == demo.visits_logged_in + demo.visits_anonymous
    assert found.discovered == {(Ident.VISITOR_ID, demo.visitor_id)}


async def test_a_cookie_finds_its_anonymous_visits_only(export: Exporter, population: Population) -> None:
    demo = population.demo
    found = await export(ACCESS, identifiers(population, Ident.VISITOR_ID))
    assert by_key(found) == expected(population, lambda row: row["user_id"] is None)
    assert len(found.of("visits")) == demo.visits_anonymous
    assert found.discovered == set()  # an anonymous visit reveals no one

    anonymous = population.anonymous_visitor
    theirs = await export(ACCESS, [Identifier(Ident.VISITOR_ID, anonymous.visitor_id)])
    counts = anonymous.expected_counts["analytics"]
    assert (len(theirs.of("visits")), len(theirs.of("cookie_consents"))) == (
        counts["visits"],
        counts["cookie_consents"],
    )
    assert {r.fields["visitor_id"] for r in theirs.records} == {anonymous.visitor_id}


async def test_portability_keeps_what_was_observed_and_provided(export: Exporter, population: Population) -> None:
    found = await export(PORTABILITY, identifiers(population, Ident.VISITOR_ID))
    assert found.completion.status == bus_pb2.COMPLETION_STATUS_COMPLETED
    full = expected(population, lambda row: row["user_id"] is None)
    assert by_key(found) == {
        key: Record(r.dataset, r.key, {k: v for k, v in r.fields.items() if k != "user_id"}) for key, r in full.items()
    }
    (visit, *_) = found.of("visits")
    assert set(visit.fields) == {"visitor_id", "ip", "user_agent", "site", "started_at", "pages"}


class Spy:
    """A lent database whose collections record the `distinct` calls made on them."""

    def __init__(self, db: Any, calls: list[str]) -> None:
        self.name, self._db, self._calls = db.name, db, calls

    def __getitem__(self, collection: str) -> Any:
        spy = self

        class Collection:
            def find(self, *args: Any, **kwargs: Any) -> Any:
                return spy._db[collection].find(*args, **kwargs)

            async def distinct(self, *args: Any) -> Any:
                spy._calls.append(collection)
                return await spy._db[collection].distinct(*args)

        return Collection()


async def test_consents_reuse_the_cookies_the_visits_search_of_the_attempt_read(
    export: Exporter, population: Population
) -> None:
    async def attempt(query: Query, *, visits_read: int | None = None) -> tuple[list[str], list[Record]]:
        calls: list[str] = []
        async with export.source.lend() as db:
            visits = analytics.visits.searcher(query, Spy(db, calls))
            async for _ in visits:
                visits_read = None if visits_read is None else visits_read - 1
                if visits_read == 0:
                    break
            await visits.aclose()  # type: ignore[attr-defined]
            consents = [r async for r in analytics.cookie_consents.searcher(query, Spy(db, calls))]
        return calls, consents

    asked = analytics.connector.restrict(Query.of(ACCESS, identifiers(population, Ident.PERSON_ID)))
    calls, consents = await attempt(asked)
    assert calls == ["cookie_consents"]  # the visits search looks at consents; consents reuse its cookies
    counts = population.demo.expected_counts["analytics"]["cookie_consents"]
    assert len(consents) == counts == 2 and {r.fields["visitor_id"] for r in consents} == {population.demo.visitor_id}

    partly, same = await attempt(analytics.connector.restrict(asked), visits_read=10)
    assert partly == ["visits"] and same == consents  # the visits search stopped early: consents ask again
    kept = asked.memo.get((analytics._LOGGED_IN_COOKIES, DATABASE, "visits"))  # what the first attempt's visits read
    async with export.source.lend() as db:
        distinct = await analytics.cookies_seen_elsewhere(Query(asked.kind, asked.identifiers), db, "cookie_consents")
    assert kept is not None and set(kept) == distinct == {population.demo.visitor_id}  # as `distinct` finds
