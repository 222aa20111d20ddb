"""The service killed (SIGKILL) while it builds an archive, then restarted: the archive is built once, whole.

Assembly claims the request with a lease (`assembly_lease_seconds`, renewed while it writes);
the restarted service's sweep takes over a request whose lease has run out and builds the
archive again under a new version. The half-written version of the dead process is dropped.
The time to recovery is dominated by that lease, shortened here to 10 s (see the report).
"""

import time
from pathlib import Path

import pyrage

from connectors.testing.population import Population
from dsar.v1 import dsar_pb2
from dsar_service.stack import StackInfo
from tests.support.archive import compare, fetch_archive
from tests.support.broker import Broker
from tests.support.database import connected, fetchval
from tests.support.deployment import Deployment, deployment_settings
from tests.support.rpc import access_request, until, wait_until_ended

LEASE_SECONDS = 10.0


async def test_a_service_killed_during_assembly_builds_the_archive_once_after_restart(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    settings = await deployment_settings(
        servers,
        broker,
        tmp_path,
        system_timeout_seconds=10.0,
        assembly_lease_seconds=LEASE_SECONDS,
        parts_ahead_disk_bytes=0,  # the build itself writes every system: the kill lands in it
    )
    async with Deployment.started(settings, tmp_path, systems=["claims"]) as deployment:
        stub = deployment.stub
        submitted = await stub.Submit(
            access_request(
                str(identity.to_public()), "fault:service-killed", ["claims"], person_ids=[population.demo.person_id]
            )
        )
        request_id = submitted.request.request_id

        async def assembling_with_chunks_written() -> bool:
            deployment.check_alive()
            state, chunks = await _state_and_archive_chunks(settings.database_url, request_id)
            return state == "assembling" and chunks > 0

        await until(assembling_with_chunks_written, 90, "assembly under way")
        assert deployment.service is not None
        await deployment.service.kill()
        killed_at = time.monotonic()
        _, written_at_kill = await _state_and_archive_chunks(settings.database_url, request_id)
        lease_left = await fetchval(
            settings.database_url,
            "SELECT extract(epoch FROM assembly_lease_until - now()) FROM requests WHERE request_id = $1::uuid",
            request_id,
        )
        await deployment.start_service()

        final = await wait_until_ended(stub, request_id, LEASE_SECONDS + 60, deployment.check_alive)
        recovery = time.monotonic() - killed_at
        assert final.state == dsar_pb2.REQUEST_STATE_READY, final.error
        archive = await fetch_archive(stub, request_id, identity)
        comparison = compare(archive, population, "claims")
        async with connected(settings.database_url) as connection:
            versions = await connection.fetch(
                "SELECT version, count(*) AS chunks FROM archive_chunks WHERE request_id = $1::uuid GROUP BY version",
                request_id,
            )
            leftovers = await connection.fetchval(
                "SELECT count(*) FROM result_chunks WHERE request_id = $1::uuid", request_id
            )
        print(
            f"\n[fault 2: service killed during assembly] {written_at_kill} archive chunk(s) written at the kill, "
            f"lease left {lease_left:.1f}s; ready {recovery:.1f}s after the kill, archive version "
            f"{final.archive.version}, {final.archive.size_bytes:,} bytes\n{comparison}"
        )
        assert final.archive.version == 2, "built once more after the crash, under a new version"
        assert [(r["version"], r["chunks"] > 0) for r in versions] == [(2, True)], "the dead version is dropped"
        assert leftovers == 0, "the sealed chunks are destroyed once the archive is stored"
        assert comparison.exact, str(comparison)


async def _state_and_archive_chunks(database_url: str, request_id: str) -> tuple[str, int]:
    async with connected(database_url) as connection:
        row = await connection.fetchrow(
            "SELECT state, (SELECT count(*) FROM archive_chunks WHERE request_id = $1::uuid) AS chunks"
            " FROM requests WHERE request_id = $1::uuid",
            request_id,
        )
    assert row is not None
    return str(row["state"]), int(row["chunks"])
