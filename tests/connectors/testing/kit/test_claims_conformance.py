"""The claims connector against the conformance kit, on real PostgreSQL with the generated population.

The expected records are derived from the population's rows, independently of the connector, by
the rules of its docstring and world.md §3: every claim the person received care for or submitted,
the documents of those claims, the fraud alerts that name the person; and a redaction note (keyed
`<dataset>/<record key>`, as `Connector.redaction` keys them) for each claim the person did not
both receive and submit, each document of someone else's care, and each alert on someone else's
care. The demo subject's rows come from `population.subject_rows("claims")`; his wife's (she
submitted some of his claims, he some of hers and the children's) and the namesake's from
`population.rows("claims")`.
"""

import datetime as dt
import uuid
from collections.abc import Iterable, Iterator

import asyncpg
import pytest
from _population_cases import (  # this folder is on sys.path (pytest prepend import mode)
    DEMO,
    NAMESAKE,
    POPULATION,
    SPOUSE,
    WORLD_NEGATIVES,
    Row,
    demo_rows,
    full_name,
    rows,
)

from connectors import claims
from connectors.sdk import REDACTIONS, Ident
from connectors.testing.kit import ConformanceSuite, NegativeCase, SeededStore, SubjectCase
from connectors.testing.population import load_population

pytestmark = pytest.mark.integration

HEAVY = uuid.UUID("00000000-0000-4000-8000-00000000c1a1")
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
CLAIM_COLUMNS = ["claim_id", "policy_number", "patient_person_id", "submitted_by_person_id", "care_category",
                 "care_date", "provider_name", "diagnosis_code", "amount_claimed_cents", "amount_reimbursed_cents",
                 "status", "submitted_at"]  # fmt: skip


def expected_for(
    person_id: str, claim_rows: Iterable[Row], documents: Iterable[Row], alerts: Iterable[Row]
) -> dict[str, list[str]]:
    """The records (and redaction notes) the claims connector owes `person_id`, from the generated rows."""
    pid = uuid.UUID(person_id)
    concerning = [c for c in claim_rows if pid in (c["patient_person_id"], c["submitted_by_person_id"])]
    others_care = {c["claim_id"] for c in concerning if c["patient_person_id"] != pid}
    by_someone_else = {c["claim_id"] for c in concerning if c["submitted_by_person_id"] != pid}
    patient_of = {c["claim_id"]: c["patient_person_id"] for c in rows(POPULATION, "claims", "claim")}
    own_documents = [d for d in documents if d["claim_id"] in {c["claim_id"] for c in concerning}]
    own_alerts = [a for a in alerts if a["person_id"] == pid]
    return {
        "claim": [c["claim_id"] for c in concerning],
        "claim_document": [d["doc_id"] for d in own_documents],
        "fraud_alert": [a["alert_id"] for a in own_alerts],
        REDACTIONS: [
            *(f"claim/{claim_id}" for claim_id in others_care | by_someone_else),
            *(f"claim_document/{d['doc_id']}" for d in own_documents if d["claim_id"] in others_care),
            *(f"fraud_alert/{a['alert_id']}" for a in own_alerts if patient_of.get(a["claim_id"], pid) != pid),
        ],
    }


def expected_from_population(person_id: str) -> dict[str, list[str]]:
    """As `expected_for`, over every row of the population (for the cast besides the demo subject)."""
    return expected_for(person_id, rows(POPULATION, "claims", "claim"), rows(POPULATION, "claims", "claim_document"),
                        rows(POPULATION, "claims", "fraud_alert"))  # fmt: skip


DEMO_EXPECTED = expected_for(DEMO.person_id, demo_rows("claims", "claim"), demo_rows("claims", "claim_document"),
                             demo_rows("claims", "fraud_alert"))  # fmt: skip
# The population's own tally of his claims: each one not wholly his carries a note.
CLAIM_NOTES = [key for key in DEMO_EXPECTED[REDACTIONS] if key.startswith("claim/")]
assert len(CLAIM_NOTES) == DEMO.claims_for_relatives + DEMO.claims_by_relatives


class TestClaimsConformance(ConformanceSuite):
    connector = claims.connector
    subjects = (
        SubjectCase(
            "demo subject",
            {
                Ident.PERSON_ID: DEMO.person_id,
                Ident.EMAIL: DEMO.email,  # claims knows no e-mail: only the person id counts
                Ident.PHONE: DEMO.phone,  # shared with his wife and children
                Ident.POLICY_NUMBER: DEMO.policy_numbers,  # shared with his family; on every family claim
                Ident.FULL_NAME: full_name(DEMO.last_name, DEMO.first_name),  # shared with the namesake
                Ident.BIRTH_DATE: DEMO.birth_date.isoformat(),
            },
            records=DEMO_EXPECTED,
        ),
        SubjectCase(
            "spouse",
            {Ident.PERSON_ID: SPOUSE.person_id, Ident.PHONE: DEMO.phone, Ident.POLICY_NUMBER: DEMO.policy_number},
            records=expected_from_population(SPOUSE.person_id),
        ),
        SubjectCase(
            "namesake", {Ident.PERSON_ID: NAMESAKE.person_id}, records=expected_from_population(NAMESAKE.person_id)
        ),
    )
    negatives = (
        *WORLD_NEGATIVES,
        NegativeCase("unknown person id", {Ident.PERSON_ID: "00000000-0000-4000-8000-000000000000"}),
        NegativeCase("person id that is not a uuid", {Ident.PERSON_ID: "not-a-uuid"}),
    )

    async def seed(self, store: SeededStore) -> None:
        await load_population(POPULATION, {"claims": store.dsn}, {})

    async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
        conn = await asyncpg.connect(store.dsn)
        try:
            await conn.copy_records_to_table("claim", records=_claims(n), columns=CLAIM_COLUMNS)
        finally:
            await conn.close()
        return SubjectCase("heavy subject", {Ident.PERSON_ID: str(HEAVY)}, records={"claim": n})


def _claims(n: int) -> Iterator[tuple[object, ...]]:
    """`n` pharmacy claims the heavy subject received and submitted himself: no note, no document."""
    for i in range(n):
        day = T0 + dt.timedelta(minutes=i)
        yield (f"SIN-HEAVY-{i:07d}", "SF-HEAVY-0001", HEAVY, HEAVY, "pharmacy", day.date(), "Pharmacie de la Gare",
               None, 1_250, 875, "paid", day)  # fmt: skip
