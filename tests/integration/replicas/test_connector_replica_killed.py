"""Two processes of the claims connector in one consumer group, the one streaming killed: its twin takes over.

Two service replicas, two `dsar connectors run --system claims` processes (both members of the
claims command group, each holding some of its partitions). The demo subject's claims (about
80,000 records in some 20 sealed chunks, sent within a second or two) are streaming when the
process doing it (the twin that got busy) is killed, three chunks sent, before it has sent its
completion (checked on the result topic). Its partitions go to the twin once the group has
evicted it (Tansu notices the closed connection; Kafka waits for the connectors' session
timeout), and the twin reads the uncommitted command again; if that takes longer than
`system_timeout_seconds`, the service re-dispatches the silent attempt. Whichever attempt
completes, the archive must hold every record exactly once and each of its chunks be stored once.
"""

import time
from collections import Counter
from pathlib import Path

import pyrage

from connectors.testing.population import Population
from dsar.v1 import dsar_pb2
from dsar_service.stack import StackInfo
from tests.integration.replicas.checks import (
    attempt_on_the_bus,
    compare_archives,
    queries_on_the_bus,
    until_chunks_sent,
)
from tests.integration.replicas.cluster import first_busy, running_cluster
from tests.integration.replicas.ledger import install_ledger, read_ledger
from tests.support.broker import Broker
from tests.support.database import fetchval
from tests.support.deployment import deployment_settings
from tests.support.rpc import access_request, system_status, wait_until_ended

SYSTEM_TIMEOUT_SECONDS = 8.0
MAX_ATTEMPTS = 3
CHUNKS_BEFORE_THE_KILL = 3  # of about 20
BUSY_SHARE = 0.3  # of a core, over 0.1 s: the twin searching and streaming (the idle one only heartbeats)


async def test_a_killed_connector_process_is_taken_over_by_its_twin(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    settings = await deployment_settings(
        servers, broker, tmp_path, system_timeout_seconds=SYSTEM_TIMEOUT_SECONDS, max_attempts=MAX_ATTEMPTS
    )
    async with running_cluster(settings, tmp_path / "cluster") as cluster:
        await cluster.start_replica()
        await install_ledger(settings.database_url)
        await cluster.start_replica()
        twins = [await cluster.start_connectors(["claims"]) for _ in range(2)]
        stubs = [replica.stub for replica in cluster.replicas]
        request_id = (await stubs[1].Submit(access_request(
            str(identity.to_public()), "replicas:twin", ["claims"], person_ids=[population.demo.person_id]
        ))).request.request_id  # fmt: skip

        victim = await first_busy(twins, BUSY_SHARE, 30)
        await until_chunks_sent(settings, request_id, "claims", 1, CHUNKS_BEFORE_THE_KILL, 30)
        killed_at = await cluster.kill(victim)
        at_kill = await attempt_on_the_bus(settings, request_id, "claims", 1)
        stored_at_kill = await fetchval(
            settings.database_url, "SELECT count(*) FROM result_chunks WHERE request_id = $1::uuid", request_id
        )

        final = await wait_until_ended(stubs[0], request_id, 120, cluster.check_alive)
        recovery = time.monotonic() - killed_at
        report = await compare_archives(stubs, identity, {request_id: (population, ["claims"])})
        ledger = await read_ledger(settings.database_url)
        queries = await queries_on_the_bus(settings, ["claims"])
        twin = next(child for child in twins if child is not victim)
        twin_log = twin.log_text()

    claims = system_status(final, "claims")
    problems = ledger.problems([request_id], retries_allowed=True)
    stored_per_attempt = {
        attempt: (len(sequences), sum(sequences.values()))
        for (r, _, attempt), sequences in sorted(ledger.chunks.items())
        if r == request_id
    }
    doubled = {key: n for key, n in queries.items() if n > 1}
    print(
        f"\n[replicas 3: a connector twin killed] killed {victim.name} pid {victim.pid} with {at_kill.chunks} "
        f"chunks of attempt 1 sent{', and its completion' if at_kill.completed else ''}, {stored_at_kill} stored; "
        f"{dsar_pb2.RequestState.Name(final.state)} {recovery:.1f}s after the kill (system timeout "
        f"{SYSTEM_TIMEOUT_SECONDS:.0f}s); claims {dsar_pb2.SystemState.Name(claims.state)} on attempt "
        f"{claims.attempts} with {claims.records} records\n"
        f"  chunks stored per attempt (distinct, inserts) {stored_per_attempt}; attempts the twin completed: "
        f"{twin_log.count('attempt ')} log lines; QueryCommands {dict(Counter(a for (_, _, a) in queries))}, "
        f"{len(doubled)} sent twice\n  {report.records} records compared, {len(report.differences)} differences; "
        f"ledger problems: {len(problems)}"
    )
    for line in [*report.differences, *problems][:20]:
        print("   ", line)
    assert not at_kill.completed, "the kill came after the attempt had ended: nothing was tested"
    assert final.state == dsar_pb2.REQUEST_STATE_READY, final.error
    assert claims.state == dsar_pb2.SYSTEM_STATE_COMPLETED, claims.error
    assert not problems, problems
    assert not doubled, doubled
    assert not report.differences, report.differences
