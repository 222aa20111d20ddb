"""`wait_ready`: retries a probe until it answers, and fails clearly at the deadline or when the process dies."""

import time
from pathlib import Path

import pytest

from dsar_service.stack import StackError
from dsar_service.stack._readiness import ProcessExited, wait_ready


async def test_retries_until_the_probe_answers() -> None:
    attempts = []

    async def probe() -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError

    await wait_ready(probe, what="server", deadline=time.monotonic() + 5, log=None)

    assert len(attempts) == 3


async def test_fails_at_the_deadline_naming_the_component_and_its_log() -> None:
    async def probe() -> None:
        raise ConnectionRefusedError

    with pytest.raises(StackError) as failure:
        await wait_ready(probe, what="Tansu (Kafka)", deadline=time.monotonic() + 0.3, log=Path("/x/kafka.log"))

    assert str(failure.value) == (
        "Tansu (Kafka) was not ready before the deadline (ConnectionRefusedError); see its log: /x/kafka.log"
    )


async def test_fails_at_once_when_the_process_has_died() -> None:
    async def probe() -> None:
        raise AssertionError("a dead process is not probed")

    began = time.monotonic()
    with pytest.raises(ProcessExited) as failure:
        await wait_ready(probe, what="SecantusDB", deadline=began + 30, log=Path("/x/mongodb.log"), alive=lambda: False)
    assert time.monotonic() - began < 1
    assert str(failure.value) == "SecantusDB exited during startup; see its log: /x/mongodb.log"
