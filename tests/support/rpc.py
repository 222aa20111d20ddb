"""gRPC helpers: wait for connectors, follow a request to its end, read error details."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import grpc
from google.rpc import error_details_pb2, status_pb2

from dsar.v1 import dsar_pb2, dsar_pb2_grpc

if TYPE_CHECKING:
    from tests.support.processes import Child

POLL_SECONDS = 0.1
ENDED = frozenset({dsar_pb2.REQUEST_STATE_READY, dsar_pb2.REQUEST_STATE_FAILED, dsar_pb2.REQUEST_STATE_CANCELLED})


async def wait_for_systems(
    stub: dsar_pb2_grpc.DsarServiceStub, names: set[str], within: float, children: Sequence["Child"] = ()
) -> None:
    """Until ListSystems shows every one of `names` alive; fails early if one of `children` exits."""
    deadline = time.monotonic() + within
    while True:
        for child in children:
            child.check()
        try:
            answer = await stub.ListSystems(dsar_pb2.ListSystemsRequest(), timeout=5)
            if names <= {s.name for s in answer.systems if s.alive}:
                return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"systems {sorted(names)} not alive within {within:.0f}s")
        await asyncio.sleep(POLL_SECONDS)


async def wait_for(
    stub: dsar_pb2_grpc.DsarServiceStub,
    request_id: str,
    done: Callable[[dsar_pb2.DataRequest], bool],
    within: float,
    check: Callable[[], None] = lambda: None,
) -> dsar_pb2.DataRequest:
    """Poll Get until `done(request)`; `check` runs on each round (to fail fast when a child died).

    Polling rather than Watch: the service may be killed and restarted in between.
    """
    deadline = time.monotonic() + within
    last: dsar_pb2.DataRequest | None = None
    while True:
        check()
        try:
            last = (await stub.Get(dsar_pb2.GetRequest(request_id=request_id), timeout=5)).request
            if done(last):
                return last
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
        if time.monotonic() > deadline:
            state = dsar_pb2.RequestState.Name(last.state) if last else "unknown"
            raise TimeoutError(f"request {request_id} not done within {within:.0f}s (state {state})")
        await asyncio.sleep(POLL_SECONDS)


async def wait_until_ended(
    stub: dsar_pb2_grpc.DsarServiceStub, request_id: str, within: float, check: Callable[[], None] = lambda: None
) -> dsar_pb2.DataRequest:
    """Until the request is ready, failed or cancelled."""
    return await wait_for(stub, request_id, lambda r: r.state in ENDED, within, check)


def bad_request(error: grpc.aio.AioRpcError | grpc.RpcError) -> error_details_pb2.BadRequest | None:
    """The BadRequest detail of an error's google.rpc.Status, if it carries one."""
    metadata = error.trailing_metadata() or ()
    for key, value in metadata:
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                found = error_details_pb2.BadRequest()
                if detail.Unpack(found):
                    return found
    return None


def access_request(
    recipient: str, request_key: str, systems: Sequence[str] = (), **subject: object
) -> dsar_pb2.SubmitRequest:
    """An access request (art. 15) for the subject named by `subject` (Subject's fields)."""
    return dsar_pb2.SubmitRequest(
        kind=dsar_pb2.REQUEST_KIND_ACCESS,
        subject=dsar_pb2.Subject(**subject),  # type: ignore[arg-type]
        recipient=recipient,
        request_key=request_key,
        systems=list(systems),
    )


def system_status(request: dsar_pb2.DataRequest, system: str) -> dsar_pb2.SystemStatus:
    """The status of one system of a request."""
    return next(s for s in request.systems if s.system == system)


async def until(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll `condition` until it holds; returns the seconds it took. Fails after `within` seconds."""
    began = time.monotonic()
    while not await condition():
        if time.monotonic() - began > within:
            raise TimeoutError(f"{what}: not within {within:.0f}s")
        await asyncio.sleep(POLL_SECONDS)
    return time.monotonic() - began
