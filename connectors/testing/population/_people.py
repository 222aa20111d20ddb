"""The people of the population, before any system holds them: persons, households, policies.

This skeleton is small (a few records per household) and built eagerly. The five systems' rows are
drawn from it lazily, one household at a time, by the `_policy`, `_claims`, `_crm`, `_recruitment`
and `_analytics` modules. Household 0 is always the demo subject's, household 1 the namesake's.
"""

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bson import ObjectId

from . import _french as fr
from ._sizes import PopulationSizes

Row = dict[str, Any]
"""A PostgreSQL row (columns in table order) or a MongoDB document, keyed by column or field name."""

Rows = Iterator[tuple[str, Row]]
"""A stream of (table or collection, row) pairs, parents before their children."""

SUBSCRIBER, SPOUSE, CHILD, BENEFICIARY = "subscriber", "spouse", "child", "beneficiary"


@dataclass(frozen=True)
class Person:
    """Someone the insurer knows, with the keys each system may know them by."""

    person_id: uuid.UUID
    first_name: str
    last_name: str
    birth_date: date
    sex: int  # 1 or 2, as in the NIR
    role: str  # in the household's main policy
    nir: str | None
    email: str | None
    phone: str | None
    marital_status: str
    occupation: str
    employer_name: str
    created_at: datetime
    visitor_id: str | None  # the analytics cookie of their browser, if they visit the site
    contact_id: ObjectId | None  # their CRM contact, if any
    candidate_id: ObjectId | None  # their recruitment file, if they once applied


@dataclass(frozen=True)
class Policy:
    """A contract and the people it covers (`members`: person id and role)."""

    policy_number: str
    product_code: str
    status: str
    start_date: date
    end_date: date | None
    subscriber_id: uuid.UUID
    expatriation_country: str | None
    premium_cents: int
    members: tuple[tuple[uuid.UUID, str], ...]
    card_last4: str | None  # premiums paid by card; None means direct debit


@dataclass(frozen=True)
class Household:
    """People who share an address, a phone and (usually) a policy number."""

    index: int
    members: tuple[Person, ...]  # the subscriber first
    address_line: str
    postal_code: str
    city: str
    country: str
    phone: str
    policies: tuple[Policy, ...]

    @property
    def subscriber(self) -> Person:
        return self.members[0]

    @property
    def is_demo(self) -> bool:
        """Household 0 is the demo subject's: it gets the demo volumes and one of every kind of event."""
        return self.index == 0


@dataclass(frozen=True)
class Outsider:
    """Someone known to a single system: a former candidate (recruitment) or a prospect (crm)."""

    object_id: ObjectId  # their candidate or contact `_id`
    first_name: str
    last_name: str
    email: str
    phone: str
    created_at: datetime


@dataclass(frozen=True)
class World:
    """The whole skeleton: households (demo first, namesake second), lone candidates, anonymous cookies."""

    households: tuple[Household, ...]
    lone_candidates: tuple[Outsider, ...]  # the former candidate first
    prospects: tuple[Outsider, ...]
    anonymous_visitors: tuple[str, ...]  # the designated anonymous visitor first


@dataclass(frozen=True)
class Context:
    """What every system's rows are drawn with: the seed, the sizes and the population's "now"."""

    seed: int
    sizes: PopulationSizes
    as_of: datetime

    def rng(self, *labels: object) -> random.Random:
        """An independent, reproducible random stream named by `labels` (e.g. "claims", household index)."""
        return random.Random("/".join(map(str, (self.seed, *labels))))


