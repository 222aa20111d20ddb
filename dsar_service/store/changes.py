"""A feed of request changes, from PostgreSQL's LISTEN/NOTIFY, shared by every watcher of a replica.

Any replica that changes a request notifies; every replica's feed wakes the watchers of that
request. A watcher also re-reads on a short interval, so a notification lost with a dropped
connection only delays an update.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import asyncpg

from dsar_service.store.requests import NOTIFY_CHANNEL


class ChangeFeed:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._waiters: dict[str, set[asyncio.Event]] = {}

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

    @contextlib.contextmanager
    def subscribe(self, request_id: str) -> Iterator["Subscription"]:
        event = asyncio.Event()
        self._waiters.setdefault(request_id, set()).add(event)
        try:
            yield Subscription(event)
        finally:
            waiters = self._waiters.get(request_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(request_id, None)


class Subscription:
    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    async def changed(self, at_most: float) -> None:
        """Wait until the request changes, or `at_most` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), at_most)
        self._event.clear()
