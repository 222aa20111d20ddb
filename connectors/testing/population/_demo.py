"""The fixed characters of every population, the same whatever the seed.

- Julien Moreau, the demo subject: subscriber of a family health policy (with his wife Claire and
  their children Léa and Hugo) and of a former expatriation policy (Canada, 2012-2015); he once
  applied for a job, uses the personal space and browses the public site anonymously.
- Julien Moreau, his namesake: same names, born in 1975 in Nantes, another e-mail, another person.
- Sophie Garnier, a former candidate known only to recruitment.
- An anonymous visitor known only by a cookie.

Their identifiers are constants so that a demo script or a document can name them.
"""

import uuid
from datetime import UTC, date, datetime

from bson import ObjectId

from . import _french as fr
from ._people import CHILD, SPOUSE, SUBSCRIBER, Household, Outsider, Person, Policy

DEMO_PERSON_ID = uuid.UUID("3f6c2a9e-8b1d-4e7a-9c35-1d2e4f6a8b90")
DEMO_EMAIL = "julien.moreau81@example.com"
DEMO_PHONE = "+33639981402"  # the household's phone: Julien, Claire and the children share it
DEMO_NIR = fr.make_nir(1, 1981, 3, "69", "383", 47)
DEMO_VISITOR_ID = "5d9b8e2a-6f14-4c3b-a7e2-91b0c4d8f3a6"
DEMO_CONTACT_ID = ObjectId("502f1b3c9a8e7d6c5b4a3f2e")
DEMO_CANDIDATE_ID = ObjectId("5f3a1c9e8b7d6a5f4e3d2c1b")
FAMILY_POLICY = "SF-2017-048213"
EXPAT_POLICY = "EX-2012-007731"

SPOUSE_PERSON_ID = uuid.UUID("7a1e5c3b-2d4f-4b6a-8e9c-0f1a2b3c4d5e")
CHILD_PERSON_IDS = (
    uuid.UUID("b2c4e6f8-1a3c-4e5f-9a7b-3c5d7e9f1a2b"),
    uuid.UUID("d4e6f8a0-3c5e-4a7b-8c9d-5e7f9a1b3c4d"),
)

NAMESAKE_PERSON_ID = uuid.UUID("9c8b7a65-4d3e-4f2a-b1c0-e9d8c7b6a5f4")
NAMESAKE_EMAIL = "julien.moreau@example.net"
NAMESAKE_PHONE = "+33261910733"
NAMESAKE_POLICY = "SI-2019-310577"

FORMER_CANDIDATE = Outsider(
    object_id=ObjectId("5a0c3e7b2f1d4c6b8a9e0d1f"),
    first_name="Sophie",
    last_name="Garnier",
    email="sophie.garnier.rh@example.org",
    phone="+33536490288",
    created_at=datetime(2017, 11, 15, 10, 12, tzinfo=UTC),
)
ANONYMOUS_VISITOR_ID = "e7f1c3a9-0b2d-4f6e-8a1c-3b5d7f9e2c4a"

RESERVED_PHONES = (DEMO_PHONE, NAMESAKE_PHONE, FORMER_CANDIDATE.phone)
RESERVED_EMAILS = (DEMO_EMAIL, NAMESAKE_EMAIL, FORMER_CANDIDATE.email, "claire.moreau@example.org")
RESERVED_POLICIES = (FAMILY_POLICY, EXPAT_POLICY, NAMESAKE_POLICY)


