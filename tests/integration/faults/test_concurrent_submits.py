"""100 concurrent Submits, 20 request keys, 5 callers with the same content: one request per key.

Each key's five callers race through validation, the idempotent insert and the first dispatch.
Exactly one request per key must exist in the service's database, with its systems once;
every caller of a key gets the same request id, and exactly one of them `created`.
"""

import asyncio
import time
from collections import Counter
from pathlib import Path

import grpc
import pyrage

from dsar.v1 import dsar_pb2, dsar_pb2_grpc
from dsar_service.stack import StackInfo
from tests.support.broker import Broker
from tests.support.database import connected
from tests.support.deployment import Deployment, deployment_settings
from tests.support.played import PlayedConnector
from tests.support.rpc import access_request, wait_for_systems

KEYS = 20
CALLERS_PER_KEY = 5


async def test_concurrent_submits_of_one_key_make_one_request(
    servers: StackInfo, broker: Broker, identity: pyrage.x25519.Identity, tmp_path: Path
) -> None:
    settings = await deployment_settings(servers, broker, tmp_path)
    recipient = str(identity.to_public())
    async with Deployment.started(settings, tmp_path) as deployment, PlayedConnector.running(settings, "policy"):
        await wait_for_systems(deployment.stub, {"policy"}, 30)
        calls = [
            (key, access_request(recipient, f"fault:concurrent-{key}", ["policy"], emails=[f"racer.{key}@example.org"]))
            for key in range(KEYS)
            for _ in range(CALLERS_PER_KEY)
        ]
        channels = [grpc.aio.insecure_channel(settings.server) for _ in range(4)]  # several connections
        try:
            began = time.monotonic()
            answers = await asyncio.gather(
                *(
                    dsar_pb2_grpc.DsarServiceStub(channels[n % len(channels)]).Submit(request, timeout=60)
                    for n, (_, request) in enumerate(calls)
                ),
                return_exceptions=True,
            )
            took = time.monotonic() - began
        finally:
            for channel in channels:
                await channel.close()

        failures = [a for a in answers if isinstance(a, BaseException)]
        ids: dict[int, set[str]] = {}
        created: Counter[int] = Counter()
        for (key, _), answer in zip(calls, answers, strict=True):
            if isinstance(answer, dsar_pb2.SubmitResponse):
                ids.setdefault(key, set()).add(answer.request.request_id)
                created[key] += answer.created
        async with connected(settings.database_url) as connection:
            rows = await connection.fetch(
                "SELECT request_key, count(*) AS n, min(request_id::text) AS id FROM requests"
                " WHERE request_key LIKE 'fault:concurrent-%' GROUP BY request_key"
            )
            systems = await connection.fetchval(
                "SELECT count(*) FROM request_systems s JOIN requests r USING (request_id)"
                " WHERE r.request_key LIKE 'fault:concurrent-%'"
            )
        print(
            f"\n[fault 6: concurrent submits] {len(calls)} Submits in {took:.2f}s: {len(failures)} failed "
            f"({Counter(type(f).__name__ for f in failures)}); "
            f"{len(rows)} requests in the database for {KEYS} keys, {systems} system rows"
        )
        assert not failures, failures[:3]
        assert sorted(r["n"] for r in rows) == [1] * KEYS, "one request per key"
        assert all(len(found) == 1 for found in ids.values()) and len(ids) == KEYS, "same id for every caller"
        by_key = {int(r["request_key"].rsplit("-", 1)[1]): r["id"] for r in rows}
        assert {key: next(iter(found)) for key, found in ids.items()} == by_key
        assert created == Counter(dict.fromkeys(range(KEYS), 1)), "created once per key"
        assert systems == KEYS, "each request's system once"
