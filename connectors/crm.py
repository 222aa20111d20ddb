"""crm: the commercial relationship: contacts, interactions, complaints, quotes (MongoDB `crm`).

Purpose: commercial prospection (contact and estimate requests, marketing consent) and, for
complaints, the management of policies. The subject's contacts are found by e-mail or person id,
or by a phone, a policy number or a full name together with the birth date: one indexed equality
lookup on `contacts` per identifier (or pair), never a cross-field `$or`. Interactions, complaints
and quotes are then fetched by the found contacts' `_id`. Every found contact reports its
`person_id` and its e-mails for the search of the other systems.

What it leaves out, on purpose:
- A phone, a policy number or a full name alone finds nothing: a household shares a phone, a
  family a policy number, namesakes a name. Each is matched in the same query as the birth date,
  so the spouse on the household phone, or a namesake born another day, is never returned.
- `interactions.agent_id` is never read: the subject learns what was said, when and how, not which
  employee wrote it down (as policy leaves out `file_access_log.accessor_id`).
- The `_id` and `contact_id` links are record keys, not exported fields.

Indexes it expects: contacts(emails), (phones), (person_id), (policy_numbers),
(last_name, first_name, birth_date); interactions, complaints and quotes (contact_id). E-mails are
stored case-folded, phones in E.164; names are compared case-insensitively (an anchored, escaped
`$regex` with the `i` option, in the same query as the birth date).
"""

import re
from collections.abc import AsyncIterator
from typing import Any

from connectors.sdk import Connector, Dataset, Field, Ident, Query, Record, documents, mongodb, split_full_name
from connectors.sdk import Provenance as P

connector = Connector(
    "crm",
    store=mongodb("crm"),
    accepts=[
        Ident.EMAIL,
        Ident.PERSON_ID,
        (Ident.PHONE, Ident.BIRTH_DATE),
        (Ident.POLICY_NUMBER, Ident.BIRTH_DATE),
        (Ident.FULL_NAME, Ident.BIRTH_DATE),
    ],
    discovers=[Ident.PERSON_ID, Ident.EMAIL],
)

contacts = connector.dataset("contacts", activity="prospection", key="_id", fields={
    "person_id": Field(P.DERIVED, description="the policy system's identifier, when the contact is insured"),
    "emails": P.PROVIDED, "phones": P.PROVIDED, "first_name": P.PROVIDED, "last_name": P.PROVIDED,
    "birth_date": P.PROVIDED, "policy_numbers": P.OBSERVED,
    "source": Field(P.OBSERVED, description="where the contact came from: web, broker, client company or event"),
    "broker": Field(P.OBSERVED, description="the broker who passed the contact on, if any"),
    "marketing": Field(P.PROVIDED, description="consent to marketing by e-mail and SMS, and when it last changed"),
    "created_at": P.OBSERVED, "updated_at": P.OBSERVED,
})  # fmt: skip
interactions = connector.dataset("interactions", activity="prospection", key="_id", fields={
    "channel": P.OBSERVED, "occurred_at": P.OBSERVED, "subject": P.OBSERVED,
    "notes": Field(P.OBSERVED, description="what the subject said or asked, as written down by the agent"),
})  # fmt: skip
complaints = connector.dataset("complaints", activity="policy_management", key="_id", fields={
    "opened_at": P.OBSERVED, "category": P.OBSERVED, "description": P.PROVIDED, "status": P.OBSERVED,
    "resolution": Field(P.DERIVED, description="the insurer's answer to the complaint"),
})  # fmt: skip
quotes = connector.dataset("quotes", activity="prospection", key="_id", fields={
    "requested_at": P.OBSERVED, "product": P.PROVIDED,
    "answers": Field(P.PROVIDED, description="the quote questionnaire, as the subject filled it in"),
})  # fmt: skip

BATCH = 500


_CONTACT_IDS = "crm.contact_ids"  # in Query.memo


async def contact_ids(q: Query, db: Any) -> list[Any]:
    """The `_id`s of the subject's contacts: one indexed equality lookup per identifier (or pair).

    The four searches of an attempt need them; they are looked up by the first and kept for the
    others while the attempt's `Query` lives (the runtime builds a new one for each attempt).
    """
    ids: list[Any] | None = q.memo.get(_CONTACT_IDS)
    if ids is None:
        ids = q.memo[_CONTACT_IDS] = await _look_up_contact_ids(q, db)
    return ids


async def _look_up_contact_ids(q: Query, db: Any) -> list[Any]:
    lookups: list[dict[str, Any]] = [
        *({"emails": email} for email in q.values(Ident.EMAIL)),
        *({"person_id": person_id} for person_id in q.values(Ident.PERSON_ID)),
        *({"phones": phone, "birth_date": birth} for phone, birth in q.pairs(Ident.PHONE, Ident.BIRTH_DATE)),
        *({"policy_numbers": number, "birth_date": birth}
          for number, birth in q.pairs(Ident.POLICY_NUMBER, Ident.BIRTH_DATE)),
        *(_named(name, birth) for name, birth in q.pairs(Ident.FULL_NAME, Ident.BIRTH_DATE)),
    ]  # fmt: skip
    found: set[Any] = set()
    for lookup in lookups:
        async for doc in db.contacts.find(lookup, {"_id": 1}):
            found.add(doc["_id"])
    return sorted(found)


def declared(db: Any, dataset: Dataset, lookup: dict[str, Any], order: str) -> AsyncIterator[dict[str, Any]]:
    """The documents of a dataset's collection, only its declared fields, in batches, read ahead."""
    projection = dict.fromkeys(dataset.fields, 1)
    return documents(db[dataset.name], lookup, projection, sort=[(order, 1), ("_id", 1)], batch_size=BATCH)


@contacts.search
async def find_contacts(q: Query, db: Any) -> AsyncIterator[Record]:
    async for doc in declared(db, contacts, {"_id": {"$in": await contact_ids(q, db)}}, "created_at"):
        found = {Ident.PERSON_ID: doc.get("person_id"), Ident.EMAIL: doc.get("emails") or []}
        yield contacts.record(doc, discovered=found)


@interactions.search
async def find_interactions(q: Query, db: Any) -> AsyncIterator[Record]:
    async for doc in declared(db, interactions, {"contact_id": {"$in": await contact_ids(q, db)}}, "occurred_at"):
        yield interactions.record(doc)  # never agent_id: the projection leaves it out


@complaints.search
async def find_complaints(q: Query, db: Any) -> AsyncIterator[Record]:
    async for doc in declared(db, complaints, {"contact_id": {"$in": await contact_ids(q, db)}}, "opened_at"):
        yield complaints.record(doc)


@quotes.search
async def find_quotes(q: Query, db: Any) -> AsyncIterator[Record]:
    async for doc in declared(db, quotes, {"contact_id": {"$in": await contact_ids(q, db)}}, "requested_at"):
        yield quotes.record(doc)


def _named(full_name: str, birth: str) -> dict[str, Any]:
    last, first = split_full_name(full_name)
    return {"last_name": _exactly(last), "first_name": _exactly(first), "birth_date": birth}


def _exactly(text: str) -> dict[str, str]:
    """Matches `text` whole, ignoring case (the `$regex` operator form, escaped and anchored)."""
    return {"$regex": f"^{re.escape(text)}$", "$options": "i"}
