"""The replica building an archive killed (SIGKILL): the other takes the assembly over once its lease runs out.

Two replicas, the claims connector, one request for the demo subject's claims (about 80,000
records). As soon as the request is assembling, the replica doing it (found by its CPU use) is
killed. The survivor's sweep takes over
an assembly whose lease has run out and builds it again under a new version; the dead version
is dropped. The lease is `assembly_lease_seconds` in versions that have the setting (renewed
while the assembly writes); older ones hold it max(60 s, system timeout), whatever the settings.
"""

import time
from dataclasses import fields
from pathlib import Path

import pyrage

from connectors.testing.population import Population
from dsar.v1 import dsar_pb2
from dsar_common.settings import Settings
from dsar_service.stack import StackInfo
from tests.integration.replicas.checks import compare_archives
from tests.integration.replicas.cluster import BUSY_SAMPLE_SECONDS, busiest, running_cluster
from tests.integration.replicas.ledger import install_ledger, read_ledger
from tests.support.broker import Broker
from tests.support.database import connected
from tests.support.deployment import deployment_settings
from tests.support.rpc import access_request, until, wait_until_ended

SYSTEM_TIMEOUT_SECONDS = 10.0
ASSEMBLY_LEASE_SECONDS = 4.0
HAS_LEASE_SETTING = "assembly_lease_seconds" in {item.name for item in fields(Settings)}
TAKEOVER_SECONDS = 20.0  # after the lease: the sweep (every second), then a whole assembly


async def test_the_other_replica_takes_over_an_assembly_cut_short(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    settings = await deployment_settings(
        servers,
        broker,
        tmp_path,
        system_timeout_seconds=SYSTEM_TIMEOUT_SECONDS,
        assembly_lease_seconds=ASSEMBLY_LEASE_SECONDS,
        parts_ahead_disk_bytes=0,  # the build itself writes every system: the kill lands in it
    )
    async with running_cluster(settings, tmp_path / "cluster") as cluster:
        await cluster.start_replica()
        await install_ledger(settings.database_url)
        await cluster.start_replica()
        await cluster.start_connectors(["claims"])
        stubs = [replica.stub for replica in cluster.replicas]
        request_id = (await stubs[0].Submit(access_request(
            str(identity.to_public()), "replicas:assembling", ["claims"], person_ids=[population.demo.person_id]
        ))).request.request_id  # fmt: skip

        async def assembling() -> bool:
            cluster.check_alive()
            state, _, _ = await _assembly(settings.database_url, request_id)
            return state == "assembling"

        # Found by its CPU over a short window as soon as the request is assembling: an assembly of
        # a few seconds on a slow machine is well under a second on a fast one. The assembling
        # replica uses a whole core, its twin next to none.
        await until(assembling, 90, "assembly under way")
        victim, shares = await busiest([replica.child for replica in cluster.replicas], BUSY_SAMPLE_SECONDS)
        killed_at = await cluster.kill(victim)
        _, written_at_kill, lease_left = await _assembly(settings.database_url, request_id)
        survivor = cluster.alive_replicas[0]

        final = await wait_until_ended(survivor.stub, request_id, lease_left + 60, cluster.check_alive)
        recovery = time.monotonic() - killed_at
        report = await compare_archives([survivor.stub], identity, {request_id: (population, ["claims"])})
        ledger = await read_ledger(settings.database_url)

    _, version, stored_versions = ledger.requests[request_id]
    problems = ledger.problems([request_id], retries_allowed=True)
    print(
        f"\n[replicas 2b: the assembling replica killed] killed {victim.name} (CPU shares "
        f"{[f'{s:.0%}' for s in shares]}) with {written_at_kill} archive chunk(s) written, lease left "
        f"{lease_left:.1f}s (assembly_lease_seconds {ASSEMBLY_LEASE_SECONDS:.0f}s asked"
        f"{'' if HAS_LEASE_SETTING else ', not a setting of this version'}); "
        f"{dsar_pb2.RequestState.Name(final.state)} {recovery:.1f}s after the kill, archive version {version}, "
        f"versions stored {stored_versions}, assemblies {ledger.assemblies(request_id)}\n"
        f"  {report.records} records compared, {len(report.differences)} differences; ledger problems: {len(problems)}"
    )
    for line in [*report.differences, *problems][:20]:
        print("   ", line)
    assert final.state == dsar_pb2.REQUEST_STATE_READY, final.error
    assert recovery < lease_left + TAKEOVER_SECONDS, "taken over soon after the lease ran out"
    assert version == 2 and ledger.assemblies(request_id) == 2, "built once more, by the survivor, after the kill"
    assert stored_versions == (2,), "the dead replica's version is dropped"
    assert not problems, problems
    assert not report.differences, report.differences


async def _assembly(database_url: str, request_id: str) -> tuple[str, int, float]:
    """The request's state, its archive chunks written, and the seconds left on its assembly lease."""
    async with connected(database_url) as connection:
        row = await connection.fetchrow(
            "SELECT state, (SELECT count(*) FROM archive_chunks WHERE request_id = $1::uuid) AS chunks,"
            " coalesce(extract(epoch FROM assembly_lease_until - now()), 0)::float AS lease_left"
            " FROM requests WHERE request_id = $1::uuid",
            request_id,
        )
    assert row is not None
    return str(row["state"]), int(row["chunks"]), float(row["lease_left"])
