"""`sdk.documents`: a MongoDB query's documents, read ahead, against a real SecantusDB.

Every document comes, once, in the cursor's order; the next batches are asked for while the
search still handles the current one (the server's command log shows the getMores); a search
that stops early leaves no cursor open and no task behind; a server's error reaches the search.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import OperationFailure

from connectors.sdk import documents
from connectors.sdk._stores import BATCHES_AHEAD
from tests.support.local_servers import local_mongodb

pytestmark = pytest.mark.integration

DOCUMENTS = 1_050
BATCH = 100


class Commands(monitoring.CommandListener):
    """The commands the client sent, by name, in order; and how each ended, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.ended: list[tuple[str, str]] = []  # (name, "succeeded" or "failed")

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self.ended.append((event.command_name, "succeeded"))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self.ended.append((event.command_name, "failed"))


@pytest.fixture(scope="module")
def mongo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with local_mongodb(tmp_path_factory.mktemp("secantus")) as url:
        yield url


@pytest.fixture
async def client(mongo_url: str) -> AsyncIterator[tuple[Any, Commands]]:
    commands = Commands()
    client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True, event_listeners=[commands])
    database = client["documents_test"]
    await database.drop_collection("visits")
    await database.visits.insert_many(
        [{"_id": n, "user_id": "u1" if n % 2 else "u2", "n": n} for n in range(DOCUMENTS)]
    )
    await database.visits.create_index("user_id")
    commands.names.clear()
    try:
        yield database, commands
    finally:
        await client.close()


async def test_every_document_comes_once_in_the_cursor_order(client: tuple[Any, Commands]) -> None:
    database, _ = client
    found = [d["n"] async for d in documents(database.visits, {"user_id": "u1"}, sort=[("n", -1)], batch_size=BATCH)]
    assert found == sorted(range(1, DOCUMENTS, 2), reverse=True)


async def test_a_projection_is_applied(client: tuple[Any, Commands]) -> None:
    database, _ = client
    found = [d async for d in documents(database.visits, {"_id": {"$lt": 3}}, {"n": 1, "_id": 0}, sort=[("n", 1)])]
    assert found == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_the_next_batches_are_read_while_the_search_handles_the_first(client: tuple[Any, Commands]) -> None:
    database, commands = client
    reading = documents(database.visits, {}, batch_size=BATCH)
    await anext(reading)  # the search holds the first document and does nothing more
    await asyncio.sleep(0.5)
    # the first batch, then BATCHES_AHEAD more read ahead: never the whole collection
    assert commands.names.count("find") == 1
    assert commands.names.count("getMore") == BATCHES_AHEAD
    await reading.aclose()


async def test_stopping_early_closes_the_cursor_and_leaves_no_task(client: tuple[Any, Commands]) -> None:
    database, commands = client
    before = asyncio.all_tasks()
    reading = documents(database.visits, {}, batch_size=BATCH)
    async for document in reading:
        if document["n"] == 10:
            break
    await asyncio.sleep(0.2)  # the reader is waiting for room, its batches read
    await reading.aclose()
    # the reader was stopped before the cursor was closed, nothing left to finish later
    assert asyncio.all_tasks() <= before
    assert commands.names[-1] == "killCursors"


async def test_a_search_stopped_while_a_batch_is_read_lets_that_read_end_then_closes_the_cursor(
    client: tuple[Any, Commands],
) -> None:
    database, commands = client
    before = asyncio.all_tasks()
    reading = documents(database.visits, {}, batch_size=BATCH)
    await anext(reading)
    await asyncio.sleep(0)  # the reader starts, its getMore under way
    assert commands.names[-1] == "getMore"
    await reading.aclose()
    assert asyncio.all_tasks() <= before
    # the getMore under way was let finish (PyMongo leaves the socket of a cancelled one open),
    # then the cursor was closed
    assert commands.ended[-2:] == [("getMore", "succeeded"), ("killCursors", "succeeded")]


async def test_an_error_of_the_server_reaches_the_search(client: tuple[Any, Commands]) -> None:
    database, _ = client
    with pytest.raises(OperationFailure):
        async for _ in documents(database.visits, {"n": {"$nosuchoperator": 1}}):
            pass
