"""Subjects other than the demo subject, and the exact rows each must find in his archive.

tests.support.archive.compare reads the expected rows from `population.subject_rows(system)`,
which are the demo subject's. `Subject` is the population seen from one background subscriber:
the same rules that pick the demo subject's rows (generator._concerning_demo, the module
docstring of connectors.testing.population.generator) applied to his own keys:

- policy: his insured_person, policy_member, bank_account, aml_screening and file_access_log rows,
  the policies he subscribed, and their premium payments and dunning events;
- claims: the claims he received care for or submitted, their documents, the fraud alerts naming him;
- crm: his contact and its interactions, complaints and quotes;
- recruitment: his candidate file;
- analytics: visits and consents with his cookie or his user id.

Two kinds of subscriber are left out, whose analytics rows no search can reach as the population
counts them: one who never logged in (nothing ties his cookie to him), and one with an anonymous
row of a dataset whose cookie shows only on the logged-in rows of the other dataset (the
analytics connector follows a cookie within the collection it was seen in: visits and consents
are searched separately). Nested dates (a consent's `updated_at`, a page's `at`) are given as the
archive's JSON shows them, in ISO 8601, as compare does for top-level ones; a candidate file's
`_id` is given as `candidate_id` too, the key recruitment exports it under.

    subjects = background_subjects(population, 20)
    compare(archive, subjects[0], "claims")
"""

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from bson import ObjectId

from connectors.testing.population import Population
from connectors.testing.population.schemas import SYSTEMS

Row = tuple[str, dict[str, Any]]


class Subject(Population):
    """A background subscriber as the subject of a request: his identifiers and the rows about him."""

    def __init__(self, population: Population, index: int, rows: dict[str, list[Row]], facts: dict[str, str]) -> None:
        vars(self).update(vars(population))  # the same generated world; nothing is drawn again
        self.index = index
        self.person_id = facts["person_id"]
        self.email = facts["email"]
        self.nir = facts["nir"]
        self._rows = rows

    def subject_rows(self, system: str) -> Iterator[Row]:
        """The rows of `system` that concern this subject, as `rows(system)` yields them."""
        yield from self._rows.get(system, [])

    def __repr__(self) -> str:
        return f"Subject(household {self.index})"


def background_subjects(population: Population, count: int) -> list[Subject]:
    """The subscribers of the first `count` background households that suit (see the module docstring).

    Every system's rows are drawn once and sorted out between the candidates: subscribers with an
    e-mail and a NIR.
    """
    world = population._world
    chosen = [h for h in world.households[2:] if h.subscriber.email and h.subscriber.nir]
    people = [h.subscriber for h in chosen]
    by_person = {p.person_id: n for n, p in enumerate(people)}
    by_policy = {
        policy.policy_number: by_person[policy.subscriber_id]
        for household in chosen
        for policy in household.policies
        if policy.subscriber_id in by_person
    }
    by_contact = {p.contact_id: n for n, p in enumerate(people) if p.contact_id is not None}
    by_candidate = {p.candidate_id: n for n, p in enumerate(people) if p.candidate_id is not None}
    by_visitor = {p.visitor_id: n for n, p in enumerate(people) if p.visitor_id is not None}
    by_user = {str(p.person_id): n for n, p in enumerate(people)}
    rows: list[dict[str, list[Row]]] = [{} for _ in people]
    for system in SYSTEMS:
        claim_owners: dict[Any, set[int]] = {}
        for table, row in population.rows(system):
            for n in _concerned(system, table, row, by_person, by_policy, by_contact, by_candidate,
                                by_visitor, by_user, claim_owners):  # fmt: skip
                rows[n].setdefault(system, []).append((table, row))
    subjects = [
        Subject(
            population,
            household.index,
            {system: [(table, _as_exported(table, row)) for table, row in found] for system, found in rows[n].items()},
            {"person_id": str(p.person_id), "email": str(p.email), "nir": str(p.nir)},
        )
        for n, (household, p) in enumerate(zip(chosen, people, strict=True))
        if _reachable(rows[n].get("analytics", []))
    ]
    if len(subjects) < count:
        raise ValueError(f"the population has {len(subjects)} suitable background subscribers, not {count}")
    return subjects[:count]


def _reachable(analytics: list[Row]) -> bool:
    """Whether each anonymous row's cookie shows on a logged-in row of the same collection."""
    logged_in = {(table, row["visitor_id"]) for table, row in analytics if row["user_id"] is not None}
    return all((table, row["visitor_id"]) in logged_in for table, row in analytics if row["user_id"] is None)


def _as_exported(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """The row with the dates inside its dicts and lists in ISO 8601, as the archive's JSON has them,
    and a candidate file's `_id` under the name recruitment exports it by (`candidate_id`)."""
    plain = {name: _iso(value) if isinstance(value, dict | list) else value for name, value in row.items()}
    if table == "candidates":
        plain["candidate_id"] = str(row["_id"])
    return plain


def _iso(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _iso(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_iso(item) for item in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _concerned(
    system: str,
    table: str,
    row: dict[str, Any],
    by_person: dict[Any, int],
    by_policy: dict[str, int],
    by_contact: dict[ObjectId, int],
    by_candidate: dict[ObjectId, int],
    by_visitor: dict[str, int],
    by_user: dict[str, int],
    claim_owners: dict[Any, set[int]],
) -> set[int]:
    """Which of the chosen subjects a row concerns (none, one, or two for a claim one submitted for the other)."""
    if system == "policy":
        if table in ("premium_payment", "dunning_event"):
            return _one(by_policy.get(row["policy_number"]))
        return _one(by_person.get(row.get("person_id", row.get("subscriber_id"))))
    if system == "claims":
        if table == "claim":
            owners = {by_person[p] for p in (row["patient_person_id"], row["submitted_by_person_id"]) if p in by_person}
            if owners:
                claim_owners[row["claim_id"]] = owners
            return owners
        if table == "claim_document":
            return claim_owners.get(row["claim_id"], set())
        return _one(by_person.get(row["person_id"]))
    if system == "crm":
        return _one(by_contact.get(row.get("contact_id", row["_id"])))
    if system == "recruitment":
        return _one(by_candidate.get(row["_id"]))
    return {n for n in (by_visitor.get(row["visitor_id"]), by_user.get(str(row["user_id"]))) if n is not None}


def _one(n: int | None) -> set[int]:
    return set() if n is None else {n}
