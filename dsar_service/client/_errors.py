"""The errors of the client side, and the one place that turns a gRPC status into one of them.

    ClientError                  a call failed; `message` is one line fit for a terminal
    ├── ServiceError             the service answered with an error status (`code` says which)
    │   └── ServiceUnavailable   the service could not be reached, or is not answering
    ├── DownloadError            the archive received does not match its announced size or hash
    └── UsageError               the command line or a file named on it is wrong

The service never puts personal data in a status message (dsar_service/errors.py), so the details
it sends can be shown as they are.
"""

import grpc


class ClientError(Exception):
    """A client-side operation failed. The message is one line and holds no personal data."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServiceError(ClientError):
    """The service refused or failed a call; `code` is the gRPC status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class ServiceUnavailable(ServiceError):
    """The service could not be reached (not started yet, wrong address, network down)."""


class DownloadError(ClientError):
    """The archive did not arrive whole: wrong size, wrong hash, or a malformed stream."""


class UsageError(ClientError):
    """An argument, or a file an argument names, is wrong."""


def translate(error: grpc.aio.AioRpcError, target: str) -> ServiceError:
    """The ServiceError for a failed call to the service at `target`."""
    code = error.code()
    details = (error.details() or "").strip().splitlines()
    detail = details[0] if details else ""
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return ServiceUnavailable(
            code, f"cannot reach the dsar service at {target} ({code.name.lower()}; is `dsar serve` running?)"
        )
    name = code.name.lower().replace("_", " ")
    return ServiceError(code, f"{name}: {detail}" if detail else name)
