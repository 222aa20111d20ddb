"""The floor: the same rows read from the same stores with asyncpg and motor, in one plain loop.

For each system, the lookups its connector makes (by e-mail, then person id; the same indexes),
then every row or document that concerns the subject, system after system, with nothing else:
no records, no encoding, no sealing, no Kafka, no archive. Connections are opened before the
clock starts. What the end-to-end run costs beyond this is the price of everything the service
and the runtime add.
"""

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
from motor.motor_asyncio import AsyncIOMotorClient

from dsar_common.settings import Settings
from dsar_service.demo import _database_url

_POLICY_IDS_BY_EMAIL = "SELECT person_id FROM insured_person WHERE lower(email) = $1"
_POLICY_IDS_BY_NIR = "SELECT person_id FROM insured_person WHERE nir = $1"
_MEMBER_OF = "SELECT policy_number FROM policy_member WHERE person_id = ANY($1::uuid[])"
_SUBSCRIBED = "SELECT policy_number FROM policy WHERE subscriber_id = ANY($1::uuid[])"
_POLICY_QUERIES = (
    "SELECT * FROM insured_person WHERE person_id = ANY($1::uuid[])",
    f"SELECT * FROM policy WHERE policy_number IN ({_MEMBER_OF})",
    f"SELECT * FROM policy_member WHERE policy_number IN ({_MEMBER_OF})",
    "SELECT * FROM bank_account WHERE person_id = ANY($1::uuid[])",
    f"SELECT * FROM premium_payment WHERE policy_number IN ({_SUBSCRIBED})",
    f"SELECT * FROM dunning_event WHERE policy_number IN ({_SUBSCRIBED})",
    "SELECT id, accessed_at, accessor_role, purpose FROM file_access_log WHERE person_id = ANY($1::uuid[])",
)
_CONCERNS = "(c.patient_person_id = ANY($1::uuid[]) OR c.submitted_by_person_id = ANY($1::uuid[]))"
_CLAIMS_QUERIES = (
    f"SELECT c.* FROM claim c WHERE {_CONCERNS}",
    f"SELECT d.* FROM claim c JOIN claim_document d USING (claim_id) WHERE {_CONCERNS}",
    "SELECT a.* FROM fraud_alert a WHERE a.person_id = ANY($1::uuid[])",
)


@dataclass(frozen=True)
class FloorResult:
    """Rows read and the seconds it took, over every subject read."""

    rows: int
    seconds: float


@dataclass(frozen=True)
class _Stores:
    policy: Any
    claims: Any
    mongo: Any


@contextlib.asynccontextmanager
async def _opened(settings: Settings) -> AsyncIterator[_Stores]:
    policy = await asyncpg.connect(_database_url(settings.source_postgres_url, "policy"))
    claims = await asyncpg.connect(_database_url(settings.source_postgres_url, "claims"))
    mongo: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(settings.source_mongodb_url)
    try:
        await mongo.admin.command("ping")
        yield _Stores(policy, claims, mongo)
    finally:
        mongo.close()
        await claims.close()
        await policy.close()


async def read_floor(settings: Settings, subjects: Iterable[tuple[list[str], str]]) -> FloorResult:
    """Read every subject's rows, one subject after the other; subjects are (e-mails, NIR or "")."""
    async with _opened(settings) as stores:
        began = time.perf_counter()
        rows = 0
        for emails, nir in subjects:
            rows += await _read_subject(stores, emails, nir)
        return FloorResult(rows, time.perf_counter() - began)


async def _read_subject(stores: _Stores, emails: list[str], nir: str) -> int:
    person_ids: set[uuid.UUID] = set()
    for email in emails:
        person_ids.update(row["person_id"] for row in await stores.policy.fetch(_POLICY_IDS_BY_EMAIL, email.lower()))
    if nir:
        person_ids.update(row["person_id"] for row in await stores.policy.fetch(_POLICY_IDS_BY_NIR, nir))
    ids = sorted(person_ids)
    found_emails = set(emails)
    rows = 0
    for sql in _POLICY_QUERIES:
        fetched = await stores.policy.fetch(sql, ids)
        rows += len(fetched)
        if sql.startswith("SELECT * FROM insured_person"):
            found_emails.update(row["email"] for row in fetched if row["email"])
    for sql in _CLAIMS_QUERIES:
        rows += len(await stores.claims.fetch(sql, ids))

    crm = stores.mongo["crm"]
    lookups = [*({"emails": email} for email in sorted(found_emails)), *({"person_id": str(i)} for i in ids)]
    contact_ids = set()
    for lookup in lookups:
        async for document in crm.contacts.find(lookup, {"_id": 1}):
            contact_ids.add(document["_id"])
    rows += await _count(crm.contacts.find({"_id": {"$in": sorted(contact_ids)}}))
    for collection in ("interactions", "complaints", "quotes"):
        rows += await _count(crm[collection].find({"contact_id": {"$in": sorted(contact_ids)}}, batch_size=500))

    recruitment = stores.mongo["recruitment"]
    for email in sorted(found_emails):
        rows += await _count(recruitment.candidates.find({"email": email}))

    analytics = stores.mongo["analytics"]
    for collection in ("visits", "cookie_consents"):
        cookies: set[str] = set()
        for person_id in ids:
            async for document in analytics[collection].find({"user_id": str(person_id)}, batch_size=1000):
                rows += 1
                if isinstance(document.get("visitor_id"), str):
                    cookies.add(document["visitor_id"])
        for cookie in sorted(cookies):
            anonymous = {"visitor_id": cookie, "user_id": None}
            rows += await _count(analytics[collection].find(anonymous, batch_size=1000))
    return rows


async def _count(cursor: Any) -> int:
    count = 0
    async for _ in cursor:
        count += 1
    return count
