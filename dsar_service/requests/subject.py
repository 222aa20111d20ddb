"""Validation and normalisation of a submission (world.md §2), with every fault named by its field.

Everything is checked before anything is written, so a bad request leaves no trace. Messages
name the field and the rule, never the value: the value may be personal data.
"""

import re
import unicodedata
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

import phonenumbers

from connectors.sdk.identifiers import Ident, Identifier
from dsar_service.crypto import RecipientError, parse_recipient
from dsar_service.errors import FieldViolation, InvalidArgument
from dsar_service.model import Kind, Submission

MAX_VALUES_PER_IDENTIFIER = 10
MAX_SYSTEMS = 32
MAX_RECIPIENT_CHARACTERS = 4096  # a 16384-bit RSA key in OpenSSH's form fits
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
_POLICY_NUMBER = re.compile(r"^[A-Z0-9][A-Z0-9/-]{2,31}$")
_VISITOR_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_REQUEST_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_SYSTEM = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_NIR = re.compile(r"^[12]\d{4}(\d{2}|2A|2B)\d{8}$")


@dataclass(frozen=True)
class RawSubmission:
    """A submission as it arrived (from the API), before validation."""

    kind: Kind | None
    emails: Sequence[str]
    phones: Sequence[str]
    nir: str
    person_ids: Sequence[str]
    policy_numbers: Sequence[str]
    visitor_ids: Sequence[str]
    candidate_ids: Sequence[str]
    first_name: str
    last_name: str
    birth_date: str
    recipient: str
    request_key: str
    systems: Sequence[str]


def normalise_email(value: str) -> str:
    email = value.strip().casefold()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise ValueError("is not an e-mail address")
    return email


