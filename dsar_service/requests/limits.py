"""Rate limits: per caller (a token bucket in each replica) and per subject (counted in the database).

A caller over its rate, or a subject with too many requests in a day, gets RESOURCE_EXHAUSTED
with the time to wait. The per-subject count goes through keyed digests of the subject's strong
identifiers, so the database never holds the identifiers in clear.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dsar_service.errors import ResourceExhausted


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class CallerLimiter:
    """At most `per_minute` calls per caller, with bursts up to the same number."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, caller: str) -> None:
        if self.per_minute <= 0:
            return
        now = self.clock()
        rate = self.per_minute / 60.0
        bucket = self._buckets.setdefault(caller, _Bucket(float(self.per_minute), now))
        bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1.0:
            raise ResourceExhausted(
                f"caller {caller} is over its rate of {self.per_minute} calls a minute",
                retry_after_seconds=(1.0 - bucket.tokens) / rate,
            )
        bucket.tokens -= 1.0
