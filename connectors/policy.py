"""policy: insurance policies, their members, payments and dunning (PostgreSQL `policy`).

Purpose: the conclusion, management and fulfilment of insurance policies. The subject is found
by e-mail, NIR or person id, or by a phone, full name or policy number together with the birth
date; the searches then fetch everything by the subject's `person_id`s, and report those, the
e-mail and the NIR for the search of the other systems.

What it leaves out, on purpose:
- `aml_screening` is never read. Anti-money-laundering data is under indirect access through
  the CNIL (Code monétaire et financier, art. L561-45): no record, no count, no mention.
- `file_access_log.accessor_id` is never read: the subject learns when and why the file was
  consulted, not which employee consulted it.
- Other members of the subject's policies (spouse, children, beneficiaries): only the fact of
  the link (policy number and role) is returned, with a redaction note for each (GDPR art. 15(4)).
  A policy's `subscriber_id` is never returned; `subject_is_subscriber` says whether it is the subject.
- Payments and dunning are those of the policies the subject subscribed (they are the payer's).

Indexes it expects (equality lookups only): insured_person(lower(email)), (nir), (phone),
(birth_date); policy(subscriber_id); policy_member(person_id); bank_account(person_id);
premium_payment(policy_number); dunning_event(policy_number); file_access_log(person_id).
E-mails are compared case-folded; phones as stored (E.164).
"""

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

from connectors.sdk import Connector, Field, Ident, Query, Record, postgresql, rows, split_full_name
from connectors.sdk import Provenance as P

connector = Connector(
    "policy",
    store=postgresql("policy"),
    accepts=[
        Ident.EMAIL,
        Ident.NIR,
        Ident.PERSON_ID,
        (Ident.PHONE, Ident.BIRTH_DATE),
        (Ident.FULL_NAME, Ident.BIRTH_DATE),
        (Ident.POLICY_NUMBER, Ident.BIRTH_DATE),
    ],
    discovers=[Ident.PERSON_ID, Ident.EMAIL, Ident.NIR],
)

ASSIGNED = Field(P.DERIVED, description="an identifier the insurer assigned, not one the subject gave")
AUTOMATED = Field(P.DERIVED, description=(
    "true when the step was decided without human review, by the automated non-payment procedure,"
    " from the unpaid premiums and the time elapsed since their due dates"))  # fmt: skip
LOGGED = "kept by the insurer when an employee consults the file"

insured_person = connector.dataset("insured_person", activity="policy_management", key="person_id", fields={
    "person_id": ASSIGNED, "nir": P.PROVIDED, "last_name": P.PROVIDED, "first_name": P.PROVIDED,
    "birth_date": P.PROVIDED, "email": P.PROVIDED, "phone": P.PROVIDED, "address_line": P.PROVIDED,
    "postal_code": P.PROVIDED, "city": P.PROVIDED, "country": P.PROVIDED, "marital_status": P.PROVIDED,
    "occupation": P.PROVIDED, "employer_name": P.PROVIDED, "created_at": P.OBSERVED, "updated_at": P.OBSERVED,
})  # fmt: skip
policy = connector.dataset("policy", activity="policy_management", key="policy_number", fields={
    "policy_number": P.OBSERVED, "product_code": P.PROVIDED, "status": P.OBSERVED, "start_date": P.PROVIDED,
    "end_date": P.PROVIDED, "expatriation_country": P.PROVIDED, "subject_is_subscriber": P.OBSERVED,
    "premium_cents": Field(P.DERIVED, description="the premium, as priced by the insurer"),
})  # fmt: skip
policy_member = connector.dataset("policy_member", activity="policy_management",
                                  key=("policy_number", "person_id"), fields={
    "policy_number": P.PROVIDED, "role": P.PROVIDED, "person_id": ASSIGNED,
    "member": Field(P.OBSERVED, description="'subject', or 'other' for another person on the policy"),
})  # fmt: skip
bank_account = connector.dataset("bank_account", activity="policy_management",
                                 key=("person_id", "iban", "valid_from"), fields={
    "iban": P.PROVIDED, "bic": P.PROVIDED, "holder_name": P.PROVIDED, "valid_from": P.PROVIDED,
})  # fmt: skip
premium_payment = connector.dataset("premium_payment", activity="policy_management", key="payment_id",
                                    fields={
    "policy_number": P.OBSERVED, "due_date": P.OBSERVED, "amount_cents": P.OBSERVED, "status": P.OBSERVED,
    "paid_at": P.OBSERVED, "card_last4": P.PROVIDED,
})  # fmt: skip
dunning_event = connector.dataset("dunning_event", activity="policy_management", key="id", fields={
    "policy_number": P.OBSERVED, "occurred_at": P.OBSERVED, "automated": AUTOMATED,
    "step": Field(P.DERIVED, description="reminder, formal notice, suspension or termination of the policy"),
})  # fmt: skip
file_access_log = connector.dataset("file_access_log", activity="policy_management", key="id", fields={
    "accessed_at": Field(P.DERIVED, description=LOGGED), "purpose": Field(P.DERIVED, description=LOGGED),
    "accessor_role": Field(P.DERIVED, description="the consulting employee's role, never their identity"),
})  # fmt: skip

_IDS = "policy.subject_ids"  # in Query.memo
_OTHER_MEMBER = "another person on the same policy (GDPR art. 15(4)): only the link is shown"
_BY = "SELECT person_id FROM insured_person WHERE "
_SUBSCRIBED = "SELECT policy_number FROM policy WHERE subscriber_id = ANY($1::uuid[])"
_MEMBER_OF = "SELECT policy_number FROM policy_member WHERE person_id = ANY($1::uuid[])"