def normalise_phone(value: str) -> str:
    if len(value) > 40:
        raise ValueError("is not a phone number")
    try:
        number = phonenumbers.parse(value.strip(), "FR")
    except phonenumbers.NumberParseException as error:
        raise ValueError("is not a phone number") from error
    # Possible, not necessarily allocated: the caller verified the number, and ranges change.
    if not phonenumbers.is_possible_number(number):
        raise ValueError("is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def nir_key(first_13: str) -> int:
    """The NIR control key: 97 - (the 13 first characters mod 97), Corsica's 2A/2B read as 19/18."""
    digits = first_13.replace("2A", "19").replace("2B", "18")
    return 97 - int(digits) % 97


def normalise_nir(value: str) -> str:
    nir = "".join(value.split()).upper()
    if not _NIR.fullmatch(nir):
        raise ValueError("must be 15 characters: sex, year, month, department, commune, order, key")
    if nir_key(nir[:13]) != int(nir[13:]):
        raise ValueError("has a wrong control key")
    return nir


def normalise_person_id(value: str) -> str:
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError as error:
        raise ValueError("is not a UUID") from error


def normalise_policy_number(value: str) -> str:
    number = value.strip().upper()
    if not _POLICY_NUMBER.fullmatch(number):
        raise ValueError("is not a policy number (3 to 32 letters, digits, '-' or '/')")
    return number


def normalise_visitor_id(value: str) -> str:
    visitor = value.strip()
    if not _VISITOR_ID.fullmatch(visitor):
        raise ValueError("is not a cookie identifier (8 to 128 letters, digits, '.', '_' or '-')")
    return visitor


def normalise_candidate_id(value: str) -> str:
    candidate = value.strip().lower()
    if not _OBJECT_ID.fullmatch(candidate):
        raise ValueError("is not a candidate identifier (24 hexadecimal digits)")
    return candidate


def normalise_name_part(value: str) -> str:
    part = " ".join(unicodedata.normalize("NFC", value).split())
    if not 1 <= len(part) <= 100 or any(unicodedata.category(c).startswith("C") for c in part):
        raise ValueError("must be 1 to 100 printable characters")
    return part


def normalise_birth_date(value: str) -> str:
    try:
        born = date.fromisoformat(value.strip())
    except ValueError as error:
        raise ValueError("is not a date (YYYY-MM-DD)") from error
    if not date(1900, 1, 1) <= born <= date.today():
        raise ValueError("must be between 1900-01-01 and today")
    return born.isoformat()


_LISTS: tuple[tuple[str, Ident, Callable[[str], str]], ...] = (
    ("emails", Ident.EMAIL, normalise_email),
    ("phones", Ident.PHONE, normalise_phone),
    ("person_ids", Ident.PERSON_ID, normalise_person_id),
    ("policy_numbers", Ident.POLICY_NUMBER, normalise_policy_number),
    ("visitor_ids", Ident.VISITOR_ID, normalise_visitor_id),
    ("candidate_ids", Ident.CANDIDATE_ID, normalise_candidate_id),
)


def validate_submission(raw: RawSubmission) -> Submission:
    """Check every field; raise InvalidArgument listing each field at fault, or return it normalised."""
    faults: list[FieldViolation] = []
    identifiers: list[Identifier] = []

    def check(field: str, normalise: Callable[[str], str], value: str) -> str | None:
        try:
            return normalise(value)
        except ValueError as error:
            faults.append(FieldViolation(field, f"{field} {error}"))
            return None

    if raw.kind is None:
        faults.append(FieldViolation("kind", "kind must be ACCESS or PORTABILITY"))
    for name, kind, normalise in _LISTS:
        values: Sequence[str] = getattr(raw, name)
        if len(values) > MAX_VALUES_PER_IDENTIFIER:
            faults.append(FieldViolation(f"subject.{name}", f"at most {MAX_VALUES_PER_IDENTIFIER} values"))
            continue
        for index, value in enumerate(values):
            normal = check(f"subject.{name}[{index}]", normalise, value)
            if normal is not None:
                identifiers.append(Identifier(kind, normal))
    if raw.nir:
        nir = check("subject.nir", normalise_nir, raw.nir)
        if nir is not None:
            identifiers.append(Identifier(Ident.NIR, nir))
    if raw.first_name or raw.last_name:
        first = check("subject.name.first_name", normalise_name_part, raw.first_name)
        last = check("subject.name.last_name", normalise_name_part, raw.last_name)
        if first is not None and last is not None:
            identifiers.append(Identifier.full_name(last, first))
    if raw.birth_date:
        born = check("subject.birth_date", normalise_birth_date, raw.birth_date)
        if born is not None:
            identifiers.append(Identifier(Ident.BIRTH_DATE, born))
    faults.extend(_designation_faults(raw))
    recipient = ""
    if len(raw.recipient) > MAX_RECIPIENT_CHARACTERS:
        faults.append(FieldViolation("recipient", f"recipient is longer than {MAX_RECIPIENT_CHARACTERS} characters"))
    else:
        try:
            # Kept in its canonical form: an SSH key's comment (often an e-mail address) is dropped.
            recipient = str(parse_recipient(raw.recipient.strip()))
        except RecipientError as error:
            faults.append(FieldViolation("recipient", f"recipient is unusable: {error}"))
    if not _REQUEST_KEY.fullmatch(raw.request_key):
        faults.append(FieldViolation("request_key", "request_key must be 1 to 128 of [A-Za-z0-9._:-]"))
    faults.extend(_system_faults(raw.systems))
    if faults:
        raise InvalidArgument(faults)
    assert raw.kind is not None
    return Submission(
        kind=raw.kind,
        identifiers=tuple(sorted(set(identifiers), key=lambda i: (i.kind.value, i.value))),
        recipient=recipient,
        request_key=raw.request_key,
        systems=tuple(sorted(set(raw.systems))),
    )


def _designation_faults(raw: RawSubmission) -> list[FieldViolation]:
    """A weak identifier never designates a person alone (world.md §2)."""
    strong = raw.emails or raw.nir or raw.person_ids or raw.visitor_ids or raw.candidate_ids
    weak = raw.phones or raw.policy_numbers or raw.first_name or raw.last_name
    if strong or (weak and raw.birth_date):
        return []
    if weak:
        return [
            FieldViolation(
                "subject",
                "a phone, policy number or name counts only with a strong identifier "
                "(email, nir, person_id, visitor_id, candidate_id) or with birth_date",
            )
        ]
    return [FieldViolation("subject", "at least one identifier is required")]


def _system_faults(systems: Sequence[str]) -> list[FieldViolation]:
    if len(systems) > MAX_SYSTEMS:
        return [FieldViolation("systems", f"at most {MAX_SYSTEMS} systems")]
    faults = [
        FieldViolation(f"systems[{index}]", "a system name is 1 to 32 of [a-z0-9_], starting with a letter")
        for index, name in enumerate(systems)
        if not _SYSTEM.fullmatch(name)
    ]
    if len(set(systems)) != len(systems):
        faults.append(FieldViolation("systems", "systems must not repeat"))
    return faults
