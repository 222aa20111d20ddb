"""How long to wait between tries when a source is temporarily unavailable: a value, not globals."""

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: `attempts` tries, waiting `initial` then times `multiplier`, up to `maximum`.

    The runtime retries a search only while no chunk of the attempt has been sent; after that a
    temporary error fails the attempt (retryable), and the service decides on a new attempt.
    """

    attempts: int = 4
    initial: float = 0.5
    maximum: float = 10.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.initial < 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError("RetryPolicy needs attempts >= 1, 0 <= initial <= maximum, multiplier >= 1")

    def delays(self) -> Iterator[float]:
        """The waits before the 2nd, 3rd… tries (`attempts - 1` of them)."""
        delay = self.initial
        for _ in range(self.attempts - 1):
            yield min(delay, self.maximum)
            delay *= self.multiplier