def demo_household() -> Household:
    """Household 0: Julien, Claire, Léa and Hugo Moreau, 14 rue Paul Bert, Lyon."""
    created = datetime(2012, 8, 20, 9, 30, tzinfo=UTC)
    julien = Person(
        person_id=DEMO_PERSON_ID,
        first_name="Julien",
        last_name="Moreau",
        birth_date=date(1981, 3, 14),
        sex=1,
        role=SUBSCRIBER,
        nir=DEMO_NIR,
        email=DEMO_EMAIL,
        phone=DEMO_PHONE,
        marital_status="married",
        occupation="Ingénieur logiciel",
        employer_name="Atelier Numérique SARL",
        created_at=created,
        visitor_id=DEMO_VISITOR_ID,
        contact_id=DEMO_CONTACT_ID,
        candidate_id=DEMO_CANDIDATE_ID,
    )
    claire = Person(
        person_id=SPOUSE_PERSON_ID,
        first_name="Claire",
        last_name="Moreau",
        birth_date=date(1983, 7, 22),
        sex=2,
        role=SPOUSE,
        nir=fr.make_nir(2, 1983, 7, "2B", "033", 112),
        email="claire.moreau@example.org",
        phone=DEMO_PHONE,
        marital_status="married",
        occupation="Infirmière",
        employer_name="Clinique des Cèdres",
        created_at=created,
        visitor_id="0e4a7c1f-9b3d-4e8a-a2c6-7d1f3b5e9a0c",
        contact_id=ObjectId("502f1b3c9a8e7d6c5b4a3f2f"),
        candidate_id=None,
    )
    lea = Person(
        person_id=CHILD_PERSON_IDS[0],
        first_name="Léa",
        last_name="Moreau",
        birth_date=date(2009, 5, 3),
        sex=2,
        role=CHILD,
        nir=fr.make_nir(2, 2009, 5, "69", "383", 215),
        email=None,
        phone=DEMO_PHONE,
        marital_status="single",
        occupation="Élève",
        employer_name="",
        created_at=datetime(2012, 8, 20, 9, 31, tzinfo=UTC),
        visitor_id=None,
        contact_id=None,
        candidate_id=None,
    )
    hugo = Person(
        person_id=CHILD_PERSON_IDS[1],
        first_name="Hugo",
        last_name="Moreau",
        birth_date=date(2014, 11, 19),
        sex=1,
        role=CHILD,
        nir=None,
        email=None,
        phone=DEMO_PHONE,
        marital_status="single",
        occupation="Élève",
        employer_name="",
        created_at=datetime(2014, 12, 2, 14, 5, tzinfo=UTC),
        visitor_id=None,
        contact_id=None,
        candidate_id=None,
    )
    family = Policy(
        policy_number=FAMILY_POLICY,
        product_code="SANTE_FAMILLE",
        status="active",
        start_date=date(2017, 1, 1),
        end_date=None,
        subscriber_id=julien.person_id,
        expatriation_country=None,
        premium_cents=15_840,
        members=(
            (julien.person_id, SUBSCRIBER),
            (claire.person_id, SPOUSE),
            (lea.person_id, CHILD),
            (hugo.person_id, CHILD),
        ),
        card_last4=None,
    )
    expat = Policy(
        policy_number=EXPAT_POLICY,
        product_code="EXPAT_SANTE",
        status="terminated",
        start_date=date(2012, 9, 1),
        end_date=date(2015, 6, 30),
        subscriber_id=julien.person_id,
        expatriation_country="CA",
        premium_cents=31_200,
        members=((julien.person_id, SUBSCRIBER), (claire.person_id, SPOUSE), (lea.person_id, CHILD)),
        card_last4="4821",
    )
    return Household(
        index=0,
        members=(julien, claire, lea, hugo),
        address_line="14 rue Paul Bert",
        postal_code="69003",
        city="Lyon",
        country="FR",
        phone=DEMO_PHONE,
        policies=(family, expat),
    )


def namesake_household() -> Household:
    """Household 1: the other Julien Moreau, who lives alone in Nantes."""
    created = datetime(2019, 2, 4, 16, 45, tzinfo=UTC)
    namesake = Person(
        person_id=NAMESAKE_PERSON_ID,
        first_name="Julien",
        last_name="Moreau",
        birth_date=date(1975, 9, 2),
        sex=1,
        role=SUBSCRIBER,
        nir=fr.make_nir(1, 1975, 9, "44", "109", 311),
        email=NAMESAKE_EMAIL,
        phone=NAMESAKE_PHONE,
        marital_status="single",
        occupation="Comptable",
        employer_name="Logistique Atlantique",
        created_at=created,
        visitor_id="41c7e9a3-5b2d-4f8e-9a0c-6d3f1b7e5a29",
        contact_id=ObjectId("5c5860ec1a2b3c4d5e6f7a8b"),
        candidate_id=None,
    )
    policy = Policy(
        policy_number=NAMESAKE_POLICY,
        product_code="SANTE_INDIVIDUELLE",
        status="active",
        start_date=date(2019, 3, 1),
        end_date=None,
        subscriber_id=namesake.person_id,
        expatriation_country=None,
        premium_cents=6_130,
        members=((namesake.person_id, SUBSCRIBER),),
        card_last4=None,
    )
    return Household(
        index=1,
        members=(namesake,),
        address_line="3 quai de la Loire",
        postal_code="44000",
        city="Nantes",
        country="FR",
        phone=NAMESAKE_PHONE,
        policies=(policy,),
    )
