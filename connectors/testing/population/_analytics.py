"""Documents of the `analytics` system (MongoDB): site visits with their pages, cookie consents.

A visit always has the browser's cookie (`visitor_id`); it has a `user_id` (the policy system's
`person_id`) only when the visitor logged in to the personal space. The demo subject's
`demo_visits` visits all carry his cookie: 70 % logged in, 30 % anonymous browsing of the public
site. He gave his cookie consent twice: once anonymously, once logged in.
"""

import random
from datetime import UTC, datetime, timedelta

from . import _french as fr
from ._people import Context, Household, Rows, new_object_id, random_instant

PUBLIC_PAGES = (
    "/",
    "/offres/sante-famille",
    "/offres/prevoyance",
    "/offres/expatries",
    "/devis/sante",
    "/contact",
    "/faq",
    "/blog/bien-choisir-sa-mutuelle",
    "/agences/lyon",
    "/mentions-legales",
)
PERSONAL_PAGES = (
    "/espace-client",
    "/espace-client/remboursements",
    "/espace-client/contrat",
    "/espace-client/attestations",
    "/espace-client/documents",
    "/espace-client/coordonnees",
    "/espace-client/messagerie",
    "/espace-client/carte-tiers-payant",
)
SITE_OPENED = datetime(2018, 1, 1, tzinfo=UTC)


def household_rows(hh: Household, ctx: Context) -> Rows:
    """The visits and consents of a household's members who browse the site."""
    rng = ctx.rng("analytics", hh.index)
    for person in hh.members:
        if person.visitor_id is None:
            continue
        demo = hh.is_demo and person is hh.subscriber
        start = max(person.created_at, SITE_OPENED)
        count = ctx.sizes.demo_visits if demo else rng.randint(0, 2 * ctx.sizes.visits_per_person)
        anonymous = max(1, 3 * count // 10) if demo else -1
        yield from _consent(rng, person.visitor_id, None, start, ctx.as_of)
        if demo or rng.random() < 0.3:
            yield from _consent(rng, person.visitor_id, str(person.person_id), start, ctx.as_of)
        agents = rng.sample(fr.USER_AGENTS, 2)
        for i in range(count):
            logged_in = i >= anonymous if demo else rng.random() < 0.5
            yield from _visit(
                rng, ctx, person.visitor_id, str(person.person_id) if logged_in else None, rng.choice(agents), start
            )


def anonymous_rows(visitor_id: str, ctx: Context, index: int) -> Rows:
    """A cookie never tied to a person: a few public visits and one consent."""
    rng = ctx.rng("analytics", "anonymous", index)
    yield from _consent(rng, visitor_id, None, SITE_OPENED, ctx.as_of)
    agent = rng.choice(fr.USER_AGENTS)
    for _ in range(3 if index == 0 else rng.randint(1, 3)):
        yield from _visit(rng, ctx, visitor_id, None, agent, SITE_OPENED)


def _consent(rng: random.Random, visitor_id: str, user_id: str | None, start: datetime, as_of: datetime) -> Rows:
    given = random_instant(rng, start, as_of)
    yield (
        "cookie_consents",
        {
            "_id": new_object_id(rng, given),
            "visitor_id": visitor_id,
            "user_id": user_id,
            "given_at": given,
            "categories": {"analytics": rng.random() < 0.7, "advertising": rng.random() < 0.3},
        },
    )


def _visit(rng: random.Random, ctx: Context, visitor_id: str, user_id: str | None, agent: str, start: datetime) -> Rows:
    started = random_instant(rng, start, ctx.as_of)
    mean = ctx.sizes.pages_per_visit
    paths = PERSONAL_PAGES if user_id else PUBLIC_PAGES
    at, pages = started, []
    for _ in range(rng.randint(max(1, mean // 2), mean + mean // 2)):
        pages.append({"path": rng.choice(paths), "at": at, "load_ms": rng.randint(60, 2_400)})
        at += timedelta(seconds=rng.randint(4, 240))
    yield (
        "visits",
        {
            "_id": new_object_id(rng, started),
            "visitor_id": visitor_id,
            "user_id": user_id,
            "ip": fr.documentation_ip(rng),
            "user_agent": agent,
            "site": "personal_space" if user_id else "public",
            "started_at": started,
            "pages": pages,
        },
    )
