"""A reproducible French population spread over the five source systems, and what is known about it.

`generate(seed, sizes)` builds a `Population`: a small skeleton of households held in memory, from
which each system's rows are drawn lazily (`population.rows("analytics")` is a generator: 200,000
page views never sit in memory at once). The same seed and sizes give the same rows, byte for byte,
on every run and machine.

Every population holds the same cast (see `_demo`): the demo subject Julien Moreau, present in all
five systems, his wife and children who share his policy number, address and phone, a namesake, a
former candidate known only to recruitment and an anonymous visitor known only by a cookie; then
`sizes.households` background households of the same shapes.

Identifiers are stored the way the source systems keep them: e-mails lower-case, phones in E.164
(`+33…`), NIRs as 15 characters without spaces, `person_id` as a uuid in PostgreSQL and its string
form in MongoDB. Times are aware UTC datetimes with whole seconds (MongoDB gives them back naive,
in UTC, unless the client is `tz_aware`). The population's "now" is `as_of`, not the clock.

`population.demo` gives the demo subject's identifiers and, in `expected_counts[system][table]`, how
many rows concern him. A row concerns him when it names him directly:
- policy: his `insured_person` row; the policies he subscribed (`policy.subscriber_id`); his
  `policy_member`, `bank_account`, `aml_screening` and `file_access_log` rows; the
  `premium_payment` and `dunning_event` rows of the policies he subscribed;
- claims: claims he received care for or submitted (`patient_person_id` or
  `submitted_by_person_id`), their documents, and the fraud alerts that name him (`person_id`);
- crm: his contact and its interactions, complaints and quotes;
- recruitment: his candidate file;
- analytics: visits and consents with his cookie (`visitor_id`) or his `user_id`.
What an export may show of those rows (no AML, no other person's health data, no accessor id) is
for the service to decide; `population.subject_rows(system)` yields those exact rows for comparison.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from types import MappingProxyType

from . import _analytics, _claims, _crm, _policy, _recruitment
from . import _demo as cast
from ._people import (
    Context,
    Household,
    Person,
    Registry,
    Rows,
    Sequences,
    World,
    build_background,
    build_outsider,
    new_uuid,
)
from ._sizes import PopulationSizes
from .schemas import SYSTEMS, table_names

DEFAULT_AS_OF = datetime(2025, 10, 1, 9, 0, tzinfo=UTC)
"""The population's "now": nothing happens after it, so the data does not depend on the clock."""

Counts = Mapping[str, Mapping[str, int]]
"""Row counts by system, then by table or collection."""


@dataclass(frozen=True)
class PersonFacts:
    """Who someone is, in the forms a request would name them."""

    person_id: str
    first_name: str
    last_name: str
    birth_date: date
    nir: str | None
    email: str | None
    phone: str | None


@dataclass(frozen=True)
class DemoSubject:
    """The demo subject's identifiers and what the systems hold about him (see the module docstring)."""

    person_id: str
    first_name: str
    last_name: str
    birth_date: date
    nir: str
    email: str
    phone: str  # the household's: his wife and children have the same
    address_line: str
    postal_code: str
    city: str
    country: str
    policy_number: str  # the family policy, shared with his wife and children
    policy_numbers: tuple[str, ...]  # every policy he subscribed, the family one first
    visitor_id: str
    contact_id: str  # his CRM contact's `_id`, as a string
    candidate_id: str  # his recruitment file's `_id`, as a string
    spouse_person_id: str
    children_person_ids: tuple[str, ...]
    expected_counts: Counts
    claims_for_self: int  # care he received and submitted
    claims_for_relatives: int  # care his wife or children received, which he submitted
    claims_by_relatives: int  # care he received, which his wife submitted
    visits_logged_in: int
    visits_anonymous: int
    page_views: int  # over all his visits
    aml_analyst_notes: tuple[str, ...]  # texts that must never reach an archive
    accessor_ids: tuple[str, ...]  # employees who consulted his file: never disclosed


@dataclass(frozen=True)
class CandidateFacts:
    """The former candidate, known only to recruitment."""

    candidate_id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    expected_counts: Counts


@dataclass(frozen=True)
class VisitorFacts:
    """The anonymous visitor, known only to analytics by a cookie."""

    visitor_id: str
    expected_counts: Counts


