"""Offsets are committed only up to the lowest command still running, per partition."""

from connectors.runtime.offsets import OffsetTracker


def test_commits_wait_for_the_lowest_unfinished_command() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started("p0", offset)
    tracker.started("p1", 5)
    assert tracker.committable() == {"p0": 10, "p1": 5}
    tracker.committed({"p0": 10, "p1": 5})
    assert tracker.committable() == {}

    tracker.finished("p0", 12)  # a later command finished first: nothing moves
    tracker.finished("p1", 5)
    assert tracker.committable() == {"p1": 6}
    tracker.finished("p0", 10)
    assert tracker.committable() == {"p0": 11, "p1": 6}
    tracker.committed({"p0": 11, "p1": 6})
    tracker.finished("p0", 11)
    assert tracker.committable() == {"p0": 13}
    assert tracker.pending() == 0


def test_a_revoked_partition_is_forgotten() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.started("p0", 3)
    tracker.forget("p0")
    tracker.finished("p0", 3)  # a late finish of a revoked partition changes nothing
    assert tracker.committable() == {} and tracker.pending() == 0


def test_a_partition_whose_log_starts_again_is_forgotten() -> None:
    """The topic was re-created (a broker that lost its data): the old offsets must not be committed."""
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.started("p0", 40)
    tracker.finished("p0", 40)
    tracker.committed(tracker.committable())  # 41
    tracker.started("p0", 0)  # the new log's first command
    assert tracker.committable() == {"p0": 0}
    tracker.finished("p0", 0)
    assert tracker.committable() == {"p0": 1}


def test_reset_forgets_every_partition() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.started("p0", 3)
    tracker.started("p1", 8)
    tracker.reset()
    assert tracker.pending() == 0 and tracker.committable() == {}
