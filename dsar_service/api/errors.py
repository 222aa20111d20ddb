"""The one mapping from the service's errors to gRPC statuses, as a guard around every call.

DsarError subclasses map to their status code, with `google.rpc` details: a BadRequest listing
each field at fault, a RetryInfo when the caller should come back later. Anything else is a bug:
it is logged with its traceback and the caller gets INTERNAL with no detail, so nothing (personal
data included) leaks through an error message.
"""

import contextlib
import logging
from collections.abc import AsyncIterator

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from dsar_common.kafka import BusError
from dsar_service.api.guards import Context
from dsar_service.errors import (
    AlreadyExists,
    DsarError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unavailable,
)

log = logging.getLogger(__name__)

_CODES: dict[type[DsarError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(error: BaseException) -> status_pb2.Status:
    """The google.rpc.Status a caller receives for `error`."""
    if isinstance(error, BusError):
        error = Unavailable("the message bus cannot be reached; try again later")
    if not isinstance(error, DsarError):
        return status_pb2.Status(code=code_pb2.INTERNAL, message="internal error")
    code = next((code for kind, code in _CODES.items() if isinstance(error, kind)), grpc.StatusCode.INTERNAL)
    details = []
    if isinstance(error, InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                    for v in error.violations
                ]
            )
        )
    if isinstance(error, ResourceExhausted):
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(error.retry_after_seconds * 1e9))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    packed = []
    for detail in details:
        holder = any_pb2.Any()
        holder.Pack(detail)
        packed.append(holder)
    return status_pb2.Status(code=code.value[0], message=error.message, details=packed)


@contextlib.asynccontextmanager
async def map_errors(method: str, context: Context) -> AsyncIterator[None]:
    """The guard that turns what a call raises into its status (see the module docstring)."""
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except Exception as error:
        if not isinstance(error, DsarError | BusError):
            log.exception("unexpected error in %s", method, exc_info=error)
        await context.abort_with_status(rpc_status.to_status(status_for(error)))
