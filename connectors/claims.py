"""claims: claims for care, their documents, and fraud alerts (PostgreSQL `claims`).

Purpose: the fulfilment of insurance policies (claims and benefits, health data) and insurance
fraud prevention. The system knows people only by the policy system's `person_id`, so it accepts
that alone and discovers nothing: the subject's person ids come from the request or from policy.

A claim concerns the subject when he received the care (`patient_person_id`) or submitted it
(`submitted_by_person_id`). What is returned depends on which (`subject_role`):
- `patient_and_submitter`: the whole claim.
- `patient` (someone else submitted it for his care): the whole claim, which is his health data,
  without `submitted_by_person_id`; a redaction note says the submitter was removed.
- `submitter` (care someone else received, his child say): only that he submitted it, when, on
  which policy, its status and the amount reimbursed, which was paid on his claim. The other
  person's health data goes, with a redaction note: `patient_person_id`, `care_category`,
  `care_date`, `provider_name`, `diagnosis_code`, and `amount_claimed_cents` (the cost of that care).
  Its documents keep their date of receipt only: `kind` (a prescription) and `filename` (which
  holds the care date) would reveal that care, and are listed in a note each.
Fraud alerts are the ones that name the subject (`fraud_alert.person_id`): derived data of the
fraud-prevention activity, so portability leaves them out. On a claim for someone else's care,
the alert's `rule_code` (a rule may name a care category) is removed, with a note.

Codes (care categories, diagnosis codes, rule codes) are returned as stored, not decoded.

Indexes it expects (equality lookups only): claim(patient_person_id), (submitted_by_person_id);
claim_document(claim_id); fraud_alert(person_id). A person id that is not a uuid matches nothing.
"""

import uuid
from collections.abc import AsyncIterator
from typing import Any

from connectors.sdk import Connector, Field, Ident, Query, Record, postgresql, rows
from connectors.sdk import Provenance as P

connector = Connector("claims", store=postgresql("claims"), accepts=[Ident.PERSON_ID])

ASSIGNED = Field(P.DERIVED, description="an identifier the insurer assigned, not one the subject gave")
FLAGGED = "recorded by the insurer's fraud detection"

claim = connector.dataset("claim", activity="policy_management", key="claim_id", fields={
    "claim_id": P.OBSERVED, "policy_number": P.OBSERVED, "submitted_at": P.OBSERVED, "status": P.OBSERVED,
    "patient_person_id": ASSIGNED, "submitted_by_person_id": ASSIGNED, "care_category": P.PROVIDED,
    "care_date": P.PROVIDED, "provider_name": P.PROVIDED, "diagnosis_code": P.PROVIDED,
    "amount_claimed_cents": P.PROVIDED,
    "amount_reimbursed_cents": Field(P.DERIVED, description="the benefit, as computed by the insurer"),
    "subject_role": Field(P.OBSERVED, description=(
        "'patient_and_submitter'; 'patient' when someone else submitted it for the subject's care;"
        " 'submitter' when the care was someone else's")),
})  # fmt: skip
claim_document = connector.dataset("claim_document", activity="policy_management", key="doc_id", fields={
    "claim_id": P.OBSERVED, "kind": P.PROVIDED, "filename": P.PROVIDED, "received_at": P.OBSERVED,
})  # fmt: skip
fraud_alert = connector.dataset("fraud_alert", activity="fraud_prevention", key="alert_id", fields={
    "claim_id": Field(P.DERIVED, description=FLAGGED), "raised_at": Field(P.DERIVED, description=FLAGGED),
    "rule_code": Field(P.DERIVED, description="the detection rule that raised the alert, as a code"),
    "status": Field(P.DERIVED, description=FLAGGED), "closed_at": Field(P.DERIVED, description=FLAGGED),
})  # fmt: skip

OTHER_CARE = ("patient_person_id", "care_category", "care_date", "provider_name", "diagnosis_code",
              "amount_claimed_cents")  # fmt: skip
