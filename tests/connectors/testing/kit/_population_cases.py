"""The generated population as conformance cases, for the kit's tests of claims, crm, recruitment, analytics.

Expected records always come from the population's own rows (`population.subject_rows(system)`
for the demo subject, `population.rows(system)` for the rest of the cast), never from running a
connector. This module holds what the four suites share:

- `POPULATION`, its cast (`DEMO`, `SPOUSE`, `NAMESAKE`) and `full_name` in the form queries carry;
- `demo_rows(system, table)`: the demo subject's rows of one table, checked against
  `DEMO.expected_counts` so a change in the generator cannot silently shrink a case;
- `WORLD_NEGATIVES`: the identifiers of world.md §2 that must find nothing anywhere: the
  namesake's full name alone, the household's shared phone, the family's shared policy number,
  weak identifiers together without a birth date, an unknown e-mail;
- `mongo_database` and `insert_batches`, to seed the kit's MongoDB store in bounded memory.
"""

import contextlib
import itertools
import os
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from connectors.sdk import Ident, Identifier
from connectors.testing.kit import NegativeCase, SeededStore
from connectors.testing.population import Population, generate

Row = dict[str, Any]

POPULATION: Population = generate(seed=7)
DEMO = POPULATION.demo
SPOUSE = POPULATION.spouse
NAMESAKE = POPULATION.namesake
UNKNOWN_EMAIL = "nobody@example.invalid"
INSERT_BATCH = 2_000
"""Documents per `insert_many`: as fast as larger batches on SecantusDB, and little held in memory."""
MONGO_STREAM_RECORDS = int(os.environ.get("DSAR_KIT_MONGO_RECORDS", "20000"))
"""`stream_records` for the MongoDB suites, instead of the kit's 100,000 (`DSAR_KIT_MONGO_RECORDS` to change).

SecantusDB inserts about 6,000 documents a second on a 2-core machine, and a sorted read of
100,000 takes ~7 s (~20 s under tracemalloc): 100,000 records cost a suite 95-145 s (seeding,
streaming, three cancellation reads, the drop). 20,000 keep each suite under a minute and still
span 20-40 round trips of the connectors' cursors. The memory ceiling still means something at
that size: 20,000 decoded documents alone take ~16 MiB for crm interactions and ~78 MiB for
analytics visits, so a search that lists them before yielding goes over the 16 MiB ceiling. Against
a real MongoDB (`DSAR_TEST_MONGODB_URL`), set `DSAR_KIT_MONGO_RECORDS=100000`."""


def full_name(last: str, first: str) -> str:
    """A full name as queries carry it (`"<last>\\x1f<first>"`)."""
    return Identifier.full_name(last, first).value


def rows(population: Population, system: str, table: str, where: Callable[[Row], bool] | None = None) -> list[Row]:
    """The rows of one table of `system` (all of them, or those `where` accepts), in generation order."""
    return [row for name, row in population.rows(system) if name == table and (where is None or where(row))]


def demo_rows(system: str, table: str, population: Population = POPULATION) -> list[Row]:
    """The demo subject's rows of one table, from `subject_rows`; their number is `expected_counts`'."""
    found = [row for name, row in population.subject_rows(system) if name == table]
    expected = population.demo.expected_counts[system][table]
    assert len(found) == expected, f"{system}.{table}: {len(found)} subject rows, expected_counts says {expected}"
    return found


def keys(found: Iterable[Row], column: str = "_id") -> list[str]:
    """Record keys as connectors give them: the key column's value as a string (`ObjectId` included)."""
    return [str(row[column]) for row in found]


WORLD_NEGATIVES: tuple[NegativeCase, ...] = (
    NegativeCase("namesake's full name alone", {Ident.FULL_NAME: full_name(DEMO.last_name, DEMO.first_name)}),
    NegativeCase("shared household phone", {Ident.PHONE: DEMO.phone}),
    NegativeCase("shared family policy number", {Ident.POLICY_NUMBER: DEMO.policy_number}),
    NegativeCase("weak identifiers together, without a birth date", {
        Ident.PHONE: DEMO.phone, Ident.POLICY_NUMBER: DEMO.policy_number,
        Ident.FULL_NAME: full_name(DEMO.last_name, DEMO.first_name)}),
    NegativeCase("household phone with the spouse's name", {
        Ident.PHONE: DEMO.phone, Ident.FULL_NAME: full_name(SPOUSE.last_name, SPOUSE.first_name)}),
    NegativeCase("unknown e-mail", {Ident.EMAIL: UNKNOWN_EMAIL}),
)  # fmt: skip
"""world.md §2: what must find nothing in any system, whichever identifiers it accepts (the kit hands
them to the searches unfiltered)."""


@contextlib.asynccontextmanager
async def mongo_database(store: SeededStore) -> AsyncIterator[AsyncDatabase[Row]]:
    """The kit's MongoDB database, through a client of its own, closed on exit."""
    client: AsyncMongoClient[Row] = AsyncMongoClient(store.url, tz_aware=True)
    try:
        yield client[store.database]
    finally:
        await client.close()


async def insert_batches(collection: AsyncCollection[Row], documents: Iterable[Row]) -> int:
    """Insert `documents` (a generator, ideally) `INSERT_BATCH` at a time; returns how many."""
    inserted = 0
    iterator = iter(documents)
    while batch := list(itertools.islice(iterator, INSERT_BATCH)):
        await collection.insert_many(batch, ordered=False)
        inserted += len(batch)
    return inserted
