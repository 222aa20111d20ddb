"""analytics: site visits with their pages, and cookie consents (MongoDB `analytics`).

Purpose: site access, security, audience measurement and cookies. Analytics knows a browser by its
cookie (`visitor_id`) and a logged-in insured person by `user_id`, the `person_id` of the policy
system. The subject is found by person id or by cookie, one indexed equality lookup per value:
- by person id: the visits and consents made while logged in as the subject (`user_id`);
- by cookie: the anonymous ones (`user_id` null) made with that cookie. A visit with the cookie
  while someone else was logged in is that person's (a shared computer), and is left out; the
  subject's own logged-in visits are found by his person id.
The cookies seen on the subject's logged-in visits and consents are his browser's: the search
follows them to his anonymous visits at once (a cookie designates one person, world.md §2), and
reports them as discovered.

Volumes: a subject can have tens of thousands of visits, each with its pages. The searches stream
them with `sdk.documents` (`BATCH` per round trip, the next read while one is handled), keep
only the declared fields, and report each cookie once, so the work per visit is little more than
the driver's own decoding. The declared fields are picked on the connector's side rather than by
a server projection: every field the collections hold is declared today, so a projection would
save no transfer, and it doubled the time of a search on the embedded test server
(tests/connectors/test_analytics.py measures it). A field the owners add later is still never
exported; if such a field is large, add a projection.

Indexes it expects: visits(user_id), visits(visitor_id), cookie_consents(user_id),
cookie_consents(visitor_id).
"""

from collections.abc import AsyncIterator
from typing import Any

from connectors.sdk import Connector, Dataset, Field, Ident, Query, Record, documents, mongodb
from connectors.sdk import Provenance as P

BATCH = 1_000  # documents per round trip: a visit with its pages is about 1 KiB

connector = Connector(
    "analytics",
    store=mongodb("analytics"),
    accepts=[Ident.PERSON_ID, Ident.VISITOR_ID],
    discovers=[Ident.VISITOR_ID],
)

ACCOUNT = Field(P.DERIVED, description=(
    "the identifier the insurer gave the subject, when logged in to the personal space; null otherwise"))  # fmt: skip
COOKIE = Field(P.OBSERVED, description="the identifier of the site's cookie in the browser used")

visits = connector.dataset("visits", activity="site_audience", key="_id", fields={
    "visitor_id": COOKIE, "user_id": ACCOUNT, "ip": P.OBSERVED, "user_agent": P.OBSERVED,
    "site": Field(P.OBSERVED, description="'public' site or 'personal_space' of insured persons"),
    "started_at": P.OBSERVED,
    "pages": Field(P.OBSERVED, description="the pages seen, in order: path, time, load time in milliseconds"),
})  # fmt: skip
cookie_consents = connector.dataset("cookie_consents", activity="site_audience", key="_id", fields={
    "visitor_id": COOKIE, "user_id": ACCOUNT, "given_at": P.PROVIDED,
    "categories": Field(P.PROVIDED, description="the cookie categories accepted (true) or refused (false)"),
})  # fmt: skip


_LOGGED_IN_COOKIES = "analytics.logged_in_cookies"  # in Query.memo, by (database, collection)


async def subject_documents(q: Query, db: Any, dataset: Dataset) -> AsyncIterator[Record]:
    """The records of `dataset` (its collection has the same name) that concern the subject.

    Logged-in documents first, by person id, reporting each new cookie once; then the anonymous
    documents of each cookie, asked for or seen on his logged-in documents of either collection
    (a consent given anonymously on the browser he logs in with is his). The two lookups never
    return the same document.
    """
    collection = db[dataset.name]
    names = ("_id", *dataset.fields)
    cookies: set[object] = set()
    for person_id in q.values(Ident.PERSON_ID):
        async for document in documents(collection, {"user_id": person_id}, batch_size=BATCH):
            row = {name: document[name] for name in names if name in document}
            cookie = row.get("visitor_id")
            if cookie in cookies:
                yield dataset.record(row)
            else:
                cookies.add(cookie)
                yield dataset.record(row, discovered={Ident.VISITOR_ID: cookie})
    q.memo[_LOGGED_IN_COOKIES, db.name, dataset.name] = frozenset(cookies)  # read in full: keep for the other
    cookies |= await cookies_seen_elsewhere(q, db, dataset.name)
    for visitor_id in sorted({*q.values(Ident.VISITOR_ID), *(c for c in cookies if isinstance(c, str))}):
        anonymous = {"visitor_id": visitor_id, "user_id": None}
        async for document in documents(collection, anonymous, batch_size=BATCH):
            yield dataset.record({name: document[name] for name in names if name in document})


async def cookies_seen_elsewhere(q: Query, db: Any, collection: str) -> set[object]:
    """The cookies of the subject's logged-in documents in the other collection.

    When the other collection's search of the same attempt (same `Query` object) read them in
    full, its cookies are reused: visits come first, and a subject's logged-in visits can be tens
    of thousands, which `distinct` would read again (about 0.5 s for 14,000). Otherwise one
    indexed lookup per person id.
    """
    other = "cookie_consents" if collection == "visits" else "visits"
    seen: frozenset[object] | None = q.memo.get((_LOGGED_IN_COOKIES, db.name, other))
    if seen is not None:
        return set(seen)
    found: set[object] = set()
    for person_id in q.values(Ident.PERSON_ID):
        found.update(await db[other].distinct("visitor_id", {"user_id": person_id}))
    return found


@visits.search
async def find_visits(q: Query, db: Any) -> AsyncIterator[Record]:
    async for record in subject_documents(q, db, visits):
        yield record


@cookie_consents.search
async def find_cookie_consents(q: Query, db: Any) -> AsyncIterator[Record]:
    async for record in subject_documents(q, db, cookie_consents):
        yield record
