"""Readiness: a server counts as ready when a real client of its protocol gets an answer from it.

Kafka: the aiokafka admin client fetches cluster metadata. MongoDB: PyMongo's asyncio client runs `ping`.
PostgreSQL: asyncpg connects and runs `SELECT 1`. Each probe makes one attempt and raises if it
fails; `wait_ready` retries it until a deadline, and gives up early if the process has died.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

from dsar_service.stack._model import StackError
from dsar_service.stack._net import port_accepts

_RETRY_SECONDS = 0.1
_ATTEMPT_TIMEOUT_SECONDS = 3.0

Probe = Callable[[], Awaitable[None]]


async def kafka_answers(bootstrap: str) -> None:
    """Fetch cluster metadata from the broker at `bootstrap` (host:port)."""
    host, _, port = bootstrap.rpartition(":")
    if not port_accepts(int(port), host):
        raise ConnectionRefusedError(bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        if not cluster["brokers"]:
            raise ConnectionError("the broker lists no brokers yet")
    finally:
        await admin.close()


async def mongodb_answers(url: str) -> None:
    """Run `ping` on the MongoDB-protocol server at `url` (mongodb://host:port)."""
    address = urlsplit(url)
    if address.port and not port_accepts(address.port, address.hostname or "127.0.0.1"):
        # Checked first: a driver that finds no server waits for its next heartbeat (0.5 s).
        raise ConnectionRefusedError(url)
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
    )
    try:
        await client.admin.command("ping")
    finally:
        await client.close()


async def postgres_answers(url: str) -> None:
    """Connect to `url` and run `SELECT 1`."""
    connection = await asyncpg.connect(url, timeout=2)
    try:
        await connection.fetchval("SELECT 1")
    finally:
        await connection.close()


async def wait_ready(
    probe: Probe,
    *,
    what: str,
    deadline: float,
    log: Path | None,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Retry `probe` until it succeeds; raise StackError at `deadline` or once `alive()` is False.

    The error names `what` and the log file to read, never the data the server holds.
    """
    last_error: BaseException | None = None
    while True:
        if alive is not None and not alive():
            raise ProcessExited(f"{what} exited during startup; see its log: {log}")
        remaining = deadline - time.monotonic()
        try:
            await asyncio.wait_for(probe(), timeout=max(0.1, min(_ATTEMPT_TIMEOUT_SECONDS, remaining)))
            return
        except Exception as error:  # any failure of a client library means "not ready yet"
            last_error = error
        if time.monotonic() >= deadline:
            where = f"; see its log: {log}" if log else ""
            reason = type(last_error).__name__ if last_error else "no answer"
            raise StackError(f"{what} was not ready before the deadline ({reason}){where}")
        await asyncio.sleep(_RETRY_SECONDS)


class ProcessExited(StackError):
    """The server's process died before it became ready (often: its port was taken meanwhile)."""
