"""The identifiers a subject can be named by (world.md §2), shared by connectors and the service."""

from dataclasses import dataclass
from enum import Enum


class Ident(Enum):
    """A kind of identifier. The value is its name on the bus (dsar.bus.v1.IdentifierKind)."""

    EMAIL = "email"
    PHONE = "phone"
    NIR = "nir"
    PERSON_ID = "person_id"
    POLICY_NUMBER = "policy_number"
    VISITOR_ID = "visitor_id"
    CANDIDATE_ID = "candidate_id"
    FULL_NAME = "full_name"
    BIRTH_DATE = "birth_date"

    @property
    def strong(self) -> bool:
        """Whether the identifier designates one person on its own."""
        return self in STRONG

    @property
    def weak(self) -> bool:
        """Whether the identifier counts only together with a strong one or with the birth date."""
        return self in WEAK


STRONG = frozenset({Ident.NIR, Ident.PERSON_ID, Ident.EMAIL, Ident.VISITOR_ID, Ident.CANDIDATE_ID})
WEAK = frozenset({Ident.PHONE, Ident.POLICY_NUMBER, Ident.FULL_NAME})

# How FULL_NAME values join the last and the first name (a unit separator, never in a name).
NAME_SEPARATOR = "\x1f"


@dataclass(frozen=True, order=True)
class Identifier:
    """One normalised identifier, and where it came from ("request" or the system that found it)."""

    kind: Ident
    value: str
    source: str = "request"

    @classmethod
    def full_name(cls, last_name: str, first_name: str, source: str = "request") -> "Identifier":
        return cls(Ident.FULL_NAME, f"{last_name}{NAME_SEPARATOR}{first_name}", source)

    @property
    def name_parts(self) -> tuple[str, str]:
        """(last name, first name) of a FULL_NAME identifier."""
        last, _, first = self.value.partition(NAME_SEPARATOR)
        return last, first

    def masked(self) -> str:
        """A form safe for logs, manifests and errors: the kind and a hint, never the value."""
        return f"{self.kind.value}:{mask(self.value)}"


def mask(value: str) -> str:
    """Keep at most the first and last character of a value, and its length class."""
    if len(value) <= 4:
        return "*" * len(value)
    return f"{value[0]}{'*' * min(len(value) - 2, 8)}{value[-1]}"


def split_full_name(value: str) -> tuple[str, str]:
    """(last name, first name) of a FULL_NAME value."""
    last, _, first = value.partition(NAME_SEPARATOR)
    return last, first


def normalise_discovered(kind: Ident, value: object) -> str | None:
    """A found value in the form queries carry, or None when there is nothing to report.

    This is the light normalisation of values read from a store (which were checked when they
    were stored): surrounding spaces removed; e-mails and person ids lower-case; NIRs upper-case
    without spaces. Phones are reported as stored.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if kind in (Ident.EMAIL, Ident.PERSON_ID, Ident.CANDIDATE_ID):
        return text.casefold()
    if kind is Ident.NIR:
        return text.replace(" ", "").upper()
    return text
