"""Where a connector's data lives. The runtime opens the store and lends a connection to each search."""

import re
from dataclasses import dataclass
from typing import Literal

from connectors.sdk._errors import ConnectorDefinitionError

StoreKind = Literal["postgresql", "mongodb"]
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class Store:
    """A store kind and a database name. Build one with `postgresql(...)` or `mongodb(...)`.

    What a search receives as `db`:
      - postgresql: an `asyncpg.Connection` borrowed from a pool, for the duration of the search;
        open a transaction and a cursor on it to stream rows.
      - mongodb: a PyMongo `AsyncDatabase` (`pymongo.asynchronous.database`, timezone-aware
        datetimes): `find` returns a cursor to read with `async for`; `distinct`, `find_one`,
        `count_documents` and `aggregate` are coroutines to await.
    """

    kind: StoreKind
    database: str

    def __post_init__(self) -> None:
        if not _DATABASE_NAME.match(self.database):
            raise ConnectorDefinitionError(f"invalid database name {self.database!r}")


def postgresql(database: str) -> Store:
    """A PostgreSQL database, reached at `DSAR_SOURCE_POSTGRES_URL` + `/database`."""
    return Store("postgresql", database)


def mongodb(database: str) -> Store:
    """A MongoDB database on the server at `DSAR_SOURCE_MONGODB_URL`."""
    return Store("mongodb", database)
