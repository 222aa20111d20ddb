"""A transaction PostgreSQL aborted to break a deadlock is run again (it was rolled back whole)."""

import asyncpg
import pytest

from dsar_service.store.requests import _retry_deadlocks


async def test_a_deadlock_victim_is_run_again_and_other_errors_are_not() -> None:
    calls: list[int] = []

    @_retry_deadlocks
    async def step(fail_times: int) -> str:
        calls.append(1)
        if len(calls) <= fail_times:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return "done"

    assert await step(2) == "done" and len(calls) == 3
    calls.clear()
    with pytest.raises(asyncpg.DeadlockDetectedError):
        await step(10)
    assert len(calls) == 4

    @_retry_deadlocks
    async def broken() -> None:
        calls.append(1)
        raise asyncpg.UniqueViolationError("duplicate")

    calls.clear()
    with pytest.raises(asyncpg.UniqueViolationError):
        await broken()
    assert len(calls) == 1
