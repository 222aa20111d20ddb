"""The register of processing activities (GDPR art. 30), as the archive tells it to the subject.

`register.json` beside this module is the data: written from the privacy policy, versioned, and
reviewed like code. Each processing activity a connector names (`activity=` on a dataset or a
field) has an entry giving what art. 15(1)(a)-(h) and 15(2) require: purposes, legal bases,
categories of data, recipients, transfers outside the EEA and their safeguards, retention
periods, sources when the data was not collected from the subject, and automated decisions
with the logic involved. tests/dsar_service/register/ fails when a connector names an activity
the register does not describe.
"""

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = [
    "Activity",
    "AutomatedDecision",
    "Contact",
    "LegalBasis",
    "Register",
    "RegisterError",
    "Retention",
    "Right",
    "Transfers",
    "load_register",
]

# The legal bases under which art. 20 portability applies (art. 20(1)(a)).
PORTABLE_BASES = frozenset({"consent", "contract"})
LEGAL_BASES = frozenset(
    {"consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interest"}
)


class RegisterError(ValueError):
    """The register file is malformed, or an activity is not in it."""


@dataclass(frozen=True)
class Contact:
    """Someone the subject can write to: the controller, the DPO, the CNIL."""

    name: str
    address: str = ""
    email: str = ""
    url: str = ""
    details: str = ""


@dataclass(frozen=True)
class LegalBasis:
    """One legal basis of an activity: its GDPR art. 6(1) letter, and the policy's words."""

    basis: str  # consent, contract, legal_obligation, legitimate_interest, ...
    article: str  # "6(1)(b)"
    text: str


@dataclass(frozen=True)
class Retention:
    """How long one kind of data is kept."""

    data: str
    period: str


@dataclass(frozen=True)
class AutomatedDecision:
    """A decision taken by automated means alone (art. 22), with the logic involved (art. 15(1)(h))."""

    name: str
    datasets: tuple[str, ...]
    logic: str
    significance: str
    contest: str


@dataclass(frozen=True)
class Activity:
    """One processing activity and what the subject must be told about it (art. 15(1), 15(2))."""

    id: str
    name: str
    purposes: tuple[str, ...]
    legal_bases: tuple[LegalBasis, ...]
    categories: tuple[str, ...]
    recipients: tuple[str, ...]
    transfers_outside_eea: bool
    retention: tuple[Retention, ...]
    sources: tuple[str, ...]
    automated_decisions: tuple[AutomatedDecision, ...]

    @property
    def portable(self) -> bool:
        """Whether art. 20 portability covers it: based on consent or on a contract."""
        return any(basis.basis in PORTABLE_BASES for basis in self.legal_bases)


@dataclass(frozen=True)
class Right:
    """One of the subject's rights: where it applies and how to exercise it."""

    id: str
    name: str
    article: str
    applies: str
    how: str


@dataclass(frozen=True)
class Transfers:
    """Transfers outside the European Economic Area: where, and under which safeguards (art. 15(2))."""

    countries: tuple[str, ...]
    safeguards: str


@dataclass(frozen=True)
class Register:
    """The whole register: who the controller is, whom to contact, the rights, the activities."""

    version: str
    source: str
    controller: Contact
    dpo: Contact
    supervisory_authority: Contact
    complaints_department: Contact
    transfers: Transfers
    rights: tuple[Right, ...]
    activities: Mapping[str, Activity]

    def activity(self, name: str) -> Activity:
        """The activity named `name`; RegisterError when the register has no entry for it."""
        try:
            return self.activities[name]
        except KeyError:
            raise RegisterError(f"the register has no processing activity {name!r}") from None

    def to_json(self) -> dict[str, Any]:
        """The register as plain JSON values (for a machine-readable copy in an archive)."""
        return {
            "version": self.version,
            "source": self.source,
            "controller": asdict(self.controller),
            "dpo": asdict(self.dpo),
            "supervisory_authority": asdict(self.supervisory_authority),
            "complaints_department": asdict(self.complaints_department),
            "third_country_transfers": asdict(self.transfers),
            "rights": [asdict(right) for right in self.rights],
            "activities": {name: {**asdict(a), "portable": a.portable} for name, a in self.activities.items()},
        }


def load_register(path: Path | None = None) -> Register:
    """Read and check the register (default: the register.json shipped with this package)."""
    text = (
        path.read_text("utf-8") if path else resources.files(__package__).joinpath("register.json").read_text("utf-8")
    )
    try:
        raw = json.loads(text)
        return _register(raw)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise RegisterError(f"the register is malformed: {type(error).__name__}: {error}") from None


def _contact(raw: Mapping[str, str]) -> Contact:
    return Contact(
        name=raw["name"],
        address=raw.get("address", ""),
        email=raw.get("email", ""),
        url=raw.get("url", ""),
        details=raw.get("details", ""),
    )


def _activity(name: str, raw: Mapping[str, Any]) -> Activity:
    bases = tuple(LegalBasis(b["basis"], b["article"], b["text"]) for b in raw["legal_bases"])
    unknown = {b.basis for b in bases} - LEGAL_BASES
    if not bases or unknown:
        raise RegisterError(f"activity {name!r}: legal bases must be some of {sorted(LEGAL_BASES)}")
    return Activity(
        id=name,
        name=raw["name"],
        purposes=tuple(raw["purposes"]),
        legal_bases=bases,
        categories=tuple(raw["categories"]),
        recipients=tuple(raw["recipients"]),
        transfers_outside_eea=bool(raw["transfers_outside_eea"]),
        retention=tuple(Retention(r["data"], r["period"]) for r in raw["retention"]),
        sources=tuple(raw["sources"]),
        automated_decisions=tuple(
            AutomatedDecision(d["name"], tuple(d["datasets"]), d["logic"], d["significance"], d["contest"])
            for d in raw["automated_decisions"]
        ),
    )


def _register(raw: Mapping[str, Any]) -> Register:
    if not isinstance(raw.get("version"), str) or not raw["version"]:
        raise RegisterError("the register has no version")
    transfers = raw["third_country_transfers"]
    return Register(
        version=raw["version"],
        source=raw["source"],
        controller=_contact(raw["controller"]),
        dpo=_contact(raw["dpo"]),
        supervisory_authority=_contact(raw["supervisory_authority"]),
        complaints_department=_contact(raw["complaints_department"]),
        transfers=Transfers(tuple(transfers["countries"]), transfers["safeguards"]),
        rights=tuple(Right(r["id"], r["name"], r["article"], r["applies"], r["how"]) for r in raw["rights"]),
        activities=MappingProxyType({name: _activity(name, a) for name, a in raw["activities"].items()}),
    )
