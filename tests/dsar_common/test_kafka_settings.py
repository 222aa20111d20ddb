"""The Kafka settings: typed from the environment, and handed to every consumer."""

import pytest

from dsar_common import kafka
from dsar_common.settings import KafkaSettings, Settings, SettingsError


def test_the_fetch_wait_defaults_to_kafkas_own_and_is_read_as_a_number() -> None:
    assert Settings.from_values({}).kafka.fetch_wait_ms == 500
    loaded = Settings.load({"DSAR_KAFKA_FETCH_WAIT_MS": "50", "DSAR_KAFKA_BOOTSTRAP": "kafka:9092"})
    assert loaded.kafka == KafkaSettings(bootstrap="kafka:9092", fetch_wait_ms=50)


def test_a_malformed_kafka_setting_is_named_by_its_variable() -> None:
    with pytest.raises(SettingsError, match="DSAR_KAFKA_FETCH_WAIT_MS is malformed"):
        Settings.load({"DSAR_KAFKA_FETCH_WAIT_MS": "soon"})


async def test_every_consumer_waits_as_the_settings_say() -> None:
    consumer = kafka.consumer(KafkaSettings(fetch_wait_ms=123), "dsar.t", group_id=None)
    try:
        assert consumer._fetch_max_wait_ms == 123
    finally:
        await consumer.stop()
