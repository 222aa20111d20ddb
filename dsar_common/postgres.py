"""What the service's pool and the connectors' PostgreSQL sources share about asyncpg connections."""

from collections.abc import Awaitable, Callable
from typing import Any


def array_types_learner(*type_names: str) -> Callable[[Any], Awaitable[None]]:
    """A pool's `init`: each connection learns the arrays of these types in one query when it opens.

    asyncpg asks the server about an array type (`uuid[]`, and a table's row type too) the first
    time a connection meets it: a catalogue query, with the JIT setting read and restored around
    it, about 3 ms of the server's time. Met in a statement, that is on a request's path, and a
    pool growing under a burst of requests met them all there (about 60 lookups in the first two
    seconds of the bench's many requests). A type not named here is still learnt when met.
    """
    query = "SELECT " + ", ".join(f"NULL::{name}[]" for name in type_names)

    async def learn(connection: Any) -> None:
        await connection.fetchrow(query)

    return learn
