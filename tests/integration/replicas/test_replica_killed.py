"""One of two service replicas killed (SIGKILL) with ten requests in flight: the other finishes them all.

A request for the demo subject's claims (about 80,000 records) is streaming; nine requests for
background subscribers (all five systems) are submitted alternately to both replicas; then the
replica doing the work (the one consuming the claims stream, found by its CPU use) is killed.
What it held goes to the survivor: the result partitions it consumed (once the group has
evicted it: a 10 s session, then a rebalance; what it had not committed is delivered again),
the attempts it dispatched (re-dispatched after `system_timeout_seconds` of silence), and any
assembly it had claimed (taken over when its lease runs out). Every request must be ready, with
exactly the subject's records, each completed attempt's chunks stored once, no attempt sent twice.
"""

import asyncio
import time
from collections import Counter
from pathlib import Path

import pyrage

from connectors.testing.population import Population
from connectors.testing.population.schemas import SYSTEMS
from dsar.v1 import dsar_pb2
from dsar_service.stack import StackInfo
from tests.integration.replicas.checks import compare_archives, queries_on_the_bus
from tests.integration.replicas.cluster import busiest, running_cluster
from tests.integration.replicas.ledger import install_ledger, read_ledger
from tests.integration.replicas.subjects import background_subjects
from tests.support.broker import Broker
from tests.support.database import connected, fetchval
from tests.support.deployment import deployment_settings
from tests.support.rpc import access_request, system_status, until, wait_until_ended

BACKGROUND_REQUESTS = 9
SYSTEM_TIMEOUT_SECONDS = 8.0  # the survivor's share of the partitions comes after a 10 s session and a rebalance
ASSEMBLY_LEASE_SECONDS = 5.0  # a setting of newer versions; older ones hold an assembly for max(60 s, timeout)
MAX_ATTEMPTS = 3


async def test_the_other_replica_finishes_every_request_in_flight(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    subjects = await asyncio.to_thread(background_subjects, population, BACKGROUND_REQUESTS)
    settings = await deployment_settings(
        servers,
        broker,
        tmp_path,
        system_timeout_seconds=SYSTEM_TIMEOUT_SECONDS,
        max_attempts=MAX_ATTEMPTS,
        assembly_lease_seconds=ASSEMBLY_LEASE_SECONDS,
    )
    recipient = str(identity.to_public())
    async with running_cluster(settings, tmp_path / "cluster") as cluster:
        await cluster.start_replica()
        await install_ledger(settings.database_url)
        await cluster.start_replica()
        await cluster.start_connectors(SYSTEMS)
        stubs = [replica.stub for replica in cluster.replicas]

        heavy = (await stubs[0].Submit(
            access_request(recipient, "replicas:killed-demo", ["claims"], person_ids=[population.demo.person_id])
        )).request.request_id  # fmt: skip

        async def streaming() -> bool:
            cluster.check_alive()
            chunks: int = await fetchval(
                settings.database_url, "SELECT count(*) FROM result_chunks WHERE request_id = $1::uuid", heavy
            )
            return chunks > 0

        await until(streaming, 60, "the claims stream under way")
        victim, shares = await busiest([replica.child for replica in cluster.replicas])
        submitted = await asyncio.gather(
            *(
                stubs[n % 2].Submit(
                    access_request(
                        recipient,
                        f"replicas:killed-{n}",
                        person_ids=[subject.person_id],
                        emails=[subject.email],
                        nir=subject.nir,
                    )
                )
                for n, subject in enumerate(subjects)
            )
        )
        ids = [heavy, *(answer.request.request_id for answer in submitted)]
        killed_at = await cluster.kill(victim)
        in_flight = await _states(settings.database_url, ids)
        survivor = cluster.alive_replicas[0]

        async def ended(request_id: str) -> tuple[dsar_pb2.DataRequest, float]:
            final = await wait_until_ended(survivor.stub, request_id, 150, cluster.check_alive)
            return final, time.monotonic() - killed_at

        finals = await asyncio.gather(*(ended(request_id) for request_id in ids))
        recovery = max(seconds for _, seconds in finals)
        expected = {
            heavy: (population, ["claims"]),
            **{i: (s, SYSTEMS) for i, s in zip(ids[1:], subjects, strict=True)},
        }
        report = await compare_archives([survivor.stub], identity, expected)
        ledger = await read_ledger(settings.database_url)
        queries = await queries_on_the_bus(settings, SYSTEMS)

    states = Counter(dsar_pb2.RequestState.Name(final.state) for final, _ in finals)
    attempts = Counter(s.attempts for final, _ in finals for s in final.systems)
    problems = ledger.problems(ids, retries_allowed=True)
    doubled = {key: n for key, n in queries.items() if n > 1}
    claims = system_status(finals[0][0], "claims")
    print(
        f"\n[replicas 2: a replica killed] killed {victim.name} (CPU shares {[f'{s:.0%}' for s in shares]}) with "
        f"{sum(in_flight.values())} requests in flight {dict(in_flight)}; all {len(ids)} ended {recovery:.1f}s after "
        f"the kill (system timeout {SYSTEM_TIMEOUT_SECONDS:.0f}s, group session 10s): {dict(states)}\n"
        f"  the claims stream: {claims.records} records, completed on attempt {claims.attempts}, ready "
        f"{finals[0][1]:.1f}s after the kill; background requests ready after "
        f"{sorted(round(s, 1) for _, s in finals[1:])}s\n"
        f"  attempts per system {dict(attempts)}; assemblies per request {Counter(ledger.assemblies(i) for i in ids)}; "
        f"{sum(queries.values())} QueryCommands, {len(doubled)} attempts sent twice; {report.records} records "
        f"compared, {len(report.differences)} differences; ledger problems: {len(problems)}"
    )
    for line in [*report.differences, *problems][:20]:
        print("   ", line)
    assert states == Counter({"REQUEST_STATE_READY": len(ids)}), [f.error for f, _ in finals if f.error]
    assert not problems, problems
    assert not doubled, doubled
    assert not report.differences, report.differences


async def _states(database_url: str, request_ids: list[str]) -> Counter[str]:
    """How many of the requests are in each state, from the database."""
    async with connected(database_url) as connection:
        rows = await connection.fetch("SELECT state FROM requests WHERE request_id = ANY($1::uuid[])", request_ids)
    return Counter(str(row["state"]) for row in rows)
