"""Two service replicas on one database and one broker, all five connectors: every request once.

Twenty requests, one per background subscriber (person id, e-mail and NIR given, so that every
system is asked in the first round), are submitted alternately to the two replicas. Both dispatch
(each the requests it received), both consume results (the service's consumer group spreads the
result partitions between them), either may assemble. Nothing is killed: each request must be
ready with archive version 1 (assembled once), each completed system's chunks stored once and as
many as its completion announced, each attempt dispatched once (one QueryCommand on the bus),
no system asked twice, and every archive must hold exactly the subject's records.
"""

import asyncio
import statistics
import time
from collections import Counter
from pathlib import Path

import pyrage

from connectors.testing.population import Population
from connectors.testing.population.schemas import SYSTEMS
from dsar.v1 import dsar_pb2
from dsar_service.stack import StackInfo
from tests.integration.replicas.checks import compare_archives, queries_on_the_bus
from tests.integration.replicas.cluster import running_cluster
from tests.integration.replicas.ledger import install_ledger, read_ledger
from tests.integration.replicas.subjects import background_subjects
from tests.support.broker import Broker
from tests.support.deployment import deployment_settings
from tests.support.rpc import access_request, wait_until_ended

REQUESTS = 20


async def test_two_replicas_complete_twenty_requests_exactly_once(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    subjects = await asyncio.to_thread(background_subjects, population, REQUESTS)
    settings = await deployment_settings(servers, broker, tmp_path, system_timeout_seconds=30.0)
    recipient = str(identity.to_public())
    async with running_cluster(settings, tmp_path / "cluster") as cluster:
        await cluster.start_replica()
        await install_ledger(settings.database_url)
        await cluster.start_replica()
        await cluster.start_connectors(SYSTEMS)
        stubs = [replica.stub for replica in cluster.replicas]

        began = time.monotonic()
        submitted = await asyncio.gather(
            *(
                stubs[n % 2].Submit(
                    access_request(
                        recipient,
                        f"replicas:share-{n}",
                        person_ids=[subject.person_id],
                        emails=[subject.email],
                        nir=subject.nir,
                    )
                )
                for n, subject in enumerate(subjects)
            )
        )
        ids = [answer.request.request_id for answer in submitted]

        async def ended(n: int, request_id: str) -> tuple[dsar_pb2.DataRequest, float]:
            final = await wait_until_ended(stubs[n % 2], request_id, 120, cluster.check_alive)
            return final, time.monotonic() - began

        finals = await asyncio.gather(*(ended(n, request_id) for n, request_id in enumerate(ids)))
        took = time.monotonic() - began

        report = await compare_archives(
            stubs[::-1], identity, {request_id: (subjects[n], SYSTEMS) for n, request_id in enumerate(ids)}
        )
        ledger = await read_ledger(settings.database_url)
        queries = await queries_on_the_bus(settings, SYSTEMS)
        logs = [replica.child.log_text() for replica in cluster.replicas]

    states = Counter(dsar_pb2.RequestState.Name(final.state) for final, _ in finals)
    system_states = Counter(dsar_pb2.SystemState.Name(s.state) for final, _ in finals for s in final.systems)
    problems = ledger.problems(ids, retries_allowed=False)
    doubled = {key: n for key, n in queries.items() if n > 1}
    ready_in = sorted(seconds for _, seconds in finals)
    print(
        f"\n[replicas 1: two replicas share the work] {REQUESTS} requests in {took:.1f}s "
        f"(ready after {statistics.median(ready_in):.1f}s median, {ready_in[-1]:.1f}s last): {dict(states)}; "
        f"systems {dict(system_states)}\n"
        f"  dispatches logged per replica {[log.count('dispatched request=') for log in logs]}, "
        f"archives built per replica {[log.count('archive ready') for log in logs]}; "
        f"{sum(queries.values())} QueryCommands on the bus, {len(doubled)} attempts sent twice\n"
        f"  {report.records} records compared, {len(report.differences)} differences; "
        f"assemblies per request {Counter(ledger.assemblies(i) for i in ids)}; ledger problems: {len(problems)}"
    )
    for line in [*report.differences, *problems][:20]:
        print("   ", line)
    assert states == Counter({"REQUEST_STATE_READY": REQUESTS}), [f.error for f, _ in finals if f.error]
    assert all(final.archive.version == 1 for final, _ in finals), "each archive assembled once"
    assert all(ledger.assemblies(request_id) == 1 for request_id in ids)
    assert not problems, problems
    assert not doubled, doubled
    assert all(s.attempts == 1 for final, _ in finals for s in final.systems if s.attempts), "no system asked twice"
    assert not report.differences, report.differences