async def subject_ids(q: Query, db: Any) -> list[UUID]:
    """The subject's person ids: one statement, an indexed equality lookup per identifier (or pair).

    Every search of an attempt needs them; they are looked up by the first and kept for the
    others while the attempt's `Query` lives (the runtime builds a new one for each attempt, and
    a retry is a new attempt, so a retry looks them up again).
    """
    ids: list[UUID] | None = q.memo.get(_IDS)
    if ids is None:
        ids = q.memo[_IDS] = await _look_up_ids(q, db)
    return ids


async def _look_up_ids(q: Query, db: Any) -> list[UUID]:
    lookups: list[tuple[str, tuple[object, ...]]] = [
        *((_BY + "person_id = {}::uuid", (v,)) for v in q.values(Ident.PERSON_ID)),
        *((_BY + "lower(email) = {}", (v,)) for v in q.values(Ident.EMAIL)),
        *((_BY + "nir = {}", (v,)) for v in q.values(Ident.NIR)),
        *((_BY + "phone = {} AND birth_date = {}", (phone, _date(birth)))
          for phone, birth in q.pairs(Ident.PHONE, Ident.BIRTH_DATE)),
        *((_BY + "birth_date = {} AND lower(last_name) = lower({}) AND lower(first_name) = lower({})",
           (_date(birth), *split_full_name(name)))
          for name, birth in q.pairs(Ident.FULL_NAME, Ident.BIRTH_DATE)),
        *(("SELECT m.person_id FROM policy_member m JOIN insured_person p USING (person_id)"
           " WHERE m.policy_number = {} AND p.birth_date = {}", (number, _date(birth)))
          for number, birth in q.pairs(Ident.POLICY_NUMBER, Ident.BIRTH_DATE)),
    ]  # fmt: skip
    if not lookups:
        return []
    parts: list[str] = []
    args: list[object] = []
    for sql, values in lookups:  # each lookup keeps its own index; UNION drops the duplicates
        parts.append(sql.format(*(f"${len(args) + n}" for n in range(1, len(values) + 1))))
        args.extend(values)
    return sorted({row["person_id"] for row in await db.fetch(" UNION ".join(parts), *args)})


@insured_person.search
async def find_insured_person(q: Query, db: Any) -> AsyncIterator[Record]:
    ids = await subject_ids(q, db)
    columns = ", ".join(insured_person.fields)
    async for row in rows(db, f"SELECT {columns} FROM insured_person WHERE person_id = ANY($1::uuid[])", ids):
        found = {Ident.PERSON_ID: row["person_id"], Ident.EMAIL: row["email"], Ident.NIR: row["nir"]}
        yield insured_person.record(row, discovered=found)


@policy.search
async def find_policies(q: Query, db: Any) -> AsyncIterator[Record]:
    sql = f"""SELECT policy_number, product_code, status, start_date, end_date, expatriation_country,
                     premium_cents, subscriber_id = ANY($1::uuid[]) AS subject_is_subscriber
              FROM policy WHERE policy_number IN ({_MEMBER_OF}) ORDER BY policy_number"""
    async for row in rows(db, sql, await subject_ids(q, db)):
        yield policy.record(row)


@policy_member.search
async def find_memberships(q: Query, db: Any) -> AsyncIterator[Record]:
    sql = f"""SELECT policy_number, person_id, role, person_id = ANY($1::uuid[]) AS own FROM policy_member
              WHERE policy_number IN ({_MEMBER_OF}) ORDER BY policy_number, role, person_id"""
    others: dict[tuple[str, str], int] = {}
    async for row in rows(db, sql, await subject_ids(q, db)):
        link = {"policy_number": row["policy_number"], "role": row["role"]}
        if row["own"]:
            yield policy_member.record({**link, "person_id": row["person_id"], "member": "subject"})
            continue
        n = others[row["policy_number"], row["role"]] = others.get((row["policy_number"], row["role"]), 0) + 1
        key = f"{row['policy_number']}/{row['role']}-{n}"  # numbered: never the other person's id
        yield policy_member.record({**link, "member": "other"}, key=key)
        yield connector.redaction(policy_member, key, ["person_id", "insured_person"], _OTHER_MEMBER)


@bank_account.search
async def find_bank_accounts(q: Query, db: Any) -> AsyncIterator[Record]:
    sql = """SELECT person_id, iban, bic, holder_name, valid_from
             FROM bank_account WHERE person_id = ANY($1::uuid[]) ORDER BY valid_from"""
    async for row in rows(db, sql, await subject_ids(q, db)):
        yield bank_account.record(row)


@premium_payment.search
async def find_payments(q: Query, db: Any) -> AsyncIterator[Record]:
    sql = f"""SELECT payment_id, policy_number, due_date, amount_cents, status, paid_at, card_last4
              FROM premium_payment WHERE policy_number IN ({_SUBSCRIBED}) ORDER BY policy_number, due_date"""
    async for row in rows(db, sql, await subject_ids(q, db)):
        yield premium_payment.record(row)


@dunning_event.search
async def find_dunning(q: Query, db: Any) -> AsyncIterator[Record]:
    sql = f"""SELECT id, policy_number, occurred_at, step, automated
              FROM dunning_event WHERE policy_number IN ({_SUBSCRIBED}) ORDER BY occurred_at"""
    async for row in rows(db, sql, await subject_ids(q, db)):
        yield dunning_event.record(row)


@file_access_log.search
async def find_file_accesses(q: Query, db: Any) -> AsyncIterator[Record]:
    sql = """SELECT id, accessed_at, accessor_role, purpose  -- never accessor_id
             FROM file_access_log WHERE person_id = ANY($1::uuid[]) ORDER BY accessed_at"""
    async for row in rows(db, sql, await subject_ids(q, db)):
        yield file_access_log.record(row)


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)
