"""Watchers are paced by their number: changes close together wake a watcher once."""

import asyncio

import pytest

from dsar_service.store import changes
from dsar_service.store.changes import ChangeFeed


def _notify(feed: ChangeFeed, payload: str) -> None:
    feed._on_notify(None, 0, changes.NOTIFY_CHANNEL, payload)


def test_the_pace_grows_with_the_watchers() -> None:
    feed = ChangeFeed(conn=None)  # type: ignore[arg-type]
    assert feed.pace() == 1 / changes.READS_PER_SECOND
    with feed.subscribe("a"), feed.subscribe("b"), feed.subscribe("b"):
        assert feed.watchers == 3
        assert feed.pace() == 3 / changes.READS_PER_SECOND
    assert feed.watchers == 0


async def test_changes_within_the_pace_make_one_wake_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "READS_PER_SECOND", 20)  # one watcher: 50 ms between wake-ups
    feed = ChangeFeed(conn=None)  # type: ignore[arg-type]
    with feed.subscribe("r") as subscription:
        waiting = asyncio.create_task(subscription.changed(at_most=30))
        _notify(feed, "r collecting")
        await asyncio.sleep(0)
        _notify(feed, "r collecting")  # while the first wake-up is being paced
        _notify(feed, "other ready")  # another request's change wakes nobody here
        await asyncio.wait_for(waiting, 5)
        # Both changes were taken by that one wake-up: the next waits for a new change.
        again = asyncio.create_task(subscription.changed(at_most=30))
        await asyncio.sleep(0.2)
        assert not again.done()
        _notify(feed, "r")  # a payload without a state (older replicas) still wakes
        await asyncio.wait_for(again, 5)


async def test_the_end_of_a_request_wakes_its_watcher_unpaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changes, "READS_PER_SECOND", 0.01)  # one watcher: 100 s between wake-ups
    feed = ChangeFeed(conn=None)  # type: ignore[arg-type]
    with feed.subscribe("r") as subscription:
        waiting = asyncio.create_task(subscription.changed(at_most=30))
        _notify(feed, "r collecting")
        await asyncio.sleep(0.05)
        assert not waiting.done()  # an ordinary change is paced
        _notify(feed, "r ready")
        await asyncio.wait_for(waiting, 5)  # the end is not
