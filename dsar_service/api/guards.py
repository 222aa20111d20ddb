"""Cross-cutting concerns around every RPC, one concern per guard (errors, authorization, …).

A guard is an async context manager entered around a call (around the whole stream for a
server-streaming RPC); `GuardInterceptor` applies one to every handler of the server:

    grpc.aio.server(interceptors=[GuardInterceptor(map_errors), GuardInterceptor(authorizer)])

The first interceptor is the outermost, so errors raised by later guards are mapped too.
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeAlias

import grpc
from opentelemetry import trace

from dsar_common.observability import tracer

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Guard = Callable[[str, Context], AbstractAsyncContextManager[None]]
_TRACER = tracer(__name__)


@contextlib.asynccontextmanager
async def traced(method: str, context: Context) -> AsyncIterator[None]:
    """The guard that opens a server span per call; what the call does joins its trace."""
    with _TRACER.start_as_current_span(method.lstrip("/"), kind=trace.SpanKind.SERVER):
        yield


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """Enters `guard(method, context)` around each call; `method` is the full name (/pkg.Service/Rpc)."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method, guard = handler_call_details.method, self._guard
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: Context) -> Any:
                async with guard(method, context):
                    return await inner_unary(request, context)

            return grpc.unary_unary_rpc_method_handler(unary, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
                async with guard(method, context):
                    async for item in inner_stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_stream is not None:  # server reflection: guarded as a whole
            inner_bidi = handler.stream_stream

            async def bidi(requests: Any, context: Context) -> AsyncIterator[Any]:
                async with guard(method, context):
                    async for item in inner_bidi(requests, context):
                        yield item

            return grpc.stream_stream_rpc_method_handler(
                bidi, handler.request_deserializer, handler.response_serializer
            )
        return handler
