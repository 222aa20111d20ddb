"""Running a connector's searches directly, the way the runtime calls them, without Kafka or sealing."""

from collections import Counter
from collections.abc import AsyncGenerator

from connectors.runtime.sources import Source
from connectors.sdk import REDACTIONS, Connector, Query, Record


async def stream_records(
    connector: Connector, source: Source, query: Query, *, restrict: bool = True
) -> AsyncGenerator[Record, None]:
    """Every record the connector's searches yield for `query`, dataset after dataset.

    The searches share one `db` lent by `source`, as in the runtime; each is closed (`aclose`) when it ends or when the
    consumer stops early. With `restrict` (the runtime's behaviour) the query keeps only the
    identifiers the connector accepts; without it, the searches see the query as it is.
    Nothing is de-duplicated or filtered: this is what the searches produce.
    """
    asked = connector.restrict(query) if restrict else query
    async with source.lend() as db:  # one connection (in PostgreSQL one snapshot) for every search
        for dataset in connector.datasets:
            iterator = dataset.searcher(asked, db)
            try:
                async for record in iterator:
                    yield record
            finally:
                await iterator.aclose()  # type: ignore[attr-defined]  # searches are async generators


async def found_keys(
    connector: Connector, source: Source, query: Query, *, restrict: bool = True
) -> set[tuple[str, str]]:
    """The (dataset, key) pairs the searches return for `query`, redaction notes included."""
    return {(r.dataset, r.key) async for r in stream_records(connector, source, query, restrict=restrict)}


async def count_records(connector: Connector, source: Source, query: Query) -> Counter[str]:
    """How many records each dataset's search yields for `query` (none kept in memory)."""
    counts: Counter[str] = Counter()
    async for record in stream_records(connector, source, query):
        counts[record.dataset] += 1
    return counts


def without_redactions(keys: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The pairs that are records, not redaction notes."""
    return {(dataset, key) for dataset, key in keys if dataset != REDACTIONS}