class Sequences:
    """Counters for generated primary keys, one per table, from 1. A system's stream makes a fresh set and
    walks the households in order, demo first, so the demo subject's keys are the same when his rows are
    drawn alone."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def next(self, table: str) -> int:
        value = self._last.get(table, 0) + 1
        self._last[table] = value
        return value


def new_uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def new_object_id(rng: random.Random, at: datetime) -> ObjectId:
    """An ObjectId whose timestamp is `at`, the rest drawn from `rng` (so the same seed gives the same id)."""
    return ObjectId(int(at.timestamp()).to_bytes(4, "big") + rng.randbytes(8))


def random_instant(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """A second between `start` and `end`."""
    return start + timedelta(seconds=rng.randrange(max(1, int((end - start).total_seconds()))))


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


class Registry:
    """Hands out unique phones, e-mails and policy numbers, so no two people share one by accident."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._phones = fr.fiction_phones()
        rng.shuffle(self._phones)
        self._emails: set[str] = set()
        self._policy_numbers: set[str] = set()

    def reserve(
        self, *, phones: tuple[str, ...] = (), emails: tuple[str, ...] = (), policy_numbers: tuple[str, ...] = ()
    ) -> None:
        taken = set(phones)
        self._phones = [p for p in self._phones if p not in taken]
        self._emails.update(emails)
        self._policy_numbers.update(policy_numbers)

    def phone(self) -> str:
        if not self._phones:
            raise ValueError("the population is larger than the fictional phone ranges allow")
        return self._phones.pop()

    def email(self, first_name: str, last_name: str, birth_year: int) -> str:
        while True:
            candidate = fr.email_for(self._rng, first_name, last_name, birth_year)
            if candidate in self._emails:
                local, _, domain = candidate.partition("@")
                candidate = f"{local}{self._rng.randint(2, 999)}@{domain}"
            if candidate not in self._emails:
                self._emails.add(candidate)
                return candidate

    def policy_number(self, product_code: str, start: date) -> str:
        prefix = {"SANTE_FAMILLE": "SF", "SANTE_INDIVIDUELLE": "SI", "PREVOYANCE_DECES": "PV", "EXPAT_SANTE": "EX"}[
            product_code
        ]
        while True:
            number = f"{prefix}-{start.year}-{self._rng.randrange(10**6):06d}"
            if number not in self._policy_numbers:
                self._policy_numbers.add(number)
                return number


def _premium(rng: random.Random, product_code: str, members: int) -> int:
    base = {"SANTE_FAMILLE": 4_200, "SANTE_INDIVIDUELLE": 5_500, "PREVOYANCE_DECES": 1_900, "EXPAT_SANTE": 14_000}[
        product_code
    ]
    return base * max(1, members) + rng.randrange(0, 2_000, 10)


def _birth_date(rng: random.Random, first_year: int, last_year: int) -> date:
    start = date(first_year, 1, 1)
    return start + timedelta(days=rng.randrange((date(last_year, 12, 31) - start).days + 1))


