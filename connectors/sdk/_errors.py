"""The errors a connector raises, and the one it meets when its declaration is wrong.

    ConnectorError                 base; the message never holds personal data
    ├── TemporaryError             the store is unreachable or overloaded; the runtime retries
    ├── PermanentError             another try would fail the same way; the attempt fails
    │   └── RecordError            a record does not match its dataset (an undeclared field, say)
    └── ConnectorDefinitionError   the declaration itself is wrong; raised when the module is imported

A search raises `TemporaryError` or `PermanentError` (or lets the store's own errors through: the
runtime translates connection errors to `TemporaryError` and anything else to a permanent
failure). It never catches and hides an error: a failed system must look failed, not empty.
"""


class ConnectorError(Exception):
    """Base of every connector error. `retryable` says whether another try may succeed."""

    retryable = False


class TemporaryError(ConnectorError):
    """The store could not be reached, or timed out: the runtime tries again with backoff."""

    retryable = True


class PermanentError(ConnectorError):
    """The search cannot succeed as things are (a missing table, a bad row): the attempt fails."""


class RecordError(PermanentError):
    """A record does not fit its dataset: a field that was not declared, or no key."""


class ConnectorDefinitionError(ConnectorError):
    """A connector's declaration breaks a rule (a field without provenance, a weak identifier alone…)."""
