"""A small asynchronous client of the DsarService API, over one grpc.aio channel.

Each method is one RPC: it sends the request, returns the response's payload, and turns a failed
status into a ServiceError (see _errors.py). Streams are async iterators that end with the RPC.

    async with DsarClient.connect(settings) as client:
        response = await client.submit(request)
        async for request in client.watch(response.request.request_id):
            ...
"""

from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self, cast

import grpc

from dsar.v1 import dsar_pb2, dsar_pb2_grpc
from dsar_common.settings import Settings

from ._errors import translate

if TYPE_CHECKING:
    from dsar.v1.dsar_pb2_grpc import DsarServiceAsyncStub

# How long a unary call may take before the client gives up (the service answers in milliseconds).
DEFAULT_TIMEOUT_SECONDS = 30.0


def open_channel(settings: Settings) -> grpc.aio.Channel:
    """A channel to `settings.server`: plaintext if `settings.insecure`, else mutual TLS.

    The server is checked against `server_ca_file` (the system's roots if empty); the client
    presents `client_cert_file` and `client_key_file`, which the service authorizes.
    """
    if settings.insecure:
        return grpc.aio.insecure_channel(settings.server)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(settings.server_ca_file),
        private_key=_read(settings.client_key_file),
        certificate_chain=_read(settings.client_cert_file),
    )
    return grpc.aio.secure_channel(settings.server, credentials)


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


class DsarClient:
    """The DsarService, one method per RPC, with errors translated. Use as an async context manager."""

    def __init__(self, channel: grpc.aio.Channel, target: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self._channel = channel
        self._target = target
        self._timeout = timeout
        self._stub = cast("DsarServiceAsyncStub", dsar_pb2_grpc.DsarServiceStub(channel))

    @classmethod
    def connect(cls, settings: Settings, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> "DsarClient":
        """A client of the service named by the settings (the channel connects lazily, on first call)."""
        return cls(open_channel(settings), settings.server, timeout)

    @property
    def target(self) -> str:
        """The address of the service, as given."""
        return self._target

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel, cancelling calls still running."""
        await self._channel.close()

    async def submit(self, request: dsar_pb2.SubmitRequest) -> dsar_pb2.SubmitResponse:
        """Register a request (idempotent on its request key)."""
        try:
            response: dsar_pb2.SubmitResponse = await self._stub.Submit(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise translate(error, self._target) from None
        return response

    async def get(self, request_id: str) -> dsar_pb2.DataRequest:
        """One request, with its per-system progress."""
        try:
            response: dsar_pb2.GetResponse = await self._stub.Get(
                dsar_pb2.GetRequest(request_id=request_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as error:
            raise translate(error, self._target) from None
        return response.request

    async def list_requests(
        self,
        states: list["dsar_pb2.RequestState.ValueType"] | None = None,
        overdue_only: bool = False,
        page_size: int = 0,
    ) -> AsyncIterator[dsar_pb2.DataRequest]:
        """Every request matching the filters, newest first, fetching pages as they are needed."""
        token = ""
        while True:
            query = dsar_pb2.ListRequest(
                states=states or [], overdue_only=overdue_only, page_size=page_size, page_token=token
            )
            try:
                response: dsar_pb2.ListResponse = await self._stub.List(query, timeout=self._timeout)
            except grpc.aio.AioRpcError as error:
                raise translate(error, self._target) from None
            for request in response.requests:
                yield request
            token = response.next_page_token
            if not token:
                return

    async def watch(self, request_id: str) -> AsyncIterator[dsar_pb2.DataRequest]:
        """The request now, then again on every change, until it ends (no deadline: it may take long)."""
        call = self._stub.Watch(dsar_pb2.WatchRequest(request_id=request_id))
        try:
            async for response in call:
                yield response.request
        except grpc.aio.AioRpcError as error:
            raise translate(error, self._target) from None
        finally:
            call.cancel()

    async def download(self, request_id: str) -> AsyncIterator[dsar_pb2.DownloadArchiveResponse]:
        """The raw DownloadArchive stream: the archive's info, then its chunks (see _download.py)."""
        call = self._stub.DownloadArchive(dsar_pb2.DownloadArchiveRequest(request_id=request_id))
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise translate(error, self._target) from None
        finally:
            call.cancel()

    async def cancel(self, request_id: str) -> dsar_pb2.DataRequest:
        """Cancel a request that has not ended; what was collected for it is destroyed."""
        try:
            query = dsar_pb2.CancelRequest(request_id=request_id)
            response: dsar_pb2.CancelResponse = await self._stub.Cancel(query, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise translate(error, self._target) from None
        return response.request

    async def retry_system(self, request_id: str, system: str) -> dsar_pb2.DataRequest:
        """Run one system of a request again, as a new attempt."""
        query = dsar_pb2.RetrySystemRequest(request_id=request_id, system=system)
        try:
            response: dsar_pb2.RetrySystemResponse = await self._stub.RetrySystem(query, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise translate(error, self._target) from None
        return response.request

    async def extend_deadline(self, request_id: str, months: int, reason: str) -> dsar_pb2.DataRequest:
        """Push the request's due date back by `months` (1 or 2 in all), for a reason given to the subject."""
        query = dsar_pb2.ExtendDeadlineRequest(request_id=request_id, months=months, reason=reason)
        try:
            response: dsar_pb2.ExtendDeadlineResponse = await self._stub.ExtendDeadline(query, timeout=self._timeout)
        except grpc.aio.AioRpcError as error:
            raise translate(error, self._target) from None
        return response.request

    async def list_systems(self) -> list[dsar_pb2.SystemInfo]:
        """The source systems whose connectors have announced themselves."""
        try:
            response: dsar_pb2.ListSystemsResponse = await self._stub.ListSystems(
                dsar_pb2.ListSystemsRequest(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as error:
            raise translate(error, self._target) from None
        return list(response.systems)
