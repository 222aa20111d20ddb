"""Rows of the `claims` system (PostgreSQL): claims for care, their documents, fraud alerts.

The demo subject's `demo_claims` claims are of three kinds: 60 % care he received and submitted
himself, 30 % care his wife or children received that he submitted (their health data, not his),
10 % care he received that his wife submitted. Alerts name the person who submitted the claim; the
demo subject's first claim always has one. His wife also submits claims of her own and the
children's, which are none of his.
"""

import random
from datetime import UTC, date, datetime, time, timedelta

from ._people import CHILD, Context, Household, Person, Rows, Sequences

# category: (providers, diagnosis codes (CIM-10; None when the provider gives none), claimed cents range)
CARE: dict[str, tuple[tuple[str, ...], tuple[str | None, ...], tuple[int, int]]] = {
    "hospitalization": (
        ("Clinique du Parc", "Hôpital privé Jean Mermoz", "Centre hospitalier Saint-Joseph", "Clinique des Cèdres"),
        ("K35.8", "S82.6", "O80", "M17.1", "I20.9"),
        (30_000, 480_000),
    ),
    "optical": (
        ("Optique du Centre", "Les Lunettiers de Bellecour", "Vision Plus Part-Dieu"),
        ("H52.1", "H52.4", "H52.2", None),
        (9_000, 95_000),
    ),
    "dental": (
        ("Cabinet dentaire Dr Roussel", "Centre dentaire des Brotteaux", "Dr Amrani, chirurgien-dentiste"),
        ("K02.1", "K04.7", "K08.1", "K05.3"),
        (2_300, 120_000),
    ),
    "pharmacy": (
        ("Pharmacie de la Gare", "Pharmacie du Marché", "Grande Pharmacie Bellecour"),
        (None, None, None, "J06.9", "E11.9"),
        (450, 14_000),
    ),
    "consultation": (
        (
            "Dr Lefèvre, médecin généraliste",
            "Dr Nguyen, dermatologue",
            "Dr Benali, psychiatre",
            "Dr Kerjean, pédiatre",
            "Dr Santoni, cardiologue",
        ),
        ("J06.9", "L20.9", "M54.5", "F41.1", "E11.9", "I10", None),
        (2_650, 12_000),
    ),
}
CATEGORY_WEIGHTS = (
    ("hospitalization", 0.06),
    ("optical", 0.12),
    ("dental", 0.17),
    ("pharmacy", 0.35),
    ("consultation", 0.30),
)
DOCUMENT_KINDS = ("invoice", "care_sheet", "prescription", "quote")
RULES = ("DUPLICATE_INVOICE", "AMOUNT_OUTLIER", "PROVIDER_WATCHLIST", "FREQUENCY_OPTICAL", "DATE_MISMATCH")


def household_rows(hh: Household, ctx: Context, seq: Sequences) -> Rows:
    """Every claim of one household, each followed by its documents and alerts."""
    rng = ctx.rng("claims", hh.index)
    adults = [m for m in hh.members if m.role != CHILD]
    if hh.is_demo:
        subject, spouse, relatives = hh.members[0], hh.members[1], hh.members[1:]
        n = ctx.sizes.demo_claims
        by_relative, for_relatives = n // 10, 3 * n // 10
        for i in range(n):
            if i < by_relative:
                patient, submitter = subject, spouse
            elif i < by_relative + for_relatives:
                patient, submitter = rng.choice(relatives), subject
            else:
                patient, submitter = subject, subject
            yield from _claim(hh, ctx, seq, rng, patient, submitter, alert=i == by_relative + for_relatives)
        adults = [m for m in adults if m is not subject]
    for patient in hh.members:
        if hh.is_demo and patient is hh.members[0]:
            continue
        submitter = patient if patient.role != CHILD else rng.choice(adults)
        for _ in range(rng.randint(0, 2 * ctx.sizes.claims_per_person)):
            yield from _claim(hh, ctx, seq, rng, patient, submitter, alert=False)


def _claim(
    hh: Household, ctx: Context, seq: Sequences, rng: random.Random, patient: Person, submitter: Person, *, alert: bool
) -> Rows:
    policies = [p for p in hh.policies if any(pid == patient.person_id for pid, _ in p.members)] or [hh.policies[0]]
    policy = rng.choice(policies)
    first = max(policy.start_date, patient.birth_date)
    last = min(policy.end_date or ctx.as_of.date(), ctx.as_of.date() - timedelta(days=10))
    care_date = first + timedelta(days=rng.randrange((last - first).days)) if last > first else last
    category = rng.choices([c for c, _ in CATEGORY_WEIGHTS], [w for _, w in CATEGORY_WEIGHTS])[0]
    providers, diagnoses, (low, high) = CARE[category]
    claimed = rng.randrange(low, high, 5)
    submitted_at = min(_instant(rng, care_date + timedelta(days=rng.randint(1, 30))), ctx.as_of)
    status = rng.choices(("paid", "rejected", "pending"), (0.9, 0.05, 0.05))[0]
    reimbursed = int(claimed * rng.uniform(0.3, 1.0)) if status == "paid" else 0
    claim_id = f"SIN-{care_date.year}-{seq.next('claim'):07d}"
    yield (
        "claim",
        {
            "claim_id": claim_id,
            "policy_number": policy.policy_number,
            "patient_person_id": patient.person_id,
            "submitted_by_person_id": submitter.person_id,
            "care_category": category,
            "care_date": care_date,
            "provider_name": rng.choice(providers),
            "diagnosis_code": rng.choice(diagnoses),
            "amount_claimed_cents": claimed,
            "amount_reimbursed_cents": reimbursed,
            "status": status,
            "submitted_at": submitted_at,
        },
    )
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(DOCUMENT_KINDS)
        yield (
            "claim_document",
            {
                "doc_id": f"DOC-{seq.next('claim_document'):08d}",
                "claim_id": claim_id,
                "kind": kind,
                "filename": f"{kind}_{care_date:%Y%m%d}.{rng.choice(('pdf', 'pdf', 'jpg'))}",
                "received_at": submitted_at + timedelta(minutes=rng.randint(0, 90)),
            },
        )
    if alert or rng.random() < 0.03:
        status = rng.choice(("open", "dismissed", "confirmed"))
        raised_at = submitted_at + timedelta(days=rng.randint(1, 10))
        yield (
            "fraud_alert",
            {
                "alert_id": f"FRA-{seq.next('fraud_alert'):06d}",
                "claim_id": claim_id,
                "person_id": submitter.person_id,
                "raised_at": raised_at,
                "rule_code": rng.choice(RULES),
                "status": status,
                "closed_at": None if status == "open" else raised_at + timedelta(days=rng.randint(3, 60)),
            },
        )


def _instant(rng: random.Random, day: date) -> datetime:
    return datetime.combine(day, time(rng.randint(7, 22), rng.randint(0, 59)), UTC)