def build_background(rng: random.Random, index: int, registry: Registry, as_of: datetime) -> Household:
    """A random household: a single person, a couple, or a family with one to three children."""
    shape = rng.random()
    abroad = rng.random() < 0.05
    last_name = rng.choice(fr.LAST_NAMES)
    sub_sex = rng.choice((1, 2))
    sub_birth = _birth_date(rng, 1950, 2000)
    phone = registry.phone()
    created = random_instant(rng, datetime(2008, 1, 1, tzinfo=UTC), as_of - timedelta(days=400))
    married = shape >= 0.3

    def adult(sex: int, birth: date, surname: str, role: str) -> Person:
        first = rng.choice(fr.MALE_FIRST_NAMES if sex == 1 else fr.FEMALE_FIRST_NAMES)
        has_email = rng.random() < 0.9
        return Person(
            person_id=new_uuid(rng),
            first_name=first,
            last_name=surname,
            birth_date=birth,
            sex=sex,
            role=role,
            nir=fr.random_nir(rng, sex, birth.year, birth.month) if rng.random() < 0.95 else None,
            email=registry.email(first, surname, birth.year) if has_email else None,
            phone=phone,
            marital_status="married" if married else rng.choice(("single", "divorced", "widowed")),
            occupation=rng.choice(fr.OCCUPATIONS),
            employer_name=rng.choice(fr.EMPLOYERS),
            created_at=created,
            visitor_id=str(new_uuid(rng)) if has_email and rng.random() < 0.7 else None,
            contact_id=new_object_id(rng, created) if rng.random() < 0.8 else None,
            candidate_id=new_object_id(rng, created) if rng.random() < 0.03 else None,
        )

    members = [adult(sub_sex, sub_birth, last_name, SUBSCRIBER)]
    if married:
        spouse_birth = sub_birth + timedelta(days=rng.randint(-6 * 365, 6 * 365))
        surname = last_name if rng.random() < 0.7 else rng.choice(fr.LAST_NAMES)
        members.append(adult(3 - sub_sex, spouse_birth, surname, SPOUSE))
    if shape >= 0.55:
        for _ in range(rng.randint(1, 3)):
            birth = _birth_date(rng, min(sub_birth.year + 22, as_of.year - 1), min(sub_birth.year + 42, as_of.year - 1))
            sex = rng.choice((1, 2))
            members.append(
                Person(
                    person_id=new_uuid(rng),
                    first_name=rng.choice(fr.MALE_FIRST_NAMES if sex == 1 else fr.FEMALE_FIRST_NAMES),
                    last_name=last_name,
                    birth_date=birth,
                    sex=sex,
                    role=CHILD,
                    nir=fr.random_nir(rng, sex, birth.year, birth.month) if rng.random() < 0.5 else None,
                    email=None,
                    phone=phone,
                    marital_status="single",
                    occupation="Élève",
                    employer_name="",
                    created_at=created,
                    visitor_id=None,
                    contact_id=None,
                    candidate_id=None,
                )
            )

    start = (created + timedelta(days=rng.randint(0, 60))).date()
    product = "SANTE_FAMILLE" if len(members) > 1 else "SANTE_INDIVIDUELLE"
    ended = rng.random() < 0.12
    expatriation = rng.choice(fr.EXPATRIATION_COUNTRIES) if abroad else None
    if abroad:
        product = "EXPAT_SANTE"
    end = (start + timedelta(days=rng.randint(400, 3000))) if ended else None
    if end is not None and end >= as_of.date():
        end = None
    subscriber = members[0]
    policies = [
        Policy(
            policy_number=registry.policy_number(product, start),
            product_code=product,
            status="terminated" if end else rng.choices(("active", "suspended"), (0.97, 0.03))[0],
            start_date=start,
            end_date=end,
            subscriber_id=subscriber.person_id,
            expatriation_country=expatriation,
            premium_cents=_premium(rng, product, len(members)),
            members=tuple((m.person_id, m.role) for m in members),
            card_last4=f"{rng.randrange(10_000):04d}" if rng.random() < 0.2 else None,
        )
    ]
    if married and rng.random() < 0.25:
        pv_start = start + timedelta(days=rng.randint(30, 700))
        if pv_start < as_of.date():
            policies.append(
                Policy(
                    policy_number=registry.policy_number("PREVOYANCE_DECES", pv_start),
                    product_code="PREVOYANCE_DECES",
                    status="active",
                    start_date=pv_start,
                    end_date=None,
                    subscriber_id=subscriber.person_id,
                    expatriation_country=None,
                    premium_cents=_premium(rng, "PREVOYANCE_DECES", 1),
                    members=((subscriber.person_id, SUBSCRIBER), (members[1].person_id, BENEFICIARY)),
                    card_last4=None,
                )
            )
    if abroad:
        country, city, postal_code = rng.choice(fr.ABROAD)
        address = f"{rng.randint(1, 400)} {rng.choice(('Main Street', 'Avenue Cheikh Anta Diop', 'Rue Sherbrooke'))}"
    else:
        place = rng.choice(fr.PLACES)
        country, city, postal_code = "FR", place.city, place.postal_code
        address = f"{rng.randint(1, 120)} {rng.choice(fr.STREETS)}"
    return Household(
        index=index,
        members=tuple(members),
        address_line=address,
        postal_code=postal_code,
        city=city,
        country=country,
        phone=phone,
        policies=tuple(policies),
    )


def build_outsider(rng: random.Random, registry: Registry, as_of: datetime) -> Outsider:
    sex = rng.choice((1, 2))
    first = rng.choice(fr.MALE_FIRST_NAMES if sex == 1 else fr.FEMALE_FIRST_NAMES)
    last = rng.choice(fr.LAST_NAMES)
    created = random_instant(rng, datetime(2015, 1, 1, tzinfo=UTC), as_of - timedelta(days=30))
    return Outsider(
        object_id=new_object_id(rng, created),
        first_name=first,
        last_name=last,
        email=registry.email(first, last, rng.randint(1965, 2003)),
        phone=registry.phone(),
        created_at=created,
    )
