"""A search that lasts longer than the system timeout, while its connector reports progress every second.

The system timeout is a timeout of silence (README: "a system that goes silent … is re-dispatched
after system_timeout_seconds"); progress pushes it back. The QueryCommand's deadline, after which
the connector abandons its search, is the attempt deadline (attempt_deadline_seconds, an hour by
default), not the silence timeout. The table the policy search reads first is locked for longer
than max_attempts times the timeout, then released: the search completes on its first attempt.
"""

import asyncio
import time
from pathlib import Path

import pyrage

from connectors.testing.population import Population
from dsar.v1 import dsar_pb2
from dsar_service.stack import StackInfo
from tests.support.archive import compare, fetch_archive
from tests.support.broker import Broker
from tests.support.database import connected
from tests.support.deployment import Deployment, deployment_settings
from tests.support.rpc import access_request, system_status, wait_until_ended
from tests.support.servers import database_url

SYSTEM_TIMEOUT_SECONDS = 2.0
MAX_ATTEMPTS = 2
LOCKED_SECONDS = 6.0  # longer than MAX_ATTEMPTS x SYSTEM_TIMEOUT_SECONDS
POLICY_DATASETS = {"insured_person", "policy", "bank_account", "premium_payment", "dunning_event", "file_access_log"}


async def test_a_search_longer_than_the_timeout_completes_while_it_reports_progress(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    settings = await deployment_settings(
        servers, broker, tmp_path, system_timeout_seconds=SYSTEM_TIMEOUT_SECONDS, max_attempts=MAX_ATTEMPTS
    )
    async with Deployment.started(settings, tmp_path, systems=["policy"]) as deployment:
        stub = deployment.stub
        async with connected(database_url(servers.postgres_url, "policy")) as lock:
            transaction = lock.transaction()
            await transaction.start()
            await lock.execute("LOCK TABLE insured_person IN ACCESS EXCLUSIVE MODE")
            began = time.monotonic()
            request_id = (await stub.Submit(
                access_request(str(identity.to_public()), "fault:long-search", ["policy"],
                               emails=[population.demo.email])
            )).request.request_id  # fmt: skip
            await asyncio.sleep(LOCKED_SECONDS)  # the search is kept waiting: the point of the test
            await transaction.rollback()
        final = await wait_until_ended(stub, request_id, 60, deployment.check_alive)
        policy = system_status(final, "policy")
        print(
            f"\n[long search] table locked {LOCKED_SECONDS:.0f}s, timeout {SYSTEM_TIMEOUT_SECONDS:.0f}s x "
            f"{MAX_ATTEMPTS} attempts: request {dsar_pb2.RequestState.Name(final.state)} after "
            f"{time.monotonic() - began:.1f}s, policy {dsar_pb2.SystemState.Name(policy.state)} on attempt "
            f"{policy.attempts}: {policy.error!r}"
        )
        assert policy.state == dsar_pb2.SYSTEM_STATE_COMPLETED, policy.error
        assert policy.attempts == 1, "progress kept the first attempt alive"
        comparison = compare(await fetch_archive(stub, request_id, identity), population, "policy", POLICY_DATASETS)
        assert comparison.exact, str(comparison)
