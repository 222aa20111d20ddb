"""Malformed commands: dead-lettered with their reasons, the attempt they name failed, the connector goes on.

Two messages are put on `dsar.commands.policy` by hand: bytes that are no Command at all, and a
QueryCommand naming a real request whose sealed query does not open. To make the second one
the only command that request's attempt gets, the real QueryCommand is skipped: the request is
submitted while the test announces the policy system (with the connectors' key), and its
command is consumed and committed by a member of the connector group standing in for a
connector that lost it; then the real connector starts. Then the
connector is started again. Both messages must land on the dead-letter topic with headers
saying why and where from; the request's policy system must be reported failed with the reason;
and a valid request submitted afterwards must be answered.
"""

import time
from pathlib import Path

import pyrage
from aiokafka import AIOKafkaConsumer

from connectors.testing.population import Population
from dsar.bus.v1 import bus_pb2
from dsar.v1 import dsar_pb2
from dsar_common.sealing import KeyPair
from dsar_common.settings import Settings
from dsar_common.topics import Topics
from dsar_service.stack import StackInfo
from tests.support.archive import compare, fetch_archive
from tests.support.broker import Broker, all_messages
from tests.support.deployment import Deployment, deployment_settings
from tests.support.played import PlayedConnector
from tests.support.rpc import access_request, system_status, until, wait_for_systems, wait_until_ended

POLICY_DATASETS = {"insured_person", "policy", "bank_account", "premium_payment", "dunning_event", "file_access_log"}
GARBAGE = b"\xff\xfe this is not a dsar.bus.v1.Command \x00\x01"


async def test_malformed_commands_are_dead_lettered_and_the_connector_keeps_consuming(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    settings = await deployment_settings(servers, broker, tmp_path, system_timeout_seconds=30.0)
    topics = Topics(settings.topic_prefix)
    recipient = str(identity.to_public())
    connector_keys = KeyPair.from_private(settings.connector_key)
    async with (
        Deployment.started(settings, tmp_path) as deployment,
        PlayedConnector.running(
            settings,
            "policy",
            connector_keys,  # announces policy until its connector runs
        ) as hand,
    ):
        stub = deployment.stub
        await wait_for_systems(stub, {"policy"}, 30)
        named = (await stub.Submit(
            access_request(recipient, "fault:malformed-named", ["policy"], emails=[population.demo.email])
        )).request.request_id  # fmt: skip
        real = await hand.query(named)
        await _skip_past(settings, topics, named)

        bad = bus_pb2.Command(
            query=bus_pb2.QueryCommand(
                request_id=named,
                system="policy",
                attempt=real.attempt,
                result_public_key=real.result_public_key,
                key_id=connector_keys.key_id,
                sealed_query=b"\x00" * 48,  # not sealed to the system's key: it does not open
            )
        )
        await hand.produce(topics.commands("policy"), GARBAGE, key=b"garbage")
        await hand.produce(topics.commands("policy"), bad.SerializeToString(), key=named.encode())
        await deployment.start_connector("policy")

        ended = await wait_until_ended(stub, named, 60, deployment.check_alive)
        policy = system_status(ended, "policy")

        valid = (await stub.Submit(
            access_request(recipient, "fault:malformed-after", ["policy"], emails=[population.demo.email])
        )).request.request_id  # fmt: skip
        answered = await wait_until_ended(stub, valid, 60, deployment.check_alive)

        async def both_dead_lettered() -> bool:
            return len(await all_messages(broker.bootstrap, [topics.dead_letters])) >= 2

        await until(both_dead_lettered, 30, "two dead letters")
        letters = await all_messages(broker.bootstrap, [topics.dead_letters])
        letters.sort(key=lambda letter: int(dict(letter.headers).get("dsar-offset", b"0")))
        headers = [dict(letter.headers) for letter in letters]
        print(
            "\n[fault 5: malformed commands] dead letters: "
            + "; ".join(
                f"{h.get('dsar-reason', b'?').decode()} (from {h.get('dsar-topic', b'?').decode()}"
                f" offset {h.get('dsar-offset', b'?').decode()})"
                for h in headers
            )
            + f"\n  the named request: {dsar_pb2.RequestState.Name(ended.state)}, policy "
            f"{dsar_pb2.SystemState.Name(policy.state)}: {policy.error!r}\n  the next request: "
            f"{dsar_pb2.RequestState.Name(answered.state)}"
        )
        assert {letter.value for letter in letters} == {GARBAGE, bad.SerializeToString()}, "as they came"
        assert all(h["dsar-topic"] == topics.commands("policy").encode() for h in headers)
        reasons = {letter.value: dict(letter.headers)["dsar-reason"] for letter in letters}
        assert reasons == {GARBAGE: b"not a dsar.bus.v1.Command", bad.SerializeToString(): b"sealed query did not open"}
        assert policy.state == dsar_pb2.SYSTEM_STATE_FAILED and "sealed query did not open" in policy.error
        assert answered.state == dsar_pb2.REQUEST_STATE_READY, answered.error
        comparison = compare(await fetch_archive(stub, valid, identity), population, "policy", POLICY_DATASETS)
        assert comparison.exact, str(comparison)


async def _skip_past(settings: Settings, topics: Topics, request_id: str) -> None:
    """Consume, as a member of the policy connectors' group (none of them runs yet), up to and
    including the request's QueryCommand, and commit: the connector started next will not see it."""
    consumer = AIOKafkaConsumer(
        topics.commands("policy"),
        bootstrap_servers=settings.kafka.bootstrap,
        group_id=topics.command_group("policy"),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    command = bus_pb2.Command.FromString(record.value)
                    if command.query.request_id == request_id:
                        await consumer.commit()
                        return
        raise TimeoutError("the request's QueryCommand never came")
    finally:
        await consumer.stop()
