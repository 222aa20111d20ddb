"""Rows of the `policy` system (PostgreSQL): people, contracts, payments, dunning, AML, access log.

The demo household gets one of every event: two bank accounts, card payments, a failed direct debit
followed by automated dunning, a failed card payment that led to a manual suspension, AML screenings
with analyst notes (never to be exported) and a dozen consultations of his file by employees.
"""

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta

from . import _french as fr
from ._people import SUBSCRIBER, Context, Household, Person, Policy, Rows, Sequences, random_instant

ACCESSOR_ROLES = (
    ("claims_handler", "Instruction d'une demande de remboursement"),
    ("customer_advisor", "Appel entrant de l'assuré"),
    ("customer_advisor", "Mise à jour des coordonnées"),
    ("medical_officer", "Avis médical sur une prise en charge"),
    ("quality_auditor", "Contrôle qualité de la gestion"),
    ("underwriter", "Étude d'un avenant au contrat"),
)
AML_NOTES = (
    "Aucune correspondance sur les listes de gel des avoirs.",
    "Contrôle périodique sans observation.",
    "Homonymie écartée après vérification de la date de naissance.",
    "Mise à jour des justificatifs d'identité, RAS.",
)
# The demo subject's AML notes: distinctive, so that a test can prove they never reach an archive.
DEMO_AML = (
    (
        datetime(2012, 8, 21, 10, 2, tzinfo=UTC),
        False,
        False,
        "low",
        "Entrée en relation : identité vérifiée, expatriation au Canada déclarée (dossier LCB 2012-0831).",
    ),
    (
        datetime(2019, 6, 3, 15, 40, tzinfo=UTC),
        False,
        False,
        "low",
        "Revue quinquennale : aucune correspondance PPE ni gel des avoirs (dossier LCB 2019-4417).",
    ),
    (
        datetime(2024, 2, 12, 11, 5, tzinfo=UTC),
        False,
        False,
        "medium",
        "Virements entrants répétés depuis un compte canadien ; origine des fonds demandée (dossier LCB 2024-0117).",
    ),
)


def household_rows(hh: Household, ctx: Context, seq: Sequences) -> Rows:
    """Every policy row of one household, people first (policy.subscriber_id refers to them)."""
    rng = ctx.rng("policy", hh.index)
    for person in hh.members:
        yield "insured_person", _insured_person(person, hh, rng, ctx.as_of)
    for policy in hh.policies:
        yield (
            "policy",
            {
                "policy_number": policy.policy_number,
                "product_code": policy.product_code,
                "status": policy.status,
                "start_date": policy.start_date,
                "end_date": policy.end_date,
                "subscriber_id": policy.subscriber_id,
                "expatriation_country": policy.expatriation_country,
                "premium_cents": policy.premium_cents,
            },
        )
        for person_id, role in policy.members:
            yield "policy_member", {"policy_number": policy.policy_number, "person_id": person_id, "role": role}
    yield from _bank_accounts(hh, rng)
    for number, policy in enumerate(hh.policies):
        yield from _payments(policy, hh, rng, seq, ctx.as_of, forced_failure=hh.is_demo, manual=number == 1)
    yield from _aml(hh, rng, seq, ctx.as_of)
    for person in hh.members:
        visits = 12 if hh.is_demo and person.role == SUBSCRIBER else rng.randint(0, 4)
        for _ in range(visits):
            role, purpose = rng.choice(ACCESSOR_ROLES)
            yield (
                "file_access_log",
                {
                    "id": seq.next("file_access_log"),
                    "person_id": person.person_id,
                    "accessed_at": random_instant(rng, person.created_at, ctx.as_of),
                    "accessor_role": role,
                    "accessor_id": f"EMP-{rng.randint(10_000, 99_999)}",
                    "purpose": purpose,
                },
            )


def _insured_person(person: Person, hh: Household, rng: random.Random, as_of: datetime) -> dict[str, object]:
    return {
        "person_id": person.person_id,
        "nir": person.nir,
        "last_name": person.last_name,
        "first_name": person.first_name,
        "birth_date": person.birth_date,
        "email": person.email,
        "phone": person.phone,
        "address_line": hh.address_line,
        "postal_code": hh.postal_code,
        "city": hh.city,
        "country": hh.country,
        "marital_status": person.marital_status,
        "occupation": person.occupation,
        "employer_name": person.employer_name,
        "created_at": person.created_at,
        "updated_at": random_instant(rng, person.created_at, as_of),
    }


