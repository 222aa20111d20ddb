"""A feed of request changes, from PostgreSQL's LISTEN/NOTIFY, shared by every watcher of a replica.

Any replica that changes a request notifies; every replica's feed wakes the watchers of that
request. A watcher also re-reads on a short interval, so a notification lost with a dropped
connection only delays an update.

Watchers are paced by how many there are: a woken watcher lets `1 / READS_PER_SECOND` pass per
watcher of the replica since its last wake-up, so that all of them together re-read about
`READS_PER_SECOND` times a second at most, the changes in between coalesced into one read. One
watcher alone waits 10 ms; fifty busy ones, half a second. Under load a request changes twenty
times in its few seconds (dispatches, progress, completions), and each read is a query and a
message (to the watcher, too, who decodes it); an idle watcher still sees each change at once.
The end of a request (ready, failed, cancelled: the notification's payload names the state)
wakes its watchers unpaced.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import asyncpg

from dsar_service.store.requests import NOTIFY_CHANNEL

READS_PER_SECOND = 100
ENDED_STATES = frozenset({"ready", "failed", "cancelled"})


class ChangeFeed:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._waiters: dict[str, set[Subscription]] = {}
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
        request_id, _, state = payload.partition(" ")
        for subscription in self._waiters.get(request_id, ()):
            subscription.wake(ended=state in ENDED_STATES)

    @property
    def watchers(self) -> int:
        return self._watchers

    @contextlib.contextmanager
    def subscribe(self, request_id: str) -> Iterator["Subscription"]:
        subscription = Subscription(self)
        self._waiters.setdefault(request_id, set()).add(subscription)
        self._watchers += 1
        try:
            yield subscription
        finally:
            self._watchers -= 1
            waiters = self._waiters.get(request_id, set())
            waiters.discard(subscription)
            if not waiters:
                self._waiters.pop(request_id, None)

    def pace(self) -> float:
        """The least time between two wake-ups of one watcher, now (see the module's docstring)."""
        return max(1, self._watchers) / READS_PER_SECOND


class Subscription:
    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self._changed = asyncio.Event()
        self._ended = asyncio.Event()
        self._woken = time.monotonic()

    def wake(self, *, ended: bool) -> None:
        self._changed.set()
        if ended:
            self._ended.set()

    async def changed(self, at_most: float) -> None:
        """Wait until the request changes (paced: changes close together make one wake-up, but
        its end wakes at once), or `at_most` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), at_most)
        early = self._woken + self._feed.pace() - time.monotonic()
        if early > 0 and not self._ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), early)
        self._changed.clear()
        self._woken = time.monotonic()
