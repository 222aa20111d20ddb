"""Documents of the `recruitment` system (MongoDB): candidates and their applications.

Recruitment knows people only by e-mail and phone. The demo subject applied once, in 2020, with
the e-mail he uses as an insured person; the former candidate applied twice through an agency.
`recruiter_assessment` is derived data (never portable).
"""

import random
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from ._people import Context, Household, Outsider, Row, Rows, random_instant

JOBS = (
    ("DEV", "Développeur Python, systèmes de gestion"),
    ("GES", "Gestionnaire prestations santé"),
    ("CCL", "Conseiller clientèle"),
    ("ACT", "Chargé d'études actuarielles"),
    ("JUR", "Juriste conformité"),
)
STATUSES = ("rejected", "rejected", "withdrawn", "hired", "interview")
NOTES = (
    "Entretien de 45 minutes, bonne présentation, questions pertinentes sur l'équipe.",
    "Échange téléphonique : disponibilité sous trois mois, mobilité géographique limitée.",
    "Cas pratique réussi ; hésitations sur la partie réglementaire.",
)
ASSESSMENTS = (
    "Profil solide techniquement, manque d'expérience du secteur de l'assurance.",
    "Bon relationnel ; prétentions salariales au-dessus de la grille.",
    "Candidat à recontacter pour un poste plus junior.",
    "Ne correspond pas au niveau d'autonomie attendu.",
)
DEGREES = ("Master", "Licence professionnelle", "BTS", "École d'ingénieurs")
AGENCIES = ("Talents & Co", "Alpha Recrutement", "Cap Emploi Conseil")


def household_rows(hh: Household, ctx: Context) -> Rows:
    """Candidates among a household's members (those who once applied)."""
    rng = ctx.rng("recruitment", hh.index)
    for person in hh.members:
        if person.candidate_id is None or person.email is None:
            continue
        applications = 1 if hh.is_demo else rng.randint(1, 2)
        yield (
            "candidates",
            _candidate(
                rng,
                person.candidate_id,
                person.email,
                hh.phone,
                person.first_name,
                person.last_name,
                person.candidate_id.generation_time,
                ctx.as_of,
                applications=applications,
                source="direct" if hh.is_demo else None,
            ),
        )


def outsider_rows(candidate: Outsider, ctx: Context, index: int) -> Rows:
    """A candidate known to no other system."""
    rng = ctx.rng("recruitment", "outsider", index)
    yield (
        "candidates",
        _candidate(
            rng,
            candidate.object_id,
            candidate.email,
            candidate.phone,
            candidate.first_name,
            candidate.last_name,
            candidate.created_at,
            ctx.as_of,
            applications=2 if index == 0 else rng.randint(1, 3),
            source="agency" if index == 0 else None,
        ),
    )


def _candidate(
    rng: random.Random,
    candidate_id: ObjectId,
    email: str,
    phone: str,
    first_name: str,
    last_name: str,
    applied: datetime,
    as_of: datetime,
    *,
    applications: int,
    source: str | None,
) -> Row:
    """A candidate's file; `source` None means direct or agency at random."""
    source = source or ("direct" if rng.random() < 0.6 else "agency")
    history: list[dict[str, Any]] = []
    for _ in range(applications):
        code, _title = rng.choice(JOBS)
        history.append(
            {
                "job_ref": f"REF-{applied.year}-{code}-{rng.randint(1, 60):03d}",
                "applied_at": applied,
                "status": rng.choice(STATUSES),
                "interview_notes": rng.choice(NOTES),
                "recruiter_assessment": rng.choice(ASSESSMENTS),
            }
        )
        applied = random_instant(rng, applied + timedelta(days=30), max(as_of, applied + timedelta(days=31)))
    last_contact = history[-1]["applied_at"] + timedelta(days=rng.randint(5, 40))
    return {
        "_id": candidate_id,
        "email": email,
        "phone": phone,
        "first_name": first_name,
        "last_name": last_name,
        "cv_filename": f"CV_{first_name}_{last_name}_{history[0]['applied_at']:%Y}.pdf".replace(" ", "_"),
        "cv_text": (
            f"{first_name} {last_name}\n{email} · {phone}\n\nExpérience\n"
            f"{rng.randint(3, 15)} ans d'expérience. {rng.choice(JOBS)[1]}.\n\nFormation\n"
            f"{rng.choice(DEGREES)}"
        ),
        "source": source,
        "agency_name": rng.choice(AGENCIES) if source == "agency" else None,
        "applications": history,
        "last_contact_at": min(last_contact, as_of),
    }
