"""One attempt through the runtime's own code, with an in-memory producer instead of Kafka.

The runtime's `Attempt` searches, de-duplicates, filters for portability, packs 1 MiB chunks,
seals them to a fresh request key and ends with a Completion. Here every event it sends is kept,
so the kit can open the chunks and compare what was sent with what was reported.
"""

import asyncio
import secrets
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.runtime.attempt import Attempt, Headers
from connectors.runtime.chunks import MAX_CHUNK_BYTES
from connectors.runtime.messages import QueryOrder
from connectors.runtime.sources import Source
from connectors.sdk import Connector, Query, Record
from dsar.bus.v1 import bus_pb2
from dsar_common.record_batches import inflated
from dsar_common.sealing import KeyPair, chunk_binding, open_sealed
from dsar_common.topics import Topics


class MemoryProducer:
    """A producer that keeps the result events it is sent, decoded, in order."""

    def __init__(self) -> None:
        self.events: list[bus_pb2.ResultEvent] = []

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers | None = None
    ) -> Any:
        self.events.append(bus_pb2.ResultEvent.FromString(value or b""))

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers | None = None
    ) -> Awaitable[Any]:
        """Keep the event; its delivery is already acknowledged."""
        delivered: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        delivered.set_result(await self.send_and_wait(topic, value, key, headers=headers))
        return delivered


@dataclass(frozen=True)
class AttemptResult:
    """What an attempt sent: its chunks (opened), the records in them, and its Completion."""

    completion: bus_pb2.Completion
    chunks: Sequence[bus_pb2.ResultChunk]
    plaintexts: Sequence[bytes]  # the opened RecordBatch of each chunk, in order
    records: Sequence[Record]  # fields decoded from JSON

    @property
    def keys(self) -> set[tuple[str, str]]:
        """The (dataset, key) pairs sent, redaction notes included."""
        return {(r.dataset, r.key) for r in self.records}


async def run_attempt(
    connector: Connector, source: Source, query: Query, *, chunk_limit: int = MAX_CHUNK_BYTES
) -> AttemptResult:
    """Run `query` through the runtime's Attempt and open everything it sent (its record batches
    deflated, as the service asks for them)."""
    keys = KeyPair.generate()
    request_id = f"kit-{secrets.token_hex(6)}"
    order = QueryOrder(request_id, connector.name, 1, keys.public, None, query, deflate=True)
    producer = MemoryProducer()
    attempt = Attempt(connector, order, source=source, producer=producer, topics=Topics("kit"),
                      instance_id="kit", progress_seconds=3600, chunk_limit=chunk_limit)  # fmt: skip
    await attempt.run()
    completions = [e.completion for e in producer.events if e.HasField("completion")]
    assert len(completions) == 1, f"the attempt sent {len(completions)} completions"
    chunks = [e.chunk for e in producer.events if e.HasField("chunk")]
    plaintexts, records = [], []
    for chunk in chunks:
        binding = chunk_binding(request_id, connector.name, 1, chunk.sequence)
        plain = inflated(open_sealed(chunk.sealed_records, keys.private, binding))
        plaintexts.append(plain)
        for r in bus_pb2.RecordBatch.FromString(plain).records:
            records.append(Record(r.dataset, r.key, orjson.loads(r.fields_json)))
    return AttemptResult(completions[0], chunks, plaintexts, records)
