"""One attempt of one request on one system: search every dataset, seal chunks, send, complete.

The datasets are searched one after the other, so the records of a dataset are contiguous in
the stream (the service's archive relies on it). Redaction notes are held back and sent last, as
the dataset `_redactions`. Records are packed into RecordBatches of at most 1 MiB, each sealed to
the request's key and bound to (request, system, attempt, sequence), deflated first when the
service offers it (dsar_common.record_batches: a fifth of the bytes on the bus). At most
`CHUNKS_IN_FLIGHT` chunks wait for their acknowledgement at once: a slow broker slows the search
instead of filling memory, and the search goes on while the broker writes. The last chunks go
out with the Completion, in one produce request most of the time: the Completion is sent without
waiting for the chunks' acknowledgements, then all are awaited (same key, same partition: the
producer keeps them in order). The service accepts a Completion before its last chunk anyway.
Keys seen in a dataset are de-duplicated (a subject found by e-mail and by NIR is returned once).

Progress is sent only once the attempt has run for `first_progress_seconds`, then every
`progress_seconds`: an ordinary search ends before the first one, and its Completion says more.
The service's dispatch deadline (`system_timeout_seconds`) covers that much silence; a Progress
moves the system to RUNNING and pushes the deadline back, for the searches that last.

A bug of the connector (any exception other than a ConnectorError, raised while searching,
viewing or encoding a record) fails the attempt, not retryable, with only the exception's type
as its error: a command that failed this way is not run again and again. A failed send to Kafka
is not such a bug: it propagates (`send_failed` says so), and the worker runs the attempt again.
That holds for the chunks in flight and the Completion together: if one is not acknowledged, the
attempt failed to send, though the others may have arrived (the service keeps the first copy of
each chunk and ignores a second Completion).
"""

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from types import TracebackType
from typing import Any, Protocol, TypeAlias

from opentelemetry import trace
from opentelemetry.context import Context

from connectors.runtime.chunks import MAX_CHUNK_BYTES, ChunkPacker, encode_record
from connectors.runtime.messages import QueryOrder, identifier_to_proto
from connectors.runtime.retry import RetryPolicy
from connectors.runtime.sources import Source
from connectors.sdk import REDACTIONS, Connector, ConnectorError, Identifier, Query, Record, TemporaryError
from connectors.sdk._datasets import Search
from dsar.bus.v1 import bus_pb2
from dsar_common.observability import log_fields, trace_headers, tracer
from dsar_common.record_batches import deflated
from dsar_common.sealing import chunk_binding, discovered_binding, seal
from dsar_common.topics import Topics

log = logging.getLogger("connectors.runtime")
_TRACER = tracer("connectors.runtime")

CHUNKS_IN_FLIGHT = 3  # sent chunks not yet acknowledged, at most (each up to 1 MiB)

Status: TypeAlias = "bus_pb2.CompletionStatus.ValueType"
Headers: TypeAlias = list[tuple[str, bytes]]


class Producer(Protocol):
    """What the runtime needs of a Kafka producer (aiokafka's AIOKafkaProducer fits; the
    conformance kit's MemoryProducer too).

    `send` returns once the message is queued, with an awaitable of its acknowledgement: messages
    sent one after the other to one partition stay in order and may share a produce request.
    """

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers | None = None
    ) -> Any: ...

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, *, headers: Headers | None = None
    ) -> Awaitable[Any]: ...


class ConnectorBug(Exception):
    """Stands for a connector's exception in the logs: its type and traceback, not its message."""


def _withheld(error: BaseException) -> tuple[type[ConnectorBug], ConnectorBug, TracebackType | None]:
    """`exc_info` for `error` whose message (which may hold personal data) is left out."""
    return ConnectorBug, ConnectorBug(f"{type(error).__name__} (message withheld)"), error.__traceback__


