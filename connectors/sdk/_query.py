"""What a search is asked: the right exercised and the subject's identifiers, already normalised."""

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from connectors.sdk.identifiers import Ident, Identifier


class RequestKind(Enum):
    """The right the subject exercises (GDPR art. 15 access, art. 20 portability)."""

    ACCESS = "access"
    PORTABILITY = "portability"


@dataclass(frozen=True)
class Query:
    """The request kind and the subject's identifiers, as a search receives them.

    The runtime gives a connector only the identifiers it accepts: strong kinds it lists, and
    weak ones only when the query also holds the rest of a combination it declares. So a search
    may use every value it is given. Values are normalised (world.md §2): e-mails case-folded,
    phones in E.164, NIRs upper-case without spaces, birth dates `YYYY-MM-DD`, full names as
    `"<last>\\x1f<first>"` (split them with `Identifier.name_parts` or `split_full_name`).

        for email in q.values(Ident.EMAIL):                       # one lookup per value
            ...
        for phone, birth in q.pairs(Ident.PHONE, Ident.BIRTH_DATE):  # weak + birth date together
            ...

    `memo` is shared by the searches of one attempt (the runtime builds one Query per attempt and
    hands it to each search): a search may keep there what the next ones would look up again,
    such as the subject's ids in the system. Name keys after the connector; a retry starts empty.

        ids = q.memo.get("policy.subject_ids")
    """

    kind: RequestKind
    identifiers: tuple[Identifier, ...]
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def of(cls, kind: RequestKind, identifiers: Iterable[Identifier]) -> "Query":
        """A query holding each identifier once, in a stable order."""
        return cls(kind, tuple(sorted(set(identifiers), key=lambda i: (i.kind.value, i.value, i.source))))

    @property
    def portability(self) -> bool:
        """Whether the request is for portability (derived data is then left out by the runtime)."""
        return self.kind is RequestKind.PORTABILITY

    def values(self, kind: Ident) -> list[str]:
        """The values of one kind of identifier, each once, sorted."""
        return sorted({i.value for i in self.identifiers if i.kind is kind})

    def has(self, kind: Ident) -> bool:
        """Whether the query holds at least one identifier of `kind`."""
        return any(i.kind is kind for i in self.identifiers)

    def pairs(self, first: Ident, second: Ident) -> list[tuple[str, str]]:
        """Every (first, second) pair of values, for a search on both at once.

        This is how weak identifiers are used: a phone counts only together with a birth date
        (or a strong identifier), and then only for records that match both.
        """
        return list(itertools.product(self.values(first), self.values(second)))

    def restricted_to(self, accepts: Iterable[frozenset[Ident]]) -> "Query":
        """The query with only the identifiers a connector accepting `accepts` may be given.

        `accepts` holds one set per declaration: `{EMAIL}`, or `{PHONE, BIRTH_DATE}`. An
        identifier is kept when a set containing its kind is wholly present in the query.
        """
        present = {i.kind for i in self.identifiers}
        allowed: set[Ident] = set()
        for combination in accepts:
            if combination <= present:
                allowed |= combination
        return Query(self.kind, tuple(i for i in self.identifiers if i.kind in allowed))

    def masked(self) -> str:
        """A description safe for logs: the kinds and hints, never the values."""
        return ", ".join(i.masked() for i in self.identifiers)
