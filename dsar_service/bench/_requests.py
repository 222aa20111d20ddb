"""One request as a caller sees it: submitted, watched until it ends, timed on the way.

The clock starts just before Submit and stops when the Watch stream shows the request READY (or
another final state), so a latency includes everything the caller waits for: the API, the
dispatch, every system's search, the assembly, and the notification.
"""

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from dsar.v1 import dsar_pb2
from dsar_service.client import FINAL_REQUEST_STATES, ClientError, DsarClient, SubjectFields, build_submit_request


class BenchError(ClientError):
    """A benchmark step failed (a request that did not end READY, a child that died); the message says which."""


@dataclass(frozen=True)
class Timed:
    """A request that ended, and when: seconds after the submission."""

    request_id: str
    state: "dsar_pb2.RequestState.ValueType"
    seconds: float  # submit to the final state
    collected_seconds: float | None  # submit to ASSEMBLING (None if it was never seen: it went by fast)
    records: int
    archive_bytes: int
    error: str
    systems_ended: dict[str, float]  # system -> seconds after the submission when it ended (by the service's clock)

    @property
    def ready(self) -> bool:
        return self.state == dsar_pb2.REQUEST_STATE_READY


async def submit_and_watch(client: DsarClient, subject: SubjectFields, recipient: str) -> Timed:
    """Submit an access request for `subject`, follow it with Watch until it ends."""
    request = build_submit_request("access", subject, recipient, f"bench-{uuid.uuid4().hex[:20]}")
    began = time.perf_counter()
    began_at = time.time()
    submitted = await client.submit(request)
    request_id = submitted.request.request_id
    collected: float | None = None
    final = submitted.request
    async for snapshot in client.watch(request_id):
        final = snapshot
        if collected is None and snapshot.state == dsar_pb2.REQUEST_STATE_ASSEMBLING:
            collected = time.perf_counter() - began
        if snapshot.state in FINAL_REQUEST_STATES:
            break
    seconds = time.perf_counter() - began
    if final.state not in FINAL_REQUEST_STATES:
        raise BenchError(f"the watch of request {request_id} ended before the request did")
    return Timed(
        request_id=request_id,
        state=final.state,
        seconds=seconds,
        collected_seconds=collected,
        records=sum(system.records for system in final.systems),
        archive_bytes=final.archive.size_bytes,
        error=final.error,
        systems_ended={
            system.system: system.ended_at.ToMicroseconds() / 1e6 - began_at
            for system in final.systems
            if system.HasField("ended_at")
        },
    )


def require_ready(timed: Timed) -> Timed:
    """`timed`, if the request ended READY; else BenchError."""
    if not timed.ready:
        name = dsar_pb2.RequestState.Name(timed.state)
        raise BenchError(f"request {timed.request_id} ended {name}: {timed.error or 'no reason given'}")
    return timed


async def submit_many(
    client: DsarClient, subjects: Iterable[SubjectFields], recipient: str, in_flight: int
) -> tuple[list[Timed], float]:
    """Every subject's request, at most `in_flight` at once; returns them and the wall time of the lot."""
    slots = asyncio.Semaphore(in_flight)

    async def one(subject: SubjectFields) -> Timed:
        async with slots:
            return require_ready(await submit_and_watch(client, subject, recipient))

    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(subject)) for subject in subjects]
    return [task.result() for task in tasks], time.perf_counter() - began
