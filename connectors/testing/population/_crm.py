"""Documents of the `crm` system (MongoDB): contacts, interactions, complaints, quotes.

A contact holds a person's e-mails, the household phone, the policy numbers they belong to and,
for insured people, their `person_id`. The demo subject's contact has `demo_interactions`
interactions, two complaints (one resolved) and two quotes. Prospects are contacts with no
`person_id` and no policy.
"""

import random
from datetime import datetime, timedelta

from bson import ObjectId

from ._people import Context, Household, Outsider, Row, Rows, new_object_id, random_instant

INTERACTIONS = (
    (
        "Question sur un remboursement",
        "L'assuré demande où en est le remboursement de sa dernière facture ; délai de traitement expliqué.",
    ),
    ("Changement de coordonnées bancaires", "Nouveau RIB reçu par courrier, mise à jour effectuée."),
    ("Demande d'attestation", "Attestation de droits envoyée par e-mail le jour même."),
    ("Ajout d'un bénéficiaire", "Demande d'ajout d'un enfant au contrat ; acte de naissance demandé."),
    ("Information sur les garanties", "Explication des plafonds optique et dentaire de la formule Confort."),
    ("Prélèvement rejeté", "Rejet de prélèvement signalé, régularisation par carte proposée et acceptée."),
    ("Délai de remboursement", "Client mécontent du délai ; dossier relancé auprès du service prestations."),
    ("Demande de devis", "Souhaite comparer les formules avant un changement de situation familiale."),
)
COMPLAINTS = (
    (
        "reimbursement_delay",
        "Remboursement d'une facture d'hospitalisation toujours en attente après six semaines.",
        "Dossier traité en priorité, remboursement effectué et geste commercial accordé.",
    ),
    ("billing", "Prélèvement effectué deux fois sur le même mois.", "Trop-perçu remboursé sur le compte du client."),
    (
        "service_quality",
        "Trois appels sans réponse au service client.",
        "Rappel par un conseiller, excuses présentées.",
    ),
    ("contract_termination", "Résiliation demandée non prise en compte.", None),
)
PRODUCTS = ("SANTE_FAMILLE", "SANTE_INDIVIDUELLE", "PREVOYANCE_DECES", "EXPAT_SANTE")
BROKERS = ("Cabinet Lemoine Courtage", "Assur'Conseil Rhône", "Atlantique Courtage")
CHANNELS = ("phone", "email", "web", "branch")


def household_rows(hh: Household, ctx: Context) -> Rows:
    """The contacts of a household's members, each followed by its interactions, complaints and quotes."""
    rng = ctx.rng("crm", hh.index)
    for person in hh.members:
        if person.contact_id is None:
            continue
        demo = hh.is_demo and person is hh.subscriber
        source = "web" if demo else rng.choice(("web", "broker", "client_company", "event"))
        yield (
            "contacts",
            _contact(
                rng,
                person.contact_id,
                person.created_at,
                ctx.as_of,
                person_id=str(person.person_id),
                emails=[person.email] if person.email else [],
                phones=[hh.phone],
                first_name=person.first_name,
                last_name=person.last_name,
                birth_date=person.birth_date.isoformat(),
                source=source,
                policy_numbers=[
                    p.policy_number for p in hh.policies if any(i == person.person_id for i, _ in p.members)
                ],
            ),
        )
        yield from _activity(rng, person.contact_id, person.created_at, ctx, demo=demo, postal_code=hh.postal_code)


def prospect_rows(prospect: Outsider, ctx: Context, index: int) -> Rows:
    """A contact who never took a policy: no person id, sometimes no birth date."""
    rng = ctx.rng("crm", "prospect", index)
    yield (
        "contacts",
        _contact(
            rng,
            prospect.object_id,
            prospect.created_at,
            ctx.as_of,
            person_id=None,
            emails=[prospect.email],
            phones=[prospect.phone],
            first_name=prospect.first_name,
            last_name=prospect.last_name,
            birth_date=None,
            source=rng.choice(("web", "event", "broker")),
            policy_numbers=[],
        ),
    )
    for _ in range(rng.randint(0, 2)):
        requested = random_instant(rng, prospect.created_at, ctx.as_of)
        yield "quotes", _quote(rng, prospect.object_id, requested, "00000")


def _contact(
    rng: random.Random,
    contact_id: ObjectId,
    created: datetime,
    as_of: datetime,
    *,
    person_id: str | None,
    emails: list[str],
    phones: list[str],
    first_name: str,
    last_name: str,
    birth_date: str | None,
    source: str,
    policy_numbers: list[str],
) -> Row:
    updated = random_instant(rng, created, as_of)
    return {
        "_id": contact_id,
        "person_id": person_id,
        "emails": emails,
        "phones": phones,
        "first_name": first_name,
        "last_name": last_name,
        "birth_date": birth_date,
        "policy_numbers": policy_numbers,
        "source": source,
        "broker": rng.choice(BROKERS) if source == "broker" else None,
        "marketing": {"email_opt_in": rng.random() < 0.4, "sms_opt_in": rng.random() < 0.2, "updated_at": updated},
        "created_at": created,
        "updated_at": updated,
    }


def _activity(
    rng: random.Random, contact_id: ObjectId, start: datetime, ctx: Context, *, demo: bool, postal_code: str
) -> Rows:
    count = ctx.sizes.demo_interactions if demo else rng.randint(0, 2 * ctx.sizes.interactions_per_contact)
    for _ in range(count):
        occurred = random_instant(rng, start, ctx.as_of)
        subject, notes = rng.choice(INTERACTIONS)
        yield (
            "interactions",
            {
                "_id": new_object_id(rng, occurred),
                "contact_id": contact_id,
                "channel": rng.choice(CHANNELS),
                "occurred_at": occurred,
                "subject": subject,
                "notes": notes,
                "agent_id": f"AG-{rng.randint(100, 999)}",
            },
        )
    complaints = [COMPLAINTS[0], COMPLAINTS[3]] if demo else [rng.choice(COMPLAINTS)] if rng.random() < 0.08 else []
    for category, description, resolution in complaints:
        opened = random_instant(rng, start, ctx.as_of)
        yield (
            "complaints",
            {
                "_id": new_object_id(rng, opened),
                "contact_id": contact_id,
                "opened_at": opened,
                "category": category,
                "description": description,
                "status": "closed" if resolution else "open",
                "resolution": resolution,
            },
        )
    for _ in range(2 if demo else 1 if rng.random() < 0.15 else 0):
        requested = random_instant(rng, start, ctx.as_of)
        yield "quotes", _quote(rng, contact_id, requested, postal_code)


def _quote(rng: random.Random, contact_id: ObjectId, requested: datetime, postal_code: str) -> Row:
    product = rng.choice(PRODUCTS)
    answers = {
        "nombre_adultes": rng.randint(1, 2),
        "nombre_enfants": rng.randint(0, 3),
        "code_postal": postal_code,
        "regime": rng.choice(("general", "alsace_moselle", "tns")),
        "fumeur": rng.random() < 0.2,
        "niveau_garanties": rng.choice(("essentiel", "confort", "premium")),
        "date_effet_souhaitee": (requested + timedelta(days=rng.randint(15, 90))).date().isoformat(),
    }
    return {
        "_id": new_object_id(rng, requested),
        "contact_id": contact_id,
        "requested_at": requested,
        "product": product,
        "answers": answers,
    }
