"""The connector runtime: runs any connector between Kafka and its store.

It finds connectors through the `dsar.connectors` entry points, consumes their command topics,
opens sealed queries, runs the searches, packs and seals result chunks, reports progress and
completion, sends heartbeats, retries temporary failures, honours cancellations and deadlines,
and stops gracefully. It is the only part of `connectors` that meets Kafka (through
`dsar_common.kafka`); connectors themselves import only `connectors.sdk`.

    await run_connectors(settings, ["policy"])

The conformance kit (`connectors.testing.kit`) runs one `Attempt` of a `QueryOrder` against a
`Source` (`PostgresSource`, `MongoSource`) without Kafka; those names are public for it.
"""

from connectors.runtime.app import run_connectors
from connectors.runtime.attempt import Attempt, ConnectorBug, Producer
from connectors.runtime.chunks import MAX_CHUNK_BYTES
from connectors.runtime.messages import QueryOrder
from connectors.runtime.registry import available, load_connectors
from connectors.runtime.retry import RetryPolicy
from connectors.runtime.sources import MongoSource, PostgresSource, Source, open_source
from connectors.runtime.worker import ConnectorWorker, RuntimeOptions

__all__ = [
    "MAX_CHUNK_BYTES",
    "Attempt",
    "ConnectorBug",
    "ConnectorWorker",
    "MongoSource",
    "PostgresSource",
    "Producer",
    "QueryOrder",
    "RetryPolicy",
    "RuntimeOptions",
    "Source",
    "available",
    "load_connectors",
    "open_source",
    "run_connectors",
]
