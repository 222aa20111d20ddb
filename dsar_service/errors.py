"""The errors of the service, as a small tree that the API maps to gRPC status codes in one place.

DsarError                      (retryable: bool, message never holds personal data)
├── InvalidArgument            bad input; carries one FieldViolation per field at fault
├── NotFound                   no such request, system or archive
├── AlreadyExists              a request key reused with other content
├── FailedPrecondition         the request is not in a state that allows the call
├── PermissionDenied           the caller may not do this
├── ResourceExhausted          a rate limit was hit; `retry_after_seconds` says when to come back
└── Unavailable                a dependency (database, broker) cannot be reached; retryable
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One field at fault: its path in the request (e.g. `subject.emails[0]`) and why, in words."""

    field: str
    description: str


class DsarError(Exception):
    """Base of every error the service raises on purpose."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(DsarError):
    def __init__(self, violations: list[FieldViolation]) -> None:
        fields = ", ".join(v.field for v in violations)
        super().__init__(f"invalid request: {fields}")
        self.violations = violations


class NotFound(DsarError):
    pass


class AlreadyExists(DsarError):
    pass


class FailedPrecondition(DsarError):
    pass


class PermissionDenied(DsarError):
    pass


class ResourceExhausted(DsarError):
    retryable = True

    def __init__(self, message: str, retry_after_seconds: float) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DsarError):
    retryable = True