class Attempt:
    """Runs a QueryOrder for a connector and reports it on the result topic."""

    def __init__(
        self,
        connector: Connector,
        order: QueryOrder,
        *,
        source: Source,
        producer: Producer,
        topics: Topics,
        instance_id: str,
        retry: RetryPolicy | None = None,
        progress_seconds: float = 1.0,
        first_progress_seconds: float = 0.25,
        chunk_limit: int = MAX_CHUNK_BYTES,
        trace_context: Context | None = None,
    ) -> None:
        self.connector = connector
        self._trace_context = trace_context
        self.order = order
        self._source = source
        self._producer = producer
        self._topics = topics
        self._instance_id = instance_id
        self._retry = retry or RetryPolicy()
        self._progress_seconds = progress_seconds
        self._first_progress_seconds = first_progress_seconds
        self._chunk_limit = chunk_limit
        self.chunks = 0
        self.records = 0  # records sent in chunks
        self.bytes = 0  # plaintext bytes of the chunks sent (their RecordBatches)
        self.sealed_bytes = 0  # what the chunks' sealed_records took on the bus (Progress.bytes)
        self._found = 0  # records found so far, sent or buffered (for progress)
        self._packer = ChunkPacker(chunk_limit)
        self._discovered: dict[tuple[str, str], Identifier] = {}
        self.completing = False  # set once the Completion is being sent: too late to cancel
        self._send_failure: BaseException | None = None  # the last send that failed, re-raised as is
        self._in_flight: deque[Awaitable[Any]] = deque()  # acknowledgements of chunks sent, oldest first

    @property
    def send_failed(self) -> bool:
        """Whether a send to Kafka failed (the attempt then stopped with that error)."""
        return self._send_failure is not None

    def again(self) -> "Attempt":
        """A fresh attempt for the same order, to run from the start (same sequences, same place)."""
        return Attempt(
            self.connector,
            self.order,
            source=self._source,
            producer=self._producer,
            topics=self._topics,
            instance_id=self._instance_id,
            retry=self._retry,
            progress_seconds=self._progress_seconds,
            first_progress_seconds=self._first_progress_seconds,
            chunk_limit=self._chunk_limit,
            trace_context=self._trace_context,
        )

    async def run(self) -> None:
        """Search, send, and end with a Completion. Cancellation propagates (the worker reports it)."""
        order = self.order
        span = _TRACER.start_as_current_span(
            f"search {order.system}",
            context=self._trace_context,
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "dsar.request_id": order.request_id,
                "dsar.system": order.system,
                "dsar.attempt": order.attempt,
            },
        )
        with span, log_fields(request_id=order.request_id, system=order.system):
            await self._run()

    async def _run(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            status, error, retryable = await self._search_with_deadline()
        finally:
            ticker.cancel()
        await self.complete(status, error, retryable)

    async def complete(self, status: Status, error: str = "", retryable: bool = False) -> None:
        """Send the attempt's Completion (and, when completed, what it discovered, sealed).

        Returns once the broker has acknowledged it and the last chunk, sent just before it.
        """
        self.completing = True
        sealed = b""
        if status == bus_pb2.COMPLETION_STATUS_COMPLETED and self._discovered:
            found = sorted(self._discovered.items())
            found_proto = bus_pb2.Discovered(identifiers=[identifier_to_proto(i) for _, i in found])
            sealed = self._seal(found_proto.SerializeToString(), discovered_binding(*self._place))
        completion = bus_pb2.Completion(
            request_id=self.order.request_id,
            system=self.order.system,
            attempt=self.order.attempt,
            status=status,
            chunk_count=self.chunks,
            record_count=self.records,
            byte_count=self.bytes,
            error=error,
            retryable=retryable,
            sealed_discovered=sealed,
        )
        if status == bus_pb2.COMPLETION_STATUS_CANCELLED:
            self._abandon_in_flight()  # what became of its chunks no longer matters
        in_flight = list(self._in_flight)
        self._in_flight.clear()
        try:
            delivered = await self._enqueue(bus_pb2.ResultEvent(completion=completion))
        except Exception:
            for chunk in in_flight:
                with contextlib.suppress(Exception):
                    await chunk  # their outcome is not left unread; the failure is the Completion's
            raise
        await self._delivered(*in_flight, delivered)
        log.info(
            "request %s on %s attempt %d: %s, %d records in %d chunks",
            self.order.request_id,
            self.order.system,
            self.order.attempt,
            bus_pb2.CompletionStatus.Name(status),
            self.records,
            self.chunks,
        )

    @property
    def _place(self) -> tuple[str, str, int]:
        return self.order.request_id, self.order.system, self.order.attempt

    async def _search_with_deadline(self) -> tuple[Status, str, bool]:
        loop = asyncio.get_running_loop()
        when = None
        if self.order.deadline is not None:
            when = loop.time() + (self.order.deadline - dt.datetime.now(dt.UTC)).total_seconds()
            if when <= loop.time():
                return bus_pb2.COMPLETION_STATUS_FAILED, "deadline passed", True
        try:
            async with asyncio.timeout_at(when):
                return await self._search_with_retries()
        except TimeoutError:
            return bus_pb2.COMPLETION_STATUS_FAILED, "deadline passed", True

    async def _search_with_retries(self) -> tuple[Status, str, bool]:
        delays = self._retry.delays()
        while True:
            try:
                await self._search()
                return bus_pb2.COMPLETION_STATUS_COMPLETED, "", False
            except TemporaryError as error:
                delay = next(delays, None)
                if self.chunks or delay is None:
                    return bus_pb2.COMPLETION_STATUS_FAILED, str(error), True
                log.warning("request %s on %s: %s; retrying in %.1fs", self.order.request_id,
                            self.order.system, error, delay)  # fmt: skip
                self._restart()
                await asyncio.sleep(delay)
            except ConnectorError as error:
                return bus_pb2.COMPLETION_STATUS_FAILED, str(error), error.retryable
            except Exception as error:
                if error is self._send_failure:
                    raise  # Kafka, not the connector: the worker stops and the command runs again
                # a bug of the connector: its message may hold a record's content, so only the type
                log.error("request %s on %s: the search failed with %s", self.order.request_id, self.order.system,
                          type(error).__name__, exc_info=_withheld(error))  # fmt: skip
                return bus_pb2.COMPLETION_STATUS_FAILED, type(error).__name__, False

    def _restart(self) -> None:
        self._packer = ChunkPacker(self._chunk_limit)
        self._discovered.clear()
        self._found = 0

    async def _search(self) -> None:
        """Every dataset's search on one connection lent for the whole attempt: in PostgreSQL one
        read-only snapshot, so the datasets of an answer agree with each other."""
        query = self.connector.restrict(self.order.query)
        searching = False
        try:
            async with self._source.lend() as db:
                searching = True
                await self._search_datasets(query, db)
                searching = False
        except Exception as error:
            if searching or isinstance(error, ConnectorError):
                raise  # the searches' errors are translated by _records; the rest are not the store's
            raise self._source.translate(error) from error  # lending the connection, or giving it back
        batch = self._packer.flush()
        if batch is not None:
            await self._send_chunk(*batch)

    async def _search_datasets(self, query: Query, db: Any) -> None:
        asked = {(i.kind.value, i.value) for i in query.identifiers}
        returned: set[str] = set()
        redactions: dict[str, Record] = {}
        for dataset in self.connector.datasets:
            if query.portability and not dataset.portable:
                continue
            returned.add(dataset.name)
            seen: set[str] = set()
            async for record in self._records(dataset.searcher, query, db):
                if record.dataset == REDACTIONS:
                    redactions.setdefault(record.key, record)
                    continue
                if record.dataset != dataset.name:
                    raise ConnectorError(f"the search of {dataset.name} yielded a {record.dataset} record")
                for found in record.discovered:
                    if (found.kind.value, found.value) not in asked:
                        self._discovered.setdefault((found.kind.value, found.value), found)
                if record.key in seen:
                    continue
                seen.add(record.key)
                view = dataset.view(record, query.portability)
                if view is not None:
                    await self._add(view)
        for note in redactions.values():
            if note.fields["dataset"] in returned:
                await self._add(note)

    async def _records(self, search: Search, query: Query, db: Any) -> AsyncIterator[Record]:
        """The records of one search, with the store's errors translated."""
        try:
            iterator = search(query, db)
            try:
                while True:
                    try:
                        record = await anext(iterator)
                    except StopAsyncIteration:
                        break
                    yield record
            finally:
                close = getattr(iterator, "aclose", None)  # searches are async generators
                if close is not None:
                    await close()
        except ConnectorError:
            raise
        except Exception as error:  # the driver's errors, mapped once, without their messages
            raise self._source.translate(error) from error

    async def _add(self, record: Record) -> None:
        self._found += 1
        full = self._packer.add(encode_record(record))
        if full is not None:
            await self._send_chunk(*full)

    async def _send_chunk(self, batch: bytes, count: int) -> None:
        """Send a chunk; wait for the oldest acknowledgement when `CHUNKS_IN_FLIGHT` are awaited.
        Those still awaited when the search ends are awaited with the Completion."""
        sequence = self.chunks
        plaintext = deflated(batch) if self.order.deflate else batch
        chunk = bus_pb2.ResultChunk(
            request_id=self.order.request_id,
            system=self.order.system,
            attempt=self.order.attempt,
            sequence=sequence,
            record_count=count,
            sealed_records=self._seal(plaintext, chunk_binding(*self._place, sequence)),
        )
        try:
            self._in_flight.append(await self._enqueue(bus_pb2.ResultEvent(chunk=chunk)))
            if len(self._in_flight) > CHUNKS_IN_FLIGHT:
                await self._delivered(self._in_flight.popleft())
        except Exception:
            self._abandon_in_flight()  # the attempt runs again from the start
            raise
        self.chunks += 1
        self.records += count
        self.bytes += len(batch)
        self.sealed_bytes += len(chunk.sealed_records)

    def _seal(self, plaintext: bytes, info: bytes) -> bytes:
        return seal(plaintext, self.order.result_public_key, info)

    async def _send_progress(self) -> None:
        progress = bus_pb2.Progress(
            request_id=self.order.request_id,
            system=self.order.system,
            attempt=self.order.attempt,
            records=self._found,
            bytes=self.sealed_bytes,
            instance_id=self._instance_id,
        )
        await self._send(bus_pb2.ResultEvent(progress=progress))

    async def _tick(self) -> None:
        """Report Progress once the attempt has run `first_progress_seconds`, then every `progress_seconds`."""
        next_at = time.monotonic() + self._first_progress_seconds
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await self._send_progress()
            next_at += self._progress_seconds

    async def _send(self, event: bus_pb2.ResultEvent) -> None:
        """Send `event` and wait until the broker has acknowledged it."""
        await self._delivered(await self._enqueue(event))

    async def _enqueue(self, event: bus_pb2.ResultEvent) -> Awaitable[Any]:
        """Hand `event` to the producer; returns the awaitable of its acknowledgement."""
        try:
            return await self._producer.send(
                self._topics.results,
                event.SerializeToString(),
                key=self.order.request_id.encode(),
                headers=trace_headers(),
            )
        except Exception as error:
            self._send_failure = error
            raise

    def _abandon_in_flight(self) -> None:
        """Stop waiting for the chunks in flight: their failures, if any, are nobody's to report."""
        while self._in_flight:
            _forget(self._in_flight.popleft())

    async def _delivered(self, *deliveries: Awaitable[Any]) -> None:
        """Wait for every acknowledgement, even past a failed one; raise the first failure."""
        failure: Exception | None = None
        for delivery in deliveries:
            try:
                await delivery
            except Exception as error:
                failure = failure or error
        if failure is not None:
            self._send_failure = failure
            raise failure


def _forget(delivery: Awaitable[Any]) -> None:
    """An acknowledgement nobody will await: its failure is retrieved (so asyncio does not log
    it as never retrieved), a coroutine is closed unrun."""
    if isinstance(delivery, asyncio.Future):
        delivery.add_done_callback(lambda done: done.cancelled() or done.exception())
    elif inspect.iscoroutine(delivery):
        delivery.close()
