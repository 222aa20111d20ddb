"""The DsarService servicer: each method converts, delegates to RequestService, converts back."""

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from dsar.v1 import dsar_pb2, dsar_pb2_grpc
from dsar_service.api.auth import current_caller
from dsar_service.api.convert import (
    archive_to_proto,
    from_timestamp,
    request_to_proto,
    states_from_proto,
    submission_from_proto,
    system_info_to_proto,
)
from dsar_service.requests.service import RequestService

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

DOWNLOAD_CHUNK_BYTES = 256 * 1024


class DsarServicer(dsar_pb2_grpc.DsarServiceServicer):
    def __init__(self, service: RequestService) -> None:
        self._service = service

    async def Submit(self, request: dsar_pb2.SubmitRequest, context: Context) -> dsar_pb2.SubmitResponse:
        view, created = await self._service.submit(submission_from_proto(request), current_caller.get())
        return dsar_pb2.SubmitResponse(request=request_to_proto(view), created=created)

    async def Get(self, request: dsar_pb2.GetRequest, context: Context) -> dsar_pb2.GetResponse:
        return dsar_pb2.GetResponse(request=request_to_proto(await self._service.get(request.request_id)))

    async def List(self, request: dsar_pb2.ListRequest, context: Context) -> dsar_pb2.ListResponse:
        due_before = from_timestamp(request.due_before) if request.HasField("due_before") else None
        views, token = await self._service.list_requests(
            states_from_proto(list(request.states)),
            request.overdue_only,
            due_before,
            request.page_size,
            request.page_token,
        )
        return dsar_pb2.ListResponse(requests=[request_to_proto(v) for v in views], next_page_token=token)

    async def Watch(self, request: dsar_pb2.WatchRequest, context: Context) -> AsyncIterator[dsar_pb2.WatchResponse]:
        async for view in self._service.watch(request.request_id):
            yield dsar_pb2.WatchResponse(request=request_to_proto(view))

    async def Cancel(self, request: dsar_pb2.CancelRequest, context: Context) -> dsar_pb2.CancelResponse:
        return dsar_pb2.CancelResponse(
            request=request_to_proto(await self._service.cancel(request.request_id, current_caller.get()))
        )

    async def RetrySystem(self, request: dsar_pb2.RetrySystemRequest, context: Context) -> dsar_pb2.RetrySystemResponse:
        view = await self._service.retry_system(request.request_id, request.system, current_caller.get())
        return dsar_pb2.RetrySystemResponse(request=request_to_proto(view))

    async def ExtendDeadline(
        self, request: dsar_pb2.ExtendDeadlineRequest, context: Context
    ) -> dsar_pb2.ExtendDeadlineResponse:
        view = await self._service.extend_deadline(
            request.request_id, request.months, request.reason, current_caller.get()
        )
        return dsar_pb2.ExtendDeadlineResponse(request=request_to_proto(view))

    async def DownloadArchive(
        self, request: dsar_pb2.DownloadArchiveRequest, context: Context
    ) -> AsyncIterator[dsar_pb2.DownloadArchiveResponse]:
        download = await self._service.download(request.request_id, current_caller.get())
        yield dsar_pb2.DownloadArchiveResponse(info=archive_to_proto(download.archive))
        async for chunk in download.chunks:
            for start in range(0, len(chunk), DOWNLOAD_CHUNK_BYTES):
                yield dsar_pb2.DownloadArchiveResponse(chunk=chunk[start : start + DOWNLOAD_CHUNK_BYTES])

    async def ListSystems(self, request: dsar_pb2.ListSystemsRequest, context: Context) -> dsar_pb2.ListSystemsResponse:
        systems = await self._service.list_systems()
        return dsar_pb2.ListSystemsResponse(systems=[system_info_to_proto(s) for s in systems])