class Population:
    """A generated population: its rows, system by system, and the facts tests compare against."""

    def __init__(self, seed: int, sizes: PopulationSizes, as_of: datetime, world: World) -> None:
        self.seed, self.sizes, self.as_of = seed, sizes, as_of
        self._ctx = Context(seed=seed, sizes=sizes, as_of=as_of)
        self._world = world
        demo_household, namesake_household = world.households[0], world.households[1]
        family = demo_household.members
        self.spouse = _person_facts(family[1])
        self.children = tuple(_person_facts(child) for child in family[2:])
        self.namesake = _person_facts(namesake_household.subscriber)
        self.demo = self._demo_facts(demo_household)
        former = world.lone_candidates[0]
        self.former_candidate = CandidateFacts(
            candidate_id=str(former.object_id),
            first_name=former.first_name,
            last_name=former.last_name,
            email=former.email,
            phone=former.phone,
            expected_counts=_count({"recruitment": _recruitment.outsider_rows(former, self._ctx, 0)}),
        )
        anonymous = world.anonymous_visitors[0]
        self.anonymous_visitor = VisitorFacts(
            visitor_id=anonymous,
            expected_counts=_count({"analytics": _analytics.anonymous_rows(anonymous, self._ctx, 0)}),
        )

    def __repr__(self) -> str:
        return f"Population(seed={self.seed}, sizes={self.sizes})"

    def rows(self, system: str) -> Rows:
        """Every row of `system` as (table or collection, row) pairs, parents before their children.

        A fresh generator on each call, always yielding the same rows in the same order.
        """
        _check_system(system)
        seq = Sequences()
        for household in self._world.households:
            yield from _household_rows(system, household, self._ctx, seq)
        if system == "crm":
            for index, prospect in enumerate(self._world.prospects):
                yield from _crm.prospect_rows(prospect, self._ctx, index)
        elif system == "recruitment":
            for index, candidate in enumerate(self._world.lone_candidates):
                yield from _recruitment.outsider_rows(candidate, self._ctx, index)
        elif system == "analytics":
            for index, visitor_id in enumerate(self._world.anonymous_visitors):
                yield from _analytics.anonymous_rows(visitor_id, self._ctx, index)

    def subject_rows(self, system: str) -> Rows:
        """The rows of `system` that concern the demo subject (see the module docstring), exactly as
        `rows(system)` yields them."""
        _check_system(system)
        # The demo household comes first in `rows`, so fresh sequences give the same keys.
        stream = _household_rows(system, self._world.households[0], self._ctx, Sequences())
        return _concerning_demo(system, stream)

    def _demo_facts(self, household: Household) -> "DemoSubject":
        subject = household.subscriber
        person_id, spouse_id = str(subject.person_id), self.spouse.person_id
        counts: dict[str, dict[str, int]] = {}
        claims = {"self": 0, "for_relatives": 0, "by_relatives": 0}
        visits, pages = {"in": 0, "out": 0}, 0
        aml_notes: list[str] = []
        accessors: list[str] = []
        for system in SYSTEMS:
            per_table = counts.setdefault(system, dict.fromkeys(table_names(system), 0))
            for table, row in self.subject_rows(system):
                per_table[table] = per_table.get(table, 0) + 1
                if table == "claim":
                    patient, submitter = str(row["patient_person_id"]), str(row["submitted_by_person_id"])
                    kind = (
                        "self"
                        if patient == submitter
                        else "for_relatives"
                        if submitter == person_id
                        else ("by_relatives")
                    )
                    claims[kind] += 1
                elif table == "visits":
                    visits["in" if row["user_id"] else "out"] += 1
                    pages += len(row["pages"])
                elif table == "aml_screening":
                    aml_notes.append(row["analyst_note"])
                elif table == "file_access_log":
                    accessors.append(row["accessor_id"])
        assert subject.nir and subject.email and subject.phone and subject.visitor_id  # the cast's, by design
        assert subject.contact_id and subject.candidate_id
        return DemoSubject(
            person_id=person_id,
            first_name=subject.first_name,
            last_name=subject.last_name,
            birth_date=subject.birth_date,
            nir=subject.nir,
            email=subject.email,
            phone=subject.phone,
            address_line=household.address_line,
            postal_code=household.postal_code,
            city=household.city,
            country=household.country,
            policy_number=household.policies[0].policy_number,
            policy_numbers=tuple(p.policy_number for p in household.policies if p.subscriber_id == subject.person_id),
            visitor_id=subject.visitor_id,
            contact_id=str(subject.contact_id),
            candidate_id=str(subject.candidate_id),
            spouse_person_id=spouse_id,
            children_person_ids=tuple(child.person_id for child in self.children),
            expected_counts=_freeze(counts),
            claims_for_self=claims["self"],
            claims_for_relatives=claims["for_relatives"],
            claims_by_relatives=claims["by_relatives"],
            visits_logged_in=visits["in"],
            visits_anonymous=visits["out"],
            page_views=pages,
            aml_analyst_notes=tuple(aml_notes),
            accessor_ids=tuple(sorted(set(accessors))),
        )


