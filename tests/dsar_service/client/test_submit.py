"""Command-line input → SubmitRequest: every identifier lands in its field, and bad input is refused early."""

from pathlib import Path

import pytest

from dsar.v1 import dsar_pb2
from dsar_service.client import SubjectFields, UsageError, build_submit_request, read_recipient_file

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def test_every_identifier_lands_in_its_field() -> None:
    subject = SubjectFields(
        emails=["a@example.org", "b@example.org"],
        phones=["+33612345678"],
        nir="1 84 12 75 123 456 78",
        person_ids=["0b8f5f0e-0000-4000-8000-000000000001"],
        policy_numbers=["POL-1"],
        visitor_ids=["v-1"],
        candidate_ids=["c-1"],
        first_name="Jeanne",
        last_name="Martin",
        birth_date="1984-12-01",
    )
    request = build_submit_request("portability", subject, f"  {RECIPIENT}\n", "key-1", ["policy", "crm"])

    assert request.kind == dsar_pb2.REQUEST_KIND_PORTABILITY
    assert list(request.subject.emails) == ["a@example.org", "b@example.org"]
    assert list(request.subject.phones) == ["+33612345678"]
    assert request.subject.nir == "1 84 12 75 123 456 78"  # normalising is the service's job
    assert list(request.subject.person_ids) == ["0b8f5f0e-0000-4000-8000-000000000001"]
    assert list(request.subject.policy_numbers) == ["POL-1"]
    assert list(request.subject.visitor_ids) == ["v-1"]
    assert list(request.subject.candidate_ids) == ["c-1"]
    assert (request.subject.name.first_name, request.subject.name.last_name) == ("Jeanne", "Martin")
    assert request.subject.birth_date == "1984-12-01"
    assert request.recipient == RECIPIENT
    assert request.request_key == "key-1"
    assert list(request.systems) == ["policy", "crm"]


def test_name_is_left_unset_without_one_and_systems_default_to_all() -> None:
    request = build_submit_request("access", SubjectFields(emails=["a@example.org"]), RECIPIENT, "k", None)
    assert request.kind == dsar_pb2.REQUEST_KIND_ACCESS
    assert not request.subject.HasField("name")
    assert list(request.systems) == []


@pytest.mark.parametrize(
    ("kind", "subject", "recipient", "key", "complaint"),
    [
        ("erasure", SubjectFields(emails=["a@example.org"]), RECIPIENT, "k", "unknown request kind"),
        ("access", SubjectFields(), RECIPIENT, "k", "at least one identifier"),
        ("access", SubjectFields(nir="x"), "   ", "k", "recipient is required"),
        ("access", SubjectFields(nir="x"), RECIPIENT, "", "request key is required"),
    ],
)
def test_refuses_what_cannot_be_a_request(
    kind: str, subject: SubjectFields, recipient: str, key: str, complaint: str
) -> None:
    with pytest.raises(UsageError, match=complaint):
        build_submit_request(kind, subject, recipient, key)


def test_recipient_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "recipient.txt"
    path.write_text(f"# the requester's key\n\n{RECIPIENT}\n")
    assert read_recipient_file(path) == RECIPIENT


def test_an_identity_file_is_refused_without_repeating_the_secret(tmp_path: Path) -> None:
    secret = "AGE-SECRET-KEY-1QQPQQQSQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
    path = tmp_path / "identity.txt"
    path.write_text(f"# created: 2025-01-01\n# public key: {RECIPIENT}\n{secret}\n")
    with pytest.raises(UsageError, match="private key") as caught:
        read_recipient_file(path)
    assert secret not in caught.value.message


@pytest.mark.parametrize("content", ["", "# nothing\n", f"{RECIPIENT}\n{RECIPIENT}\n"])
def test_recipient_file_must_hold_exactly_one(tmp_path: Path, content: str) -> None:
    path = tmp_path / "recipients.txt"
    path.write_text(content)
    with pytest.raises(UsageError, match="exactly one recipient"):
        read_recipient_file(path)


def test_missing_recipient_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        read_recipient_file(tmp_path / "absent.txt")
