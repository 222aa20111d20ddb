"""Parts of archives written ahead: a large system's files, written while others are still searched.

When a system with a large answer completes and other systems of the request are still at work,
or while it still streams a large answer, the assembler writes that system's part of the archive
at once (its data files, CSV twins and schemas, deflated, sealed in a temporary file:
`SealedSpool`), instead of after the last system. The build then splices the part in, which
costs a copy, and the archive is the same.

    parts = PartsAhead()
    parts.start((request_id, system, attempt), write)   # write(): the part, or None
    part = await parts.take((request_id, system, attempt))   # at the build: the part, or None
    parts.drop_request(request_id)                      # after the build: what it did not use

A part lives in this process only: a request's results are handled by one replica (the results
topic is keyed by request), which also starts its build. A build that finds no part (after a
rebalance or a restart) or a part of an older attempt (the system was asked again) writes the
system itself, as it always could. Parts not taken within `ttl` seconds of being written are dropped, and at most
`limit` are kept at a time (the oldest written gives way); a part holds a few small records in
memory, its bytes are on disk.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dsar_service.archive import SealedSpool, SpoolChain, SystemPart
from dsar_service.model import SystemInfo

__all__ = ["PartAhead", "PartKey", "PartsAhead"]

log = logging.getLogger(__name__)

PartKey = tuple[str, str, int]  # (request id, system, attempt)

MAX_PARTS_AHEAD = 8
PART_TTL_SECONDS = 600.0


@dataclass
class PartAhead:
    """A system's part of an archive, and its bytes, sealed until spliced (then `close` the spool);
    `info`: the system as its connector announced it when the part was written."""

    part: SystemPart
    spool: SealedSpool | SpoolChain  # the part's section's bytes, in order
    info: SystemInfo | None = None


class PartsAhead:
    """The parts written ahead in this process, by request, system and attempt."""

    def __init__(self, *, limit: int = MAX_PARTS_AHEAD, ttl: float = PART_TTL_SECONDS) -> None:
        self._limit = limit
        self._ttl = ttl
        self._parts: dict[PartKey, asyncio.Task[PartAhead | None]] = {}
        self._expiries: dict[PartKey, asyncio.TimerHandle] = {}  # cancelled when the part goes earlier

    def start(self, key: PartKey, write: Callable[[], Awaitable[PartAhead | None]]) -> bool:
        """Write the part in the background; False when it is already there, or `limit` parts are
        being written. At the limit, the oldest part written gives way (its request may have ended
        without a build: cancelled, failed, or built by another replica)."""
        if key in self._parts:
            return False
        if len(self._parts) >= self._limit and not self._drop_oldest_written():
            return False
        task = asyncio.create_task(_quietly(write))
        self._parts[key] = task
        task.add_done_callback(lambda done: self._expire_later(key, done))
        return True

    def _expire_later(self, key: PartKey, task: asyncio.Task[PartAhead | None]) -> None:
        """The part is written (or failed): it is dropped if not taken within `ttl` from now."""
        if self._parts.get(key) is task:
            self._expiries[key] = asyncio.get_running_loop().call_later(self._ttl, self._expire, key, task)

    def __contains__(self, key: PartKey) -> bool:
        return key in self._parts

    async def take(self, key: PartKey) -> PartAhead | None:
        """The part, once written (waiting for it if it is being written); None if there is none.

        The caller owns the part: it closes its spool."""
        task = self._forget(key)
        if task is None:
            return None
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            _drop(task)
            if task.cancelled():
                return None
            raise

    def drop_request(self, request_id: str) -> None:
        """Drop the request's parts that were not taken (older attempts, a build that failed)."""
        for key in [key for key in self._parts if key[0] == request_id]:
            _drop(self._forget(key))

    def drop_all(self) -> None:
        for key in list(self._parts):
            _drop(self._forget(key))

    def _drop_oldest_written(self) -> bool:
        oldest = next((key for key, task in self._parts.items() if task.done()), None)
        if oldest is None:
            return False
        _drop(self._forget(oldest))
        return True

    def _expire(self, key: PartKey, task: asyncio.Task[PartAhead | None]) -> None:
        if self._parts.get(key) is task:
            _drop(self._forget(key))

    def _forget(self, key: PartKey) -> asyncio.Task[PartAhead | None] | None:
        """The part's task, no longer kept, and its expiry cancelled: the timer held the task, and
        with it the part's records (a large claims answer's 20,000 redaction notes, 13 MiB) for
        `ttl` seconds after the build had taken it."""
        expiry = self._expiries.pop(key, None)
        if expiry is not None:
            expiry.cancel()
        return self._parts.pop(key, None)


async def _quietly(write: Callable[[], Awaitable[PartAhead | None]]) -> PartAhead | None:
    """`write()`, or None if it fails: the build will write the system itself, and report why."""
    try:
        return await write()
    except Exception as error:  # an optimisation failing: the build has the last word
        log.warning("a part written ahead failed (%s); the build will write it", type(error).__name__)
        return None


def _drop(task: asyncio.Task[PartAhead | None] | None) -> None:
    """Stop the task, or close the spool of the part it wrote."""
    if task is None:
        return

    def close(done: asyncio.Task[PartAhead | None]) -> None:
        if not done.cancelled() and done.exception() is None and (ahead := done.result()) is not None:
            ahead.spool.close()

    task.cancel()
    task.add_done_callback(close)