def _bank_accounts(hh: Household, rng: random.Random) -> Rows:
    """The subscriber's accounts: one, or an old one and the one that replaced it."""
    subscriber = hh.subscriber
    title = "M." if subscriber.sex == 1 else "Mme"
    opened = subscriber.created_at.date()
    history = [opened]
    if hh.is_demo or rng.random() < 0.3:
        history.append(opened + timedelta(days=rng.randint(700, 2500)))
    for valid_from in history:
        iban, bic = fr.random_bank_account(rng)
        yield (
            "bank_account",
            {
                "person_id": subscriber.person_id,
                "iban": iban,
                "bic": bic,
                "holder_name": f"{title} {subscriber.first_name} {subscriber.last_name}",
                "valid_from": valid_from,
            },
        )


def _due_dates(policy: Policy, as_of: datetime) -> Iterator[date]:
    end = min(policy.end_date or as_of.date(), as_of.date())
    year, month = policy.start_date.year, policy.start_date.month
    while (due := date(year, month, 5)) <= end:
        yield due
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def _payments(
    policy: Policy,
    hh: Household,
    rng: random.Random,
    seq: Sequences,
    as_of: datetime,
    *,
    forced_failure: bool,
    manual: bool,
) -> Rows:
    """Monthly premiums; a failed one starts the dunning procedure, and is settled by card later."""
    for n, due in enumerate(_due_dates(policy, as_of)):
        paid_at = datetime.combine(due + timedelta(days=rng.randint(0, 3)), time(6, 30), UTC)
        failed = (forced_failure and n == 14) or rng.random() < 0.015
        recent = paid_at > as_of
        status = "pending" if recent else "failed" if failed else "paid"
        yield (
            "premium_payment",
            {
                "payment_id": seq.next("premium_payment"),
                "policy_number": policy.policy_number,
                "due_date": due,
                "amount_cents": policy.premium_cents,
                "status": status,
                "paid_at": paid_at if status == "paid" else None,
                "card_last4": policy.card_last4 if status == "paid" else None,
            },
        )
        if status != "failed":
            continue
        steps = 3 if forced_failure and manual else 2 if forced_failure else rng.randint(1, 3)
        occurred = paid_at
        for step, delay in (("reminder", 5), ("formal_notice", 15), ("suspension", 20))[:steps]:
            occurred += timedelta(days=delay)
            yield (
                "dunning_event",
                {
                    "id": seq.next("dunning_event"),
                    "policy_number": policy.policy_number,
                    "occurred_at": occurred,
                    "step": step,
                    "automated": step != "suspension",
                },
            )
        yield (
            "premium_payment",
            {
                "payment_id": seq.next("premium_payment"),
                "policy_number": policy.policy_number,
                "due_date": due,
                "amount_cents": policy.premium_cents,
                "status": "paid",
                "paid_at": occurred + timedelta(days=2),
                "card_last4": policy.card_last4 or f"{rng.randrange(10_000):04d}",
            },
        )


def _aml(hh: Household, rng: random.Random, seq: Sequences, as_of: datetime) -> Rows:
    """Anti-money-laundering screenings of the subscriber. Never exported, never mentioned (L561-45)."""
    subscriber = hh.subscriber
    if hh.is_demo:
        screenings = list(DEMO_AML)
    else:
        screenings = []
        at = subscriber.created_at + timedelta(days=1)
        while at < as_of:
            risk = rng.choices(("low", "medium", "high"), (0.9, 0.08, 0.02))[0]
            screenings.append((at, rng.random() < 0.01, rng.random() < 0.002, risk, rng.choice(AML_NOTES)))
            at += timedelta(days=rng.randint(700, 1800))
    for screened_at, pep, sanctions_hit, risk, note in screenings:
        yield (
            "aml_screening",
            {
                "id": seq.next("aml_screening"),
                "person_id": subscriber.person_id,
                "screened_at": screened_at,
                "pep": pep,
                "sanctions_hit": sanctions_hit,
                "risk_level": risk,
                "analyst_note": note,
            },
        )