def generate(seed: int = 0, sizes: PopulationSizes | None = None, *, as_of: datetime = DEFAULT_AS_OF) -> Population:
    """Build the population for `seed`. Only the skeleton (households, a few records each) is made now;
    the demo subject's rows are drawn once to count them."""
    sizes = sizes or PopulationSizes()
    ctx = Context(seed=seed, sizes=sizes, as_of=as_of)
    rng = ctx.rng("people")
    registry = Registry(rng)
    registry.reserve(phones=cast.RESERVED_PHONES, emails=cast.RESERVED_EMAILS, policy_numbers=cast.RESERVED_POLICIES)
    demo, namesake = cast.demo_household(), cast.namesake_household()
    households = [demo, namesake]
    while len(households) < sizes.households + 2:
        household = build_background(rng, len(households), registry, as_of)
        if not any(_same_identity(member, demo.subscriber) for member in household.members):
            households.append(household)
    world = World(
        households=tuple(households),
        lone_candidates=(
            cast.FORMER_CANDIDATE,
            *(build_outsider(rng, registry, as_of) for _ in range(sizes.lone_candidates - 1)),
        ),
        prospects=tuple(build_outsider(rng, registry, as_of) for _ in range(sizes.prospects)),
        anonymous_visitors=(
            cast.ANONYMOUS_VISITOR_ID,
            *(str(new_uuid(rng)) for _ in range(sizes.anonymous_visitors - 1)),
        ),
    )
    return Population(seed, sizes, as_of, world)


def _household_rows(system: str, household: Household, ctx: Context, seq: Sequences) -> Rows:
    if system == "policy":
        return _policy.household_rows(household, ctx, seq)
    if system == "claims":
        return _claims.household_rows(household, ctx, seq)
    if system == "crm":
        return _crm.household_rows(household, ctx)
    if system == "recruitment":
        return _recruitment.household_rows(household, ctx)
    return _analytics.household_rows(household, ctx)


def _concerning_demo(system: str, stream: Rows) -> Rows:
    subject_id = cast.DEMO_PERSON_ID
    own_policies = {cast.FAMILY_POLICY, cast.EXPAT_POLICY}
    claim_ids: set[str] = set()
    for table, row in stream:
        if system == "policy":
            if table in ("premium_payment", "dunning_event"):
                keep = row["policy_number"] in own_policies
            else:
                keep = row.get("person_id", row.get("subscriber_id")) == subject_id
        elif system == "claims":
            if table == "claim":
                keep = subject_id in (row["patient_person_id"], row["submitted_by_person_id"])
                if keep:
                    claim_ids.add(row["claim_id"])
            else:
                keep = row["claim_id"] in claim_ids if table == "claim_document" else row["person_id"] == subject_id
        elif system == "crm":
            keep = row.get("contact_id", row["_id"]) == cast.DEMO_CONTACT_ID
        elif system == "recruitment":
            keep = row["_id"] == cast.DEMO_CANDIDATE_ID
        else:
            keep = row["visitor_id"] == cast.DEMO_VISITOR_ID or row["user_id"] == str(subject_id)
        if keep:
            yield table, row


def _count(streams: Mapping[str, Rows]) -> Counts:
    counts: dict[str, dict[str, int]] = {}
    for system, stream in streams.items():
        per_table = counts.setdefault(system, dict.fromkeys(table_names(system), 0))
        for table, _ in stream:
            per_table[table] = per_table.get(table, 0) + 1
    return _freeze(counts)


def _freeze(counts: dict[str, dict[str, int]]) -> Counts:
    return MappingProxyType({system: MappingProxyType(dict(tables)) for system, tables in counts.items()})


def _person_facts(person: Person) -> PersonFacts:
    return PersonFacts(
        person_id=str(person.person_id),
        first_name=person.first_name,
        last_name=person.last_name,
        birth_date=person.birth_date,
        nir=person.nir,
        email=person.email,
        phone=person.phone,
    )


def _same_identity(a: Person, b: Person) -> bool:
    return (a.first_name, a.last_name, a.birth_date) == (b.first_name, b.last_name, b.birth_date)


def _check_system(system: str) -> None:
    if system not in SYSTEMS:
        raise ValueError(f"unknown system {system!r}; expected one of {', '.join(SYSTEMS)}")


__all__ = [
    "DEFAULT_AS_OF",
    "CandidateFacts",
    "DemoSubject",
    "PersonFacts",
    "Population",
    "PopulationSizes",
    "VisitorFacts",
    "generate",
]
