"""Duplicated and out-of-order chunks, through the real broker: every record once, in order.

The test plays the policy connector: it announces itself, reads the service's QueryCommand from
the command topic, and sends the demo subject's policy rows (population.subject_rows) as sealed
chunks: the completion first, then the chunks shuffled, several of them twice, one more
duplicate after the archive is built. The archive holds each row exactly once.
"""

import random
import time
from pathlib import Path

import pyrage

from connectors.testing.population import Population
from dsar.bus.v1 import bus_pb2
from dsar.v1 import dsar_pb2
from dsar_service.stack import StackInfo
from tests.support.archive import compare, fetch_archive
from tests.support.broker import Broker
from tests.support.deployment import Deployment, deployment_settings
from tests.support.played import PlayedConnector, fields_json
from tests.support.rpc import access_request, system_status, wait_for_systems, wait_until_ended

DATASETS = ("insured_person", "policy", "bank_account", "premium_payment", "dunning_event", "file_access_log")
CHUNKS = 6


async def test_duplicated_and_out_of_order_chunks_give_each_record_once(
    servers: StackInfo, broker: Broker, population: Population, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    settings = await deployment_settings(servers, broker, tmp_path, system_timeout_seconds=30.0)
    async with (
        Deployment.started(settings, tmp_path) as deployment,
        PlayedConnector.running(settings, "policy") as played,
    ):
        stub = deployment.stub
        await wait_for_systems(stub, {"policy"}, 30)
        submitted = await stub.Submit(
            access_request(str(identity.to_public()), "fault:duplicates", ["policy"], emails=[population.demo.email])
        )
        request_id = submitted.request.request_id
        query = await played.query(request_id)

        rows = [(t, r) for t, r in population.subject_rows("policy") if t in DATASETS]
        rows.sort(key=lambda item: DATASETS.index(item[0]))  # each dataset in one run
        records = [
            bus_pb2.Record(dataset=t, key=f"{t}/{i}", fields_json=fields_json(r)) for i, (t, r) in enumerate(rows)
        ]
        size = -(-len(records) // CHUNKS)
        chunks = [played.chunk(query, n, records[n * size : (n + 1) * size]) for n in range(CHUNKS)]
        order = [*range(CHUNKS), 0, 2, 4, 4]
        random.Random(4).shuffle(order)
        began = time.monotonic()
        await played.send(played.progress(query, len(records)))
        await played.send(played.completion(query, CHUNKS, len(records)))
        for sequence in order:
            await played.send(chunks[sequence])

        final = await wait_until_ended(stub, request_id, 60, deployment.check_alive)
        took = time.monotonic() - began
        await played.send(chunks[1])  # late: the archive is built, the sealed chunks destroyed
        assert final.state == dsar_pb2.REQUEST_STATE_READY, final.error
        policy = system_status(final, "policy")
        archive = await fetch_archive(stub, request_id, identity)
        comparison = compare(archive, population, "policy", set(DATASETS))
        print(
            f"\n[fault 4: duplicated, out-of-order chunks] {len(order)} chunks sent in order {order} for {CHUNKS}; "
            f"ready {took:.1f}s after the first; the system counted {policy.records} records\n{comparison}"
        )
        assert policy.state == dsar_pb2.SYSTEM_STATE_COMPLETED and policy.records == len(records)
        assert comparison.exact, str(comparison)
        later = (await stub.Get(dsar_pb2.GetRequest(request_id=request_id))).request
        assert later.state == dsar_pb2.REQUEST_STATE_READY and later.archive.version == final.archive.version
