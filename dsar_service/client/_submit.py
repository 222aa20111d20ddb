"""What the caller typed, turned into a SubmitRequest.

The service validates and normalises every identifier (world.md §2); this module only checks
what it can see without the service: a known kind, at least one identifier, and one recipient.
"""

from dataclasses import dataclass, field
from pathlib import Path

from dsar.v1 import dsar_pb2

from ._errors import UsageError

KINDS: dict[str, "dsar_pb2.RequestKind.ValueType"] = {
    "access": dsar_pb2.REQUEST_KIND_ACCESS,
    "portability": dsar_pb2.REQUEST_KIND_PORTABILITY,
}


@dataclass(frozen=True)
class SubjectFields:
    """The identifiers of a data subject, as given on the command line (not yet normalised)."""

    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    nir: str = ""
    person_ids: list[str] = field(default_factory=list)
    policy_numbers: list[str] = field(default_factory=list)
    visitor_ids: list[str] = field(default_factory=list)
    candidate_ids: list[str] = field(default_factory=list)
    first_name: str = ""
    last_name: str = ""
    birth_date: str = ""

    def is_empty(self) -> bool:
        """Whether no identifier at all was given."""
        return not any(
            (
                self.emails,
                self.phones,
                self.nir,
                self.person_ids,
                self.policy_numbers,
                self.visitor_ids,
                self.candidate_ids,
                self.first_name,
                self.last_name,
                self.birth_date,
            )
        )

    def to_proto(self) -> dsar_pb2.Subject:
        """The API's Subject; empty values stay unset."""
        subject = dsar_pb2.Subject(
            emails=self.emails,
            phones=self.phones,
            nir=self.nir,
            person_ids=self.person_ids,
            policy_numbers=self.policy_numbers,
            visitor_ids=self.visitor_ids,
            candidate_ids=self.candidate_ids,
            birth_date=self.birth_date,
        )
        if self.first_name or self.last_name:
            subject.name.CopyFrom(dsar_pb2.PersonName(first_name=self.first_name, last_name=self.last_name))
        return subject


def build_submit_request(
    kind: str,
    subject: SubjectFields,
    recipient: str,
    request_key: str,
    systems: list[str] | None = None,
) -> dsar_pb2.SubmitRequest:
    """The SubmitRequest for a kind name (`access`, `portability`), a subject and a recipient."""
    if kind not in KINDS:
        raise UsageError(f"unknown request kind {kind!r}; expected one of: {', '.join(KINDS)}")
    if subject.is_empty():
        raise UsageError("name the subject by at least one identifier (--email, --nir, --person-id, …)")
    recipient = recipient.strip()
    if not recipient:
        raise UsageError("a recipient is required (--recipient age1… or --recipient-file PATH)")
    if not request_key:
        raise UsageError("a request key is required (--request-key)")
    return dsar_pb2.SubmitRequest(
        kind=KINDS[kind],
        subject=subject.to_proto(),
        recipient=recipient,
        request_key=request_key,
        systems=systems or [],
    )


def read_recipient_file(path: Path) -> str:
    """The one recipient in an age recipients file (`#` comments and blank lines ignored).

    An identity file written by `age-keygen` is refused rather than read: it holds a private key,
    and the recipient is the public key printed beside it.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot read the recipient file {path}: {error.strerror}") from None
    lines = [line.strip() for line in text.splitlines()]
    entries = [line for line in lines if line and not line.startswith("#")]
    if any(entry.upper().startswith("AGE-SECRET-KEY-") for entry in entries):
        raise UsageError(f"{path} holds a private key (an age identity); pass its public key (age1…) instead")
    if len(entries) != 1:
        raise UsageError(f"{path} must hold exactly one recipient, it holds {len(entries)}")
    return entries[0]
