"""The composition root: consumers are closed even when stopped while joining, with short sessions."""

import asyncio
from typing import Any

import pytest

from connectors.runtime import app
from dsar_common import kafka
from dsar_common.sealing import KeyPair
from dsar_common.settings import Settings


class JoiningForever:
    """A consumer (or producer) whose start never ends, as a group join that a SIGTERM interrupts."""

    def __init__(self, made: list["JoiningForever"], started: asyncio.Event, **options: Any) -> None:
        self.options = options
        self.started = started
        self.stopped = False
        made.append(self)

    async def start(self) -> None:
        self.started.set()
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


class Started(JoiningForever):
    async def start(self) -> None:
        self.started.set()


async def test_a_stop_during_the_group_join_closes_the_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    producers: list[JoiningForever] = []
    consumers: list[JoiningForever] = []

    async def topics_exist(*args: Any, **kwargs: Any) -> list[str]:
        return []

    monkeypatch.setattr(kafka, "ensure_topics", topics_exist)
    joining = asyncio.Event()
    monkeypatch.setattr(kafka, "producer", lambda settings: Started(producers, asyncio.Event()))
    monkeypatch.setattr(
        kafka, "consumer", lambda settings, *topics, **options: JoiningForever(consumers, joining, **options)
    )
    settings = Settings(connector_key=KeyPair.generate().private)
    running = asyncio.create_task(app.run_connectors(settings, ["policy"], handle_signals=False))
    await asyncio.wait_for(joining.wait(), 10)
    running.cancel()  # what the CLI does on SIGTERM
    with pytest.raises(asyncio.CancelledError):
        await running
    assert consumers[0].stopped and producers[0].stopped


async def test_a_consumer_session_timeout_is_a_parameter() -> None:
    settings = Settings().kafka
    with pytest.raises(ValueError, match="heartbeat_interval_ms"):
        kafka.consumer(settings, "t", group_id="g", session_timeout_ms=1_000, heartbeat_interval_ms=1_000)
    consumer = kafka.consumer(settings, "t", group_id="g", session_timeout_ms=6_000)
    await consumer.stop()  # never started: stopping is harmless (what the runtime's cleanup relies on)


async def test_a_silent_member_loses_its_partitions_after_six_seconds_by_default() -> None:
    """Both the connectors' and the service's consumers take the smallest session Kafka allows."""
    consumer = kafka.consumer(Settings().kafka, "t", group_id="g")
    assert (consumer._session_timeout_ms, consumer._heartbeat_interval_ms) == (6_000, 1_000)
    await consumer.stop()


async def test_a_topic_check_runs_at_most_once_per_interval_and_says_when_the_broker_is_away() -> None:
    answers: list[list[str] | Exception] = [["dsar.results"], ConnectionError("away"), []]

    async def ensure() -> list[str]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    check = kafka.TopicCheck(ensure, interval=0.05, timeout=1, name="test")
    assert await check.check() == ["dsar.results"]
    assert await check.check() is None  # too soon: nothing asked
    await asyncio.sleep(0.06)
    assert await check.check() is None  # asked, the broker did not answer
    await asyncio.sleep(0.06)
    assert await check.check() == []
    assert answers == []
    assert await kafka.TopicCheck(None, interval=0, timeout=1, name="test").check() == []
