"""What the replica tests check after the fact: archives against the population, commands on the bus.

Archives are downloaded and compared with what the population says about their subject; the
command topics are read back to count the QueryCommands sent for each attempt:

    report = await compare_archives(stubs, identity, {request_id: (subject, ["claims"])})
    assert not report.differences, report.differences
    assert all(n == 1 for n in (await queries_on_the_bus(settings, ["claims"])).values())
"""

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyrage
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.testing.population import Population
from connectors.testing.population.schemas import table_names
from dsar.bus.v1 import bus_pb2
from dsar.v1 import dsar_pb2_grpc
from dsar_common.settings import Settings
from dsar_common.topics import Topics
from tests.support.archive import compare, fetch_archive
from tests.support.broker import all_messages

# The policy datasets the population can be compared with as the connector exports them (the
# fault tests' choice: policy_member and aml_screening rows are shown otherwise, or not at all).
POLICY_DATASETS = {"insured_person", "policy", "bank_account", "premium_payment", "dunning_event", "file_access_log"}


@dataclass(frozen=True)
class ArchiveReport:
    """Records compared over every archive, and what differed."""

    records: int
    differences: list[str]


async def compare_archives(
    stubs: Sequence[dsar_pb2_grpc.DsarServiceStub],
    identity: pyrage.x25519.Identity,
    requests: Mapping[str, tuple[Population, Sequence[str]]],
) -> ArchiveReport:
    """Download each request's archive (from the stubs in turn) and compare each named system exactly.

    Besides the datasets `compare` covers (those the subject has rows in), a system other than
    policy must export nothing from the tables he has no row in.
    """
    records = 0
    differences: list[str] = []
    for n, (request_id, (subject, systems)) in enumerate(requests.items()):
        archive = await fetch_archive(stubs[n % len(stubs)], request_id, identity)
        for system in systems:
            comparison = compare(archive, subject, system, POLICY_DATASETS if system == "policy" else None)
            records += comparison.found_total
            if not comparison.exact:
                differences.append(f"{request_id} ({subject!r}) {comparison}")
            compared = {d.dataset for d in comparison.datasets}
            for table in table_names(system):
                found = len(archive.records(system, table))
                if system != "policy" and table not in compared and found:
                    differences.append(f"{request_id} ({subject!r}) {system}: {found} {table} records, none expected")
    return ArchiveReport(records, differences)


async def queries_on_the_bus(settings: Settings, systems: Sequence[str]) -> Counter[tuple[str, str, int]]:
    """How many QueryCommands the command topics hold for each (request, system, attempt)."""
    topics = Topics(settings.topic_prefix)
    sent: Counter[tuple[str, str, int]] = Counter()
    for message in await all_messages(settings.kafka.bootstrap, [topics.commands(s) for s in systems]):
        command = bus_pb2.Command.FromString(message.value)
        if command.HasField("query"):
            sent[(command.query.request_id, command.query.system, command.query.attempt)] += 1
    return sent


@dataclass(frozen=True)
class AttemptOnTheBus:
    """What the result topic holds for one attempt of one system."""

    chunks: int
    completed: bool


async def attempt_on_the_bus(settings: Settings, request_id: str, system: str, attempt: int) -> AttemptOnTheBus:
    """The chunks (distinct sequences) and whether a completion of the attempt are on the result topic."""
    sequences: set[int] = set()
    completed = False
    for message in await all_messages(settings.kafka.bootstrap, [Topics(settings.topic_prefix).results]):
        event = bus_pb2.ResultEvent.FromString(message.value)
        if event.HasField("chunk"):
            place = (event.chunk.request_id, event.chunk.system, event.chunk.attempt)
            if place == (request_id, system, attempt):
                sequences.add(event.chunk.sequence)
        elif event.HasField("completion"):
            place = (event.completion.request_id, event.completion.system, event.completion.attempt)
            completed = completed or place == (request_id, system, attempt)
    return AttemptOnTheBus(len(sequences), completed)


async def until_chunks_sent(
    settings: Settings, request_id: str, system: str, attempt: int, count: int, within: float
) -> None:
    """Until `count` chunks of the attempt are on the result topic (a consumer of no group, tailing it).

    Sooner than waiting for them in the service's database: a stream of a second or two may be
    over by the time its first chunk is stored.
    """
    topic = Topics(settings.topic_prefix).results
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        sequences: set[int] = set()
        deadline = time.monotonic() + within
        while len(sequences) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(sequences)} chunks of attempt {attempt} sent within {within:.0f}s")
            for records in (await consumer.getmany(timeout_ms=20)).values():
                for record in records:
                    chunk = bus_pb2.ResultEvent.FromString(record.value).chunk
                    if (chunk.request_id, chunk.system, chunk.attempt) == (request_id, system, attempt):
                        sequences.add(chunk.sequence)
    finally:
        await consumer.stop()
