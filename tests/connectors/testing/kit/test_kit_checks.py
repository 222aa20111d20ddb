"""The kit's checks against a tiny connector over an in-memory store: each passes the sound connector
and fails the one broken in the way it exists to catch. (Unit tests: the store is a list of rows.)"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from connectors.sdk import (
    Connector,
    ConnectorError,
    Field,
    Ident,
    PermanentError,
    Query,
    Record,
    RequestKind,
    postgresql,
)
from connectors.sdk import Provenance as P
from connectors.testing.kit import (
    ConformanceFailure,
    NegativeCase,
    SubjectCase,
    check_activities,
    check_cancellation,
    check_counts,
    check_declaration,
    check_finds_subjects,
    check_portability,
    check_streams,
    check_weak_alone,
)
from connectors.testing.kit._suite import KNOWN_ACTIVITIES

Row = dict[str, Any]
PHONE = "+33600000001"
MANY = 20_000


def rows() -> list[Row]:
    def person(first: int, pid: str, email: str, birth: str, n: int) -> Iterator[Row]:
        for i in range(n):
            yield {"event_id": first + i, "person_id": pid, "email": email, "phone": PHONE, "birth_date": birth,
                   "kind": "login", "score": i}  # fmt: skip

    return [*person(1, "p1", "one@example.org", "1980-01-01", 3), *person(10, "p2", "two@example.org", "1982-02-02", 2),
            *person(100_000, "heavy", "heavy@example.org", "1970-01-01", MANY)]  # fmt: skip


class ListSource:
    """A runtime Source lending a list of rows."""

    def __init__(self, data: list[Row]) -> None:
        self.data = data

    @contextlib.asynccontextmanager
    async def lend(self) -> AsyncIterator[list[Row]]:
        yield self.data

    def translate(self, error: Exception) -> ConnectorError:
        return PermanentError(type(error).__name__)

    async def aclose(self) -> None:
        return None


def make(flaw: str = "") -> Connector:
    """The sound connector, or one with `flaw`."""
    connector = Connector(f"kit_fake_{flaw or 'sound'}", store=postgresql("kit_fake"),
                          accepts=[Ident.EMAIL, Ident.PERSON_ID, (Ident.PHONE, Ident.BIRTH_DATE)])  # fmt: skip
    activity = "bookkeeping" if flaw == "activity" else "policy_management"
    event = connector.dataset("event", activity=activity, key="event_id", fields={
        "person_id": P.PROVIDED, "email": P.PROVIDED, "phone": P.PROVIDED, "birth_date": P.PROVIDED,
        "kind": P.OBSERVED, "score": Field(P.DERIVED)})  # fmt: skip

    def matches(q: Query, row: Row) -> bool:
        if row["person_id"] in q.values(Ident.PERSON_ID) or row["email"] in q.values(Ident.EMAIL):
            return True
        if flaw == "phone_alone":
            return row["phone"] in q.values(Ident.PHONE)
        return (row["phone"], row["birth_date"]) in q.pairs(Ident.PHONE, Ident.BIRTH_DATE)

    @event.search
    async def find(q: Query, db: list[Row]) -> AsyncIterator[Record]:
        found = [dict(r) for r in db if matches(q, r)] if flaw == "fetch_all" else None
        for i, row in enumerate(found if found is not None else (r for r in db if matches(q, r))):
            if i % 100 == 0:  # a round trip to the store
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    if flaw == "swallow":
                        continue
                    if flaw == "slow_stop":
                        await asyncio.shield(asyncio.sleep(1.5))
                    raise
            yield event.record(row)

    return connector


SUBJECT = SubjectCase("subject", {Ident.PERSON_ID: "p1", Ident.EMAIL: "one@example.org", Ident.PHONE: PHONE,
                                  Ident.BIRTH_DATE: "1980-01-01"}, records={"event": ["1", "2", "3"]})  # fmt: skip
HEAVY = SubjectCase("heavy", {Ident.PERSON_ID: "heavy"}, records={"event": MANY})
SHARED_PHONE = NegativeCase("shared phone", {Ident.PHONE: PHONE})


@pytest.fixture(scope="module")
def source() -> ListSource:
    return ListSource(rows())


def test_declaration_and_register() -> None:
    check_declaration(make())
    check_activities(make(), KNOWN_ACTIVITIES)
    with pytest.raises(ConformanceFailure, match="bookkeeping"):
        check_activities(make("activity"), KNOWN_ACTIVITIES)


def test_a_dataset_without_search_fails_the_declaration() -> None:
    connector = Connector("kit_fake_nosearch", store=postgresql("x"), accepts=[Ident.EMAIL])
    connector.dataset("event", activity="policy_management", key="id", fields={"kind": P.OBSERVED})
    with pytest.raises(ConformanceFailure, match="has no search"):
        check_declaration(connector)


async def test_identifiers(source: ListSource) -> None:
    assert await check_finds_subjects(make(), source, [SUBJECT]) == 4  # email, person_id, phone+birth, all
    assert await check_weak_alone(make(), source, [SUBJECT], [SHARED_PHONE]) == 3
    with pytest.raises(ConformanceFailure, match=r"by birth_date\+phone: event: 0 expected records missing, 2"):
        await check_finds_subjects(make("phone_alone"), source, [SUBJECT])
    with pytest.raises(ConformanceFailure, match="shared phone: 20005 records"):
        await check_weak_alone(make("phone_alone"), source, [SUBJECT], [SHARED_PHONE])


async def test_a_case_must_cover_every_accepted_identifier(source: ListSource) -> None:
    partial = SubjectCase("subject", {Ident.EMAIL: "one@example.org"}, records={"event": 3})
    with pytest.raises(ConformanceFailure, match=r"person_id: add it.*\n.*birth_date\+phone: add it"):
        await check_finds_subjects(make(), source, [partial])


async def test_counts_and_portability(source: ListSource) -> None:
    for kind in RequestKind:
        result = await check_counts(make(), source, SUBJECT, kind, 256)
        assert len(result.chunks) > 1 and result.completion.record_count == 3
    assert await check_portability(make(), source, SUBJECT, 256) == 3


async def test_streaming(source: ListSource) -> None:
    figures = await check_streams(make(), source, HEAVY, MANY, 4 * 2**20)
    assert figures.records == MANY and figures.peak_bytes < 2**20
    with pytest.raises(ConformanceFailure, match="over the 4 MiB ceiling"):
        await check_streams(make("fetch_all"), source, HEAVY, MANY, 4 * 2**20)


async def test_cancellation(source: ListSource) -> None:
    figures = await check_cancellation(make(), source, HEAVY, 1.0, midway=5_000)
    (first, first_seconds), (midway, midway_seconds) = figures.stops
    assert 1 <= first < 5_000 <= midway < MANY and max(first_seconds, midway_seconds) < 0.5
    with pytest.raises(ConformanceFailure, match="swallowed the cancellation"):
        await check_cancellation(make("swallow"), source, HEAVY, 1.0, midway=5_000)
    with pytest.raises(ConformanceFailure, match="still running"):
        await check_cancellation(make("slow_stop"), source, HEAVY, 1.0)
