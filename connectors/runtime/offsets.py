"""Which offsets may be committed while commands of one partition finish out of order.

Commands run concurrently, so a later command may finish before an earlier one. Committing the
later offset would lose the earlier command if the process then crashed. The tracker commits, per
partition, only up to the lowest command still unfinished: after a crash, the commands from there
on run again (at least once; the service de-duplicates).

A command at an offset below the one committed for its partition means the log started again
(the topic was deleted and re-created, as by a broker that lost its data): the partition's
past is forgotten, so that the new commands hold back commits as they should.
"""

from collections.abc import Hashable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    """Tracks started and finished offsets per partition `P` (any hashable, e.g. a TopicPartition)."""

    def __init__(self) -> None:
        self._pending: dict[P, set[int]] = {}
        self._next: dict[P, int] = {}  # one past the highest offset seen
        self._committed: dict[P, int] = {}

    def started(self, partition: P, offset: int) -> None:
        """A command at `offset` was taken; it holds back commits until `finished`."""
        if offset < self._committed.get(partition, -1):  # the partition's log started again
            self.forget(partition)
        self._pending.setdefault(partition, set()).add(offset)
        self._next[partition] = max(self._next.get(partition, 0), offset + 1)

    def finished(self, partition: P, offset: int) -> None:
        """The command at `offset` is done (completed, failed, cancelled or dead-lettered)."""
        self._pending.get(partition, set()).discard(offset)

    def pending(self) -> int:
        """How many commands are unfinished, over all partitions."""
        return sum(len(offsets) for offsets in self._pending.values())

    def committable(self) -> dict[P, int]:
        """The offsets to commit now (Kafka's convention: the next offset to read), where they moved."""
        ready: dict[P, int] = {}
        for partition, after in self._next.items():
            pending = self._pending.get(partition)
            offset = min(pending) if pending else after
            if offset > self._committed.get(partition, -1):
                ready[partition] = offset
        return ready

    def committed(self, offsets: dict[P, int]) -> None:
        """Record that `offsets` were committed."""
        for partition, offset in offsets.items():
            self._committed[partition] = max(self._committed.get(partition, -1), offset)

    def forget(self, partition: P) -> None:
        """Drop a partition that was revoked: another instance now owns it."""
        self._pending.pop(partition, None)
        self._next.pop(partition, None)
        self._committed.pop(partition, None)

    def reset(self) -> None:
        """Forget every partition (the consumer subscribed again: what it gets back starts afresh)."""
        self._pending.clear()
        self._next.clear()
        self._committed.clear()
