"""The broker killed and restarted empty (every topic, message and offset lost) while requests are in flight.

Two requests are under way when Tansu is killed: one streaming the demo subject's 80,000 claim
records, one asking the policy system. Tansu comes back on the same port with nothing in it,
as a cluster that lost its data would. PostgreSQL remembers what was asked: silent attempts
are re-dispatched after the system timeout, and both archives come out exact. A request
submitted afterwards goes through the re-created topics like any other.

The topics come back as a platform that declares them (a Kafka operator) would bring them
back: before any client reaches the new broker. Tansu has a quirk real Kafka lacks: a produce
to a missing topic creates it without listing it, and a CreateTopics that follows replaces it,
after which one of its partitions may refuse every produce (UnknownError, logged by Tansu as
AlreadyExists) for as long as the clients run. A client retrying its sends reaches the new
broker within milliseconds, so creating the topics "at once" after the start still lost that
race now and then (one CI run: the request submitted afterwards hashed to the broken partition
and timed out). The clients therefore see the broker gone for `OUTAGE_SECONDS`, are paused
(SIGSTOP) while it starts and its topics are created, and wake to the declared, empty broker.
The clients' recovery (new group joins, resubscription, commands sent again, attempts run
again) is what the test checks, not the quirk.
"""

import asyncio
import time
from pathlib import Path

import pyrage

from connectors.testing.population import Population
from dsar.v1 import dsar_pb2
from dsar_common.topics import Topics
from dsar_service.stack import StackInfo
from tests.support.archive import compare, fetch_archive
from tests.support.broker import Broker
from tests.support.database import fetchval
from tests.support.deployment import Deployment, deployment_settings
from tests.support.rpc import access_request, system_status, until, wait_until_ended

SYSTEM_TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 3
OUTAGE_SECONDS = 0.5  # how long the clients see no broker at all, retrying
POLICY_DATASETS = {"insured_person", "policy", "bank_account", "premium_payment", "dunning_event", "file_access_log"}


async def test_requests_in_flight_complete_after_the_broker_comes_back_empty(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    settings = await deployment_settings(
        servers, broker, tmp_path, system_timeout_seconds=SYSTEM_TIMEOUT_SECONDS, max_attempts=MAX_ATTEMPTS
    )
    async with Deployment.started(settings, tmp_path, systems=["claims", "policy"]) as deployment:
        stub = deployment.stub
        recipient = str(identity.to_public())
        demo = population.demo
        claims_request = (await stub.Submit(
            access_request(recipient, "fault:broker-claims", ["claims"], person_ids=[demo.person_id])
        )).request.request_id  # fmt: skip

        async def streaming() -> bool:
            deployment.check_alive()
            chunks: int = await fetchval(
                settings.database_url, "SELECT count(*) FROM result_chunks WHERE request_id = $1::uuid", claims_request
            )
            return chunks > 0

        await until(streaming, 60, "the claims stream under way")
        policy_request = (await stub.Submit(
            access_request(recipient, "fault:broker-policy", ["policy"], emails=[demo.email])
        )).request.request_id  # fmt: skip
        await broker.kill()
        killed_at = time.monotonic()
        await asyncio.sleep(OUTAGE_SECONDS)
        with deployment.paused():
            await broker.restart(provision=Topics(settings.topic_prefix).every(["claims", "policy"]))
        restarted_in = time.monotonic() - killed_at

        ended = {}  # label -> (system, seconds from the kill or the submission, final status)
        for system, request_id in (("claims", claims_request), ("policy", policy_request)):
            final = await wait_until_ended(stub, request_id, 120, deployment.check_alive)
            ended[f"{system} request in flight"] = (system, time.monotonic() - killed_at, final)
        after_request = (await stub.Submit(
            access_request(recipient, "fault:broker-after", ["policy"], emails=[demo.email])
        )).request.request_id  # fmt: skip
        submitted_at = time.monotonic()
        final = await wait_until_ended(stub, after_request, 60, deployment.check_alive)
        ended["policy request submitted afterwards"] = ("policy", time.monotonic() - submitted_at, final)

        report = [f"\n[fault 3: broker restarted empty] back on port {broker.port} in {restarted_in:.1f}s"]
        comparisons = {}
        for label, (system, seconds, final) in ended.items():
            status = system_status(final, system)
            report.append(
                f"  {label}: {dsar_pb2.RequestState.Name(final.state)} after {seconds:.1f}s, "
                f"{system} {dsar_pb2.SystemState.Name(status.state)} on attempt {status.attempts} {status.error}"
            )
            if final.state == dsar_pb2.REQUEST_STATE_READY:
                archive = await fetch_archive(stub, final.request_id, identity)
                datasets = POLICY_DATASETS if system == "policy" else None
                comparisons[label] = compare(archive, population, system, datasets)
                report.append(str(comparisons[label]))
        print("\n".join(report))
        for label, (system, _, final) in ended.items():
            assert final.state == dsar_pb2.REQUEST_STATE_READY, f"{label}: {final.error}"
            status = system_status(final, system)
            assert status.state == dsar_pb2.SYSTEM_STATE_COMPLETED, f"{label}: {status.error}"
            assert comparisons[label].exact, f"{label}: {comparisons[label]}"
