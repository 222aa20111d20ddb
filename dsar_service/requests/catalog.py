"""The catalog of source systems, as their connectors announced themselves, read at most once a second.

Collection (what to ask), assembly (each system's datasets and fields, for the archive) and the
API (which systems exist) share one `SystemCatalog` per process, so that a busy replica reads the
`systems` table once a second rather than once per request. A heartbeat from a system not in
the catalog makes the next read go to the database (`forget`), so a new connector is seen at once.
"""

import time
from collections.abc import Callable
from datetime import UTC, datetime

from dsar_service.model import SystemInfo
from dsar_service.store import RequestStore

__all__ = ["CACHE_SECONDS", "SystemCatalog"]

CACHE_SECONDS = 1.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SystemCatalog:
    """The announced systems by name (liveness as of the read), cached for `CACHE_SECONDS`."""

    def __init__(self, store: RequestStore, clock: Callable[[], datetime] = _utc_now) -> None:
        self._store = store
        self._clock = clock
        self._read: tuple[float, dict[str, SystemInfo]] | None = None

    async def systems(self) -> dict[str, SystemInfo]:
        now = time.monotonic()
        if self._read is None or now - self._read[0] > CACHE_SECONDS:
            self._read = (now, {info.name: info for info in await self._store.systems(self._clock())})
        return self._read[1]

    def knows(self, system: str) -> bool:
        """Whether the last read had `system` (False before any read)."""
        return self._read is not None and system in self._read[1]

    def forget(self) -> None:
        """Read the database at the next call (a system appeared)."""
        self._read = None
