"""What the engineer tells the kit about their data: subjects to find, identifiers that find nothing, the store."""

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from connectors.sdk import Ident, Identifier, Query, RequestKind

IdentifierValues = Mapping[Ident, str | Sequence[str]]
"""Identifiers by kind, one value or several, normalised as queries carry them (see `connectors.sdk.Query`)."""

Expected = Mapping[str, int | Collection[str]]
"""For each dataset, the keys of the records that must come back, or just how many. A dataset left out
must return no record. Redaction notes (`_redactions`) are compared only when listed."""


def _identifiers(values: IdentifierValues) -> tuple[Identifier, ...]:
    found: list[Identifier] = []
    for kind, value in values.items():
        for one in (value,) if isinstance(value, str) else value:
            found.append(Identifier(kind, one))
    return tuple(set(found))  # Query.of orders them


@dataclass(frozen=True)
class SubjectCase:
    """A seeded subject: everything a request could name them by, and the records they must get.

        SubjectCase(
            "demo subject",
            {Ident.EMAIL: "julien.moreau81@example.com", Ident.PHONE: "+33639981402",
             Ident.BIRTH_DATE: "1981-03-14"},
            records={"insured_person": ["3f6c2a9e-…"], "premium_payment": 52},
        )

    Give every identifier the subject is known by: the kit tries each combination the connector
    accepts on its own (each strong identifier alone; each weak one with the birth date) and
    expects exactly `records` every time. The label names the case in failures; keep personal
    data out of it.
    """

    label: str
    identifiers: IdentifierValues
    records: Expected = field(default_factory=dict)

    def query(self, kinds: Collection[Ident] | None = None, kind: RequestKind = RequestKind.ACCESS) -> Query:
        """A query with the case's identifiers of `kinds` (all of them when None)."""
        chosen = {k: v for k, v in self.identifiers.items() if kinds is None or k in kinds}
        return Query.of(kind, _identifiers(chosen))

    @property
    def kinds(self) -> frozenset[Ident]:
        """The kinds of identifier the case holds."""
        return frozenset(k for k, v in self.identifiers.items() if v)


@dataclass(frozen=True)
class NegativeCase:
    """Identifiers that must find nothing at all: a weak identifier alone, an unknown e-mail…

        NegativeCase("shared household phone", {Ident.PHONE: "+33639981402"})
        NegativeCase("namesake", {Ident.FULL_NAME: "Moreau\\x1fJulien"})

    The kit gives them to every search as they are, without the runtime's filtering of weak
    identifiers, so a search that would act on a phone alone is caught even though the runtime
    would never hand it one.
    """

    label: str
    identifiers: IdentifierValues

    def query(self) -> Query:
        """The query holding the case's identifiers (an access request)."""
        return Query.of(RequestKind.ACCESS, _identifiers(self.identifiers))


@dataclass(frozen=True)
class SeededStore:
    """A database of the kit's making, seeded by the suite's `seed` hook, dropped after the suite.

    `url` is the server (`postgresql://postgres@127.0.0.1:5432`, `mongodb://127.0.0.1:27017/`),
    `database` the unique name the kit chose. Connect to it with `asyncpg.connect(store.dsn)`, or
    `pymongo.AsyncMongoClient(store.url)[store.database]`.
    """

    kind: Literal["postgresql", "mongodb"]
    url: str
    database: str

    @property
    def dsn(self) -> str:
        """For PostgreSQL, the DSN of the database itself; for MongoDB, the server URL."""
        if self.kind == "postgresql":
            return f"{self.url.rstrip('/')}/{self.database}"
        return self.url
