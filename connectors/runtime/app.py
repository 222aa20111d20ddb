"""The composition root of the runtime: open the producer, the consumers and the stores, run, close.

Each connector's consumer uses the session timeout of `dsar_common.kafka.SESSION_TIMEOUT_MS` (6 s,
the smallest a Kafka broker accepts by default) with a heartbeat every second: when a connector process dies,
its partitions go to a replacement after about that long plus a rebalance. The service's
`system_timeout_seconds` (the silence after which it dispatches a new attempt) should stay well
above that sum, or new attempts land in partitions that nobody consumes yet.
"""

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack
from typing import Any

from connectors.runtime.registry import load_connectors
from connectors.runtime.sources import open_source
from connectors.runtime.worker import ConnectorWorker, RuntimeOptions
from dsar_common import kafka
from dsar_common.sealing import KeyPair
from dsar_common.settings import Settings
from dsar_common.topics import Topics

log = logging.getLogger("connectors.runtime")


async def run_connectors(
    settings: Settings,
    systems: Iterable[str] | None = None,
    *,
    databases: Mapping[str, str] | None = None,
    options: RuntimeOptions | None = None,
    stop: asyncio.Event | None = None,
    handle_signals: bool = True,
) -> None:
    """Run the named connectors (every installed one when `systems` is None) until stopped.

    Each connector gets its own consumer (group `Topics.command_group(system)`) and store; they
    share one producer. `databases` maps a system to the database it should read instead of the
    one it declares (tests, staging). The runtime stops gracefully (no new command; running
    attempts get `options.grace_seconds`; offsets committed) when `stop` is set, on SIGTERM or
    SIGINT when `handle_signals`, or when the task running it is cancelled. If a connector's
    loop fails (its sends fail), the others are stopped the same way and the error is raised.
    """
    connectors = load_connectors(systems)
    options = options or RuntimeOptions()
    databases = databases or {}
    keys = KeyPair.from_private(settings.require_connector_key())
    topics = Topics(settings.topic_prefix)
    stop = stop or asyncio.Event()
    await kafka.ensure_topics(settings.kafka, topics.every(c.name for c in connectors))
    async with AsyncExitStack() as stack:
        producer = kafka.producer(settings.kafka)
        stack.push_async_callback(producer.stop)  # before start: a stop during start still closes it
        await producer.start()
        workers = []
        for connector in connectors:
            source = open_source(connector.store, settings, databases.get(connector.name), options.concurrency)
            stack.push_async_callback(source.aclose)
            consumer = kafka.consumer(
                settings.kafka,
                topics.commands(connector.name),
                group_id=topics.command_group(connector.name),
            )
            stack.push_async_callback(consumer.stop)  # before start: a SIGTERM during the join closes it
            await consumer.start()
            workers.append(
                ConnectorWorker(
                    connector,
                    consumer=consumer,
                    producer=producer,
                    source=source,
                    keys=keys,
                    topics=topics,
                    options=options,
                    heartbeat_seconds=settings.heartbeat_seconds,
                    ensure_topics=functools.partial(
                        kafka.ensure_topics, settings.kafka, topics.every([connector.name])
                    ),
                )
            )
        if handle_signals:
            stack.enter_context(_stop_on_signals(stop))
        log.info("running connectors %s as %s", ", ".join(c.name for c in connectors), options.instance_id)
        await _run_all([w.run(stop) for w in workers], stop)


async def _run_all(loops: list[Coroutine[Any, Any, None]], stop: asyncio.Event) -> None:
    tasks = [asyncio.create_task(loop) for loop in loops]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        stop.set()  # graceful: the loops drain within their grace period
        await asyncio.wait(tasks)
        raise
    stop.set()
    await asyncio.wait(tasks)
    for task in tasks:
        if task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
