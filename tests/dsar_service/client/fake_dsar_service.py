"""A fake DsarService with canned answers, to run on a real grpc.aio server (see conftest.py)."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from dsar.v1 import dsar_pb2, dsar_pb2_grpc
from dsar_common.settings import Settings


@dataclass
class FakeDsarService(dsar_pb2_grpc.DsarServiceServicer):
    """Answers from its fields; records what it was sent. `fail` makes every call end with that status."""

    requests: dict[str, dsar_pb2.DataRequest] = field(default_factory=dict)
    pages: list[list[dsar_pb2.DataRequest]] = field(default_factory=list)
    snapshots: list[dsar_pb2.DataRequest] = field(default_factory=list)
    # After the snapshots: hang (as a live service would between changes) rather than end the stream.
    hang_after_snapshots: bool = False
    archive: list[dsar_pb2.DownloadArchiveResponse] = field(default_factory=list)
    # Abort the download with this status after sending the canned messages.
    abort_download: grpc.StatusCode | None = None
    systems: list[dsar_pb2.SystemInfo] = field(default_factory=list)
    fail: tuple[grpc.StatusCode, str] | None = None
    submitted: list[dsar_pb2.SubmitRequest] = field(default_factory=list)
    list_queries: list[dsar_pb2.ListRequest] = field(default_factory=list)
    # Cancel, RetrySystem and ExtendDeadline calls, as received.
    changes: list[object] = field(default_factory=list)
    watch_cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    async def _maybe_fail(self, context: grpc.aio.ServicerContext) -> None:
        if self.fail:
            await context.abort(*self.fail)

    async def Submit(
        self, request: dsar_pb2.SubmitRequest, context: grpc.aio.ServicerContext
    ) -> dsar_pb2.SubmitResponse:
        await self._maybe_fail(context)
        self.submitted.append(request)
        created = dsar_pb2.DataRequest(
            request_id=f"req-{len(self.submitted)}",
            request_key=request.request_key,
            kind=request.kind,
            state=dsar_pb2.REQUEST_STATE_COLLECTING,
            recipient=request.recipient,
        )
        return dsar_pb2.SubmitResponse(request=created, created=True)

    async def Get(self, request: dsar_pb2.GetRequest, context: grpc.aio.ServicerContext) -> dsar_pb2.GetResponse:
        await self._maybe_fail(context)
        if request.request_id not in self.requests:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such request")
        return dsar_pb2.GetResponse(request=self.requests[request.request_id])

    async def List(self, request: dsar_pb2.ListRequest, context: grpc.aio.ServicerContext) -> dsar_pb2.ListResponse:
        await self._maybe_fail(context)
        self.list_queries.append(request)
        index = int(request.page_token or "0")
        token = str(index + 1) if index + 1 < len(self.pages) else ""
        return dsar_pb2.ListResponse(requests=self.pages[index] if self.pages else [], next_page_token=token)

    async def Watch(
        self, request: dsar_pb2.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[dsar_pb2.WatchResponse]:
        await self._maybe_fail(context)
        try:
            for snapshot in self.snapshots:
                yield dsar_pb2.WatchResponse(request=snapshot)
            if self.hang_after_snapshots:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.watch_cancelled.set()
            raise

    async def DownloadArchive(
        self, request: dsar_pb2.DownloadArchiveRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[dsar_pb2.DownloadArchiveResponse]:
        await self._maybe_fail(context)
        for message in self.archive:
            yield message
        if self.abort_download:
            await context.abort(self.abort_download, "archive storage unavailable")

    async def Cancel(
        self, request: dsar_pb2.CancelRequest, context: grpc.aio.ServicerContext
    ) -> dsar_pb2.CancelResponse:
        self.changes.append(request)
        cancelled = dsar_pb2.DataRequest(request_id=request.request_id, state=dsar_pb2.REQUEST_STATE_CANCELLED)
        return dsar_pb2.CancelResponse(request=cancelled)

    async def RetrySystem(
        self, request: dsar_pb2.RetrySystemRequest, context: grpc.aio.ServicerContext
    ) -> dsar_pb2.RetrySystemResponse:
        self.changes.append(request)
        return dsar_pb2.RetrySystemResponse(request=dsar_pb2.DataRequest(request_id=request.request_id))

    async def ExtendDeadline(
        self, request: dsar_pb2.ExtendDeadlineRequest, context: grpc.aio.ServicerContext
    ) -> dsar_pb2.ExtendDeadlineResponse:
        self.changes.append(request)
        extended = dsar_pb2.DataRequest(request_id=request.request_id, extension_reason=request.reason)
        return dsar_pb2.ExtendDeadlineResponse(request=extended)

    async def ListSystems(
        self, request: dsar_pb2.ListSystemsRequest, context: grpc.aio.ServicerContext
    ) -> dsar_pb2.ListSystemsResponse:
        await self._maybe_fail(context)
        return dsar_pb2.ListSystemsResponse(systems=self.systems)


@dataclass
class Served:
    """The fake service and the settings that point a client at it."""

    service: FakeDsarService
    settings: Settings
