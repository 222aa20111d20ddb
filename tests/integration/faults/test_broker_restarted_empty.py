"""The broker killed and restarted empty (every topic, message and offset lost) while requests are in flight.

Two requests are under way when Tansu is killed: one streaming the demo subject's 80,000 claim
records, one asking the policy system. Tansu comes back on the same port with nothing in it,
as a cluster that lost its data would. PostgreSQL remembers what was asked: silent attempts
are re-dispatched after the system timeout, and both archives come out exact.
"""

import time
from pathlib import Path

import pyrage
import pytest

from connectors.testing.population import Population
from dsar.v1 import dsar_pb2
from dsar_service.stack import StackInfo
from tests.support.archive import compare, fetch_archive
from tests.support.broker import Broker
from tests.support.database import fetchval
from tests.support.deployment import Deployment, deployment_settings
from tests.support.rpc import access_request, system_status, until, wait_until_ended

SYSTEM_TIMEOUT_SECONDS = 8.0
MAX_ATTEMPTS = 2
POLICY_DATASETS = {"insured_person", "policy", "bank_account", "premium_payment", "dunning_event", "file_access_log"}


@pytest.mark.xfail(
    strict=False,  # it passes when the service's consumer group happens to settle before the timeouts
    reason=(
        "known gap, service side: after the broker comes back empty the connectors recover (topics re-created, "
        "resubscribed) and complete the re-dispatched attempts, but the service's results consumer restarts on "
        "CommitFailedError and, on Tansu whose generation-0 groups skip LeaveGroup, waits a whole session for "
        "its old member before it is assigned partitions; the systems time out first. Fix: the runtime's "
        "recovery (re-create topics, resubscribe in place, forget offsets of re-created partitions) in "
        "ServiceBus._consume, and a shorter service session timeout."
    ),
)
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
        await broker.restart()
        restarted_in = time.monotonic() - killed_at

        recovered = {}
        for name, request_id in (("claims", claims_request), ("policy", policy_request)):
            final = await wait_until_ended(stub, request_id, 120, deployment.check_alive)
            recovered[name] = (time.monotonic() - killed_at, final)
        report = [f"\n[fault 3: broker restarted empty] back on port {broker.port} in {restarted_in:.1f}s"]
        for name, (seconds, final) in recovered.items():
            status = system_status(final, name)
            report.append(
                f"  {name} request {dsar_pb2.RequestState.Name(final.state)} {seconds:.1f}s after the kill, "
                f"{name} {dsar_pb2.SystemState.Name(status.state)} on attempt {status.attempts} {status.error}"
            )
        comparisons = {}
        for name, (_, final) in recovered.items():
            if final.state == dsar_pb2.REQUEST_STATE_READY:
                archive = await fetch_archive(stub, final.request_id, identity)
                comparisons[name] = compare(archive, population, name, POLICY_DATASETS if name == "policy" else None)
                report.append(str(comparisons[name]))
        print("\n".join(report))
        for name, (_, final) in recovered.items():
            assert final.state == dsar_pb2.REQUEST_STATE_READY, final.error
            assert system_status(final, name).state == dsar_pb2.SYSTEM_STATE_COMPLETED, system_status(final, name).error
            assert comparisons[name].exact, str(comparisons[name])
