"""The connector runtime: runs any connector between Kafka and its store.

It finds connectors through the `dsar.connectors` entry points, consumes their command topics,
opens sealed queries, runs the searches, packs and seals result chunks, reports progress and
completion, sends heartbeats, retries temporary failures, honours cancellations and deadlines,
and stops gracefully. It is the only part of `connectors` that meets Kafka (through
`dsar_common.kafka`); connectors themselves import only `connectors.sdk`.

    await run_connectors(settings, ["policy"])
"""

from connectors.runtime.app import run_connectors
from connectors.runtime.registry import available, load_connectors
from connectors.runtime.retry import RetryPolicy
from connectors.runtime.worker import RuntimeOptions

__all__ = ["RetryPolicy", "RuntimeOptions", "available", "load_connectors", "run_connectors"]
