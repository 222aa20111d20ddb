"""A feed of request changes, from PostgreSQL's LISTEN/NOTIFY, shared by every watcher of a replica.

Any replica that changes a request notifies; every replica's feed wakes the watchers of that
request. A watcher also re-reads on a short interval, so a notification lost with a dropped
connection only delays an update.

Watchers are paced by how many there are: a woken watcher lets `1 / READS_PER_SECOND` pass per
watcher of the replica since its last wake-up, so that all of them together re-read about
`READS_PER_SECOND` times a second at most, the changes in between coalesced into one read. One
watcher alone waits 5 ms; fifty busy ones, a quarter of a second. Under load a request changes
twenty times in its few seconds (dispatches, progress, completions), and each read is a query
and a message; an idle watcher still sees each change at once.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg

from dsar_service.store.requests import NOTIFY_CHANNEL

READS_PER_SECOND = 200


class ChangeFeed:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._watchers = 0

    @classmethod
    @contextlib.asynccontextmanager
    async def listening(cls, dsn: str) -> AsyncIterator["ChangeFeed"]:
        conn = await asyncpg.connect(dsn)
        feed = cls(conn)
        await conn.add_listener(NOTIFY_CHANNEL, feed._on_notify)
        try:
            yield feed
        finally:
            with contextlib.suppress(Exception):
                await conn.remove_listener(NOTIFY_CHANNEL, feed._on_notify)
            await conn.close()

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for event in self._waiters.get(payload, ()):
            event.set()

    @property
    def watchers(self) -> int:
        return self._watchers

    @contextlib.contextmanager
    def subscribe(self, request_id: str) -> Iterator["Subscription"]:
        event = asyncio.Event()
        self._waiters.setdefault(request_id, set()).add(event)
        self._watchers += 1
        try:
            yield Subscription(event, self)
        finally:
            self._watchers -= 1
            waiters = self._waiters.get(request_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(request_id, None)

    def pace(self) -> float:
        """The least time between two wake-ups of one watcher, now (see the module's docstring)."""
        return max(1, self._watchers) / READS_PER_SECOND


class Subscription:
    def __init__(self, event: asyncio.Event, feed: ChangeFeed) -> None:
        self._event = event
        self._feed = feed
        self._woken = time.monotonic()

    async def changed(self, at_most: float) -> None:
        """Wait until the request changes (paced: changes close together make one wake-up), or
        `at_most` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), at_most)
        early = self._woken + self._feed.pace() - time.monotonic()
        if early > 0:
            await asyncio.sleep(early)
        self._event.clear()
        self._woken = time.monotonic()
