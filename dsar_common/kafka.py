"""The one boundary to Kafka: clients built from settings, topics created, errors translated.

The service (dsar_service/bus/) and the connector runtime (connectors/runtime/) both build their
producers and consumers here, so TLS, SASL and the delivery settings are chosen in one place.
Producers are plain at-least-once producers (acks=all, no idempotence, no transactions): the
protocol de-duplicates instead (see protos/dsar/bus/v1/bus.proto).
"""

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from dsar_common.settings import KafkaSettings

# The largest message: a 1 MiB chunk of records, sealed, in its envelope, with room to spare.
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
# How long a group waits for a silent member (a killed process) before giving its partitions to
# the others: 6 s is the smallest a Kafka broker accepts by default (group.min.session.timeout.ms).
SESSION_TIMEOUT_MS = 6_000
HEARTBEAT_INTERVAL_MS = 1_000  # at most a third of the session timeout
METADATA_SECONDS = 5.0  # how long a forced metadata refresh may take


log = logging.getLogger(__name__)


class BusError(Exception):
    """Kafka could not be reached or refused an operation. Always worth retrying later."""


def is_missing_topic(error: BaseException) -> bool:
    """Whether `error` says a topic is not there (any more): a broker that lost its data.

    UnknownTopicOrPartition answers a commit or a fetch; a producer waiting for the metadata of a
    topic that does not exist ends with KafkaTimeoutError instead.
    """
    return isinstance(error, UnknownTopicOrPartitionError | KafkaTimeoutError)


def _connection_options(settings: KafkaSettings) -> dict[str, Any]:
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
        options["ssl_context"] = context
    if settings.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.sasl_mechanism
        options["sasl_plain_username"] = settings.sasl_username
        options["sasl_plain_password"] = settings.sasl_password
    return options


def producer(settings: KafkaSettings, *, linger_ms: int = 2) -> AIOKafkaProducer:
    """An at-least-once producer: every send waits for all in-sync replicas."""
    return AIOKafkaProducer(
        **_connection_options(settings),
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        max_request_size=MAX_MESSAGE_BYTES,
        request_timeout_ms=30_000,
    )


def consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str | None,
    auto_offset_reset: str = "earliest",
    session_timeout_ms: int = SESSION_TIMEOUT_MS,
    heartbeat_interval_ms: int = HEARTBEAT_INTERVAL_MS,
) -> AIOKafkaConsumer:
    """A consumer that commits only when told to (after the work is done).

    `session_timeout_ms` is how long the group coordinator waits for a silent member (a killed
    process) before giving its partitions to the others: a replacement gets them only then, plus
    the time of a rebalance. It must lie within the broker's `group.min.session.timeout.ms` and
    `group.max.session.timeout.ms` (Kafka: 6 s and 30 min by default), and `heartbeat_interval_ms`
    should be at most a third of it.
    """
    if not 0 < heartbeat_interval_ms < session_timeout_ms:
        raise ValueError("heartbeat_interval_ms must be positive and shorter than session_timeout_ms")
    return AIOKafkaConsumer(
        *topics,
        **_connection_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
        fetch_max_wait_ms=settings.fetch_wait_ms,
        max_partition_fetch_bytes=4 * MAX_MESSAGE_BYTES,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=heartbeat_interval_ms,
    )


def resubscribe(consumer: AIOKafkaConsumer) -> list[str]:
    """Subscribe `consumer` again to its topics, with fresh metadata; returns the topics.

    After a broker lost its data, the group and the topics are new: a consumer needs a new join
    and fresh metadata to be given the new partitions. Subscribing again rejoins under the same
    member id; stopping and starting a new consumer instead would leave the old member in the
    group until its session times out (a broker whose group is at generation 0 skips LeaveGroup).
    aiokafka refreshes the metadata of an unchanged subscription only every metadata_max_age_ms
    (5 min), hence the forced update.
    """
    topics = sorted(consumer.subscription())
    if topics:
        consumer.subscribe(topics=topics)
        refresh = getattr(getattr(consumer, "_client", None), "force_metadata_update", None)
        if refresh is not None:
            refresh()
    return topics


async def refresh_metadata(client: AIOKafkaProducer | AIOKafkaConsumer | Any) -> None:
    """Fetch the cluster's metadata now, for a producer or a consumer (anything else: nothing).

    After a send failed: the topic may have been re-created (a broker that lost its data) with
    other partitions or leaders, and aiokafka refreshes its metadata only for the errors it
    knows to mean stale metadata. Failing to refresh is not an error: the next send says more.
    """
    kafka_client = getattr(client, "client", None) or getattr(client, "_client", None)
    refresh = getattr(kafka_client, "force_metadata_update", None)
    if refresh is not None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(refresh(), METADATA_SECONDS)


class TopicCheck:
    """After a sign that the broker lost its data, re-create the missing topics: at most once per
    `interval` seconds, waiting at most `timeout` for the broker.

    `check()` returns the topics it re-created (often none), or None when it did nothing: too
    soon after the previous check, or the broker did not answer (the next sign tries again).
    Without `ensure` (nothing to create), a check that is not too soon returns no topics.
    """

    def __init__(
        self, ensure: Callable[[], Awaitable[list[str]]] | None, *, interval: float, timeout: float, name: str
    ) -> None:
        self._ensure = ensure
        self._interval = interval
        self._timeout = timeout
        self._name = name
        self._checked_at: float | None = None

    async def check(self) -> list[str] | None:
        now = time.monotonic()
        if self._checked_at is not None and now - self._checked_at < self._interval:
            return None
        self._checked_at = now
        if self._ensure is None:
            return []
        try:
            created = await asyncio.wait_for(self._ensure(), self._timeout)
        except Exception as error:  # the broker is still away
            log.warning("%s: topics not checked (%s)", self._name, type(error).__name__)
            return None
        if created:
            log.warning("%s: re-created missing topics %s", self._name, ", ".join(created))
        return created


async def ensure_topics(settings: KafkaSettings, topics: Iterable[str], partitions: int = 3) -> list[str]:
    """Create the topics that do not exist yet (production clusters may create them beforehand).

    Returns the names of the topics it created (sorted): none, unless a topic was missing, as
    after a first start or a broker that lost its data. Safe to call again at any time.
    """
    admin = AIOKafkaAdminClient(**_connection_options(settings))
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, num_partitions=partitions, replication_factor=1) for name in sorted(set(topics) - existing)
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        return [topic.name for topic in missing]
    except KafkaError as error:
        raise BusError(f"could not create topics: {type(error).__name__}") from error
    finally:
        await admin.close()