_OTHER_CARE = "care another person received (GDPR art. 15(4)): only the subject's submission is shown"
_OTHER_DOCUMENT = "a document of another person's care (GDPR art. 15(4)): its kind and file name would reveal it"
_OTHER_RULE = "an alert on another person's care (GDPR art. 15(4)): its rule may name the kind of care"
_OTHER_SUBMITTER = "submitted by another person (GDPR art. 15(4)): who submitted it is not shown"
ROLES = {(True, True): "patient_and_submitter", (True, False): "patient", (False, True): "submitter"}
_CONCERNS = "(c.patient_person_id = ANY($1::uuid[]) OR c.submitted_by_person_id = ANY($1::uuid[]))"


def subject_ids(q: Query) -> list[uuid.UUID]:
    """The subject's person ids; a value that is not a uuid cannot name anyone here."""
    ids = []
    for value in q.values(Ident.PERSON_ID):
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            continue
    return ids


@claim.search
async def find_claims(q: Query, db: Any) -> AsyncIterator[Record]:
    columns = ", ".join(f"c.{name}" for name in claim.fields if name != "subject_role")
    sql = f"""SELECT {columns}, c.patient_person_id = ANY($1::uuid[]) AS own_care,
                     c.submitted_by_person_id = ANY($1::uuid[]) AS own_submission
              FROM claim c WHERE {_CONCERNS} ORDER BY c.submitted_at, c.claim_id"""
    async for row in rows(db, sql, subject_ids(q)):
        own_care, own_submission = row["own_care"], row["own_submission"]
        removed = {"own_care", "own_submission"}
        removed.update(() if own_care else OTHER_CARE)
        removed.update(() if own_submission else ("submitted_by_person_id",))
        fields = {k: v for k, v in row.items() if k not in removed}
        fields["subject_role"] = ROLES[own_care, own_submission]
        yield claim.record(fields)
        if not own_care:
            yield connector.redaction(claim, row["claim_id"], OTHER_CARE, _OTHER_CARE)
        elif not own_submission:
            yield connector.redaction(claim, row["claim_id"], ["submitted_by_person_id"], _OTHER_SUBMITTER)


@claim_document.search
async def find_documents(q: Query, db: Any) -> AsyncIterator[Record]:
    sql = f"""SELECT d.doc_id, d.claim_id, d.kind, d.filename, d.received_at,
                     c.patient_person_id = ANY($1::uuid[]) AS own_care
              FROM claim c JOIN claim_document d USING (claim_id) WHERE {_CONCERNS} ORDER BY d.claim_id, d.doc_id"""
    async for row in rows(db, sql, subject_ids(q)):
        if row["own_care"]:
            yield claim_document.record({k: v for k, v in row.items() if k != "own_care"})
            continue
        yield claim_document.record({"doc_id": row["doc_id"], "claim_id": row["claim_id"],
                                     "received_at": row["received_at"]})  # fmt: skip
        yield connector.redaction(claim_document, row["doc_id"], ["kind", "filename"], _OTHER_DOCUMENT)


@fraud_alert.search
async def find_fraud_alerts(q: Query, db: Any) -> AsyncIterator[Record]:
    sql = """SELECT a.alert_id, a.claim_id, a.raised_at, a.rule_code, a.status, a.closed_at,
                    coalesce(c.patient_person_id = ANY($1::uuid[]), true) AS own_care
             FROM fraud_alert a LEFT JOIN claim c USING (claim_id)
             WHERE a.person_id = ANY($1::uuid[]) ORDER BY a.raised_at, a.alert_id"""
    async for row in rows(db, sql, subject_ids(q)):
        fields = {k: v for k, v in row.items() if k != "own_care" and (row["own_care"] or k != "rule_code")}
        yield fraud_alert.record(fields)
        if not row["own_care"]:
            yield connector.redaction(fraud_alert, row["alert_id"], ["rule_code"], _OTHER_RULE)
