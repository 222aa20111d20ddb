"""Validation of submissions: every fault named by its field, normalisation per world.md §2."""

import pytest

from connectors.sdk.identifiers import Ident, Identifier
from dsar_common.sealing import KeyPair
from dsar_service.errors import InvalidArgument
from dsar_service.model import Kind
from dsar_service.requests.subject import RawSubmission, nir_key, normalise_nir, validate_submission

RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def raw(**changes: object) -> RawSubmission:
    values: dict[str, object] = dict(
        kind=Kind.ACCESS,
        emails=[],
        phones=[],
        nir="",
        person_ids=[],
        policy_numbers=[],
        visitor_ids=[],
        candidate_ids=[],
        first_name="",
        last_name="",
        birth_date="",
        recipient=RECIPIENT,
        request_key="portal:123",
        systems=[],
    )
    values.update(changes)
    return RawSubmission(**values)  # type: ignore[arg-type]


def valid_nir(first_13: str) -> str:
    return f"{first_13}{nir_key(first_13):02d}"


def fields_at_fault(error: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in error.value.violations}


def test_email_is_trimmed_and_case_folded() -> None:
    submission = validate_submission(raw(emails=["  Jean.Dupont@Example.FR "]))
    assert submission.identifiers == (Identifier(Ident.EMAIL, "jean.dupont@example.fr"),)


def test_phone_goes_to_e164_with_france_as_default_region() -> None:
    submission = validate_submission(raw(emails=["a@b.fr"], phones=["06 12 34 56 78"]))
    assert Identifier(Ident.PHONE, "+33612345678") in submission.identifiers


def test_nir_key_is_checked_and_spaces_removed() -> None:
    nir = valid_nir("1850578006048")
    spaced = f"{nir[0]} {nir[1:3]} {nir[3:5]} {nir[5:7]} {nir[7:10]} {nir[10:13]} {nir[13:]}"
    assert normalise_nir(spaced) == nir
    wrong = nir[:13] + f"{(int(nir[13:]) % 97) + 1:02d}"
    with pytest.raises(InvalidArgument) as error:
        validate_submission(raw(nir=wrong))
    assert fields_at_fault(error) >= {"subject.nir"}
    assert "key" in error.value.violations[0].description


def test_corsican_nir_reads_2a_as_19_for_the_key() -> None:
    first_13 = "185052A006048"
    key = 97 - int("1850519006048") % 97
    assert normalise_nir(f"{first_13}{key:02d}") == f"{first_13}{key:02d}"


def test_a_weak_identifier_alone_is_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_submission(raw(phones=["0612345678"]))
    assert fields_at_fault(error) == {"subject"}


def test_a_weak_identifier_with_birth_date_is_accepted() -> None:
    submission = validate_submission(raw(first_name="Jean", last_name="Dupont", birth_date="1985-05-17", emails=[]))
    assert Identifier.full_name("Dupont", "Jean") in submission.identifiers
    assert Identifier(Ident.BIRTH_DATE, "1985-05-17") in submission.identifiers


def test_every_bad_field_is_listed_at_once_and_no_value_is_echoed() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_submission(
            raw(
                kind=None,
                emails=["not-an-email"],
                person_ids=["xyz"],
                birth_date="1985-13-01",
                recipient="age1garbage",
                request_key="",
                systems=["Policy!"],
                first_name="Jean",
            )
        )
    assert fields_at_fault(error) == {
        "kind",
        "subject.emails[0]",
        "subject.person_ids[0]",
        "subject.birth_date",
        "recipient",
        "request_key",
        "systems[0]",
        "subject.name.last_name",
    }
    text = " ".join(v.description for v in error.value.violations)
    assert "not-an-email" not in text and "xyz" not in text and "age1garbage" not in text


def test_ssh_recipients_are_accepted() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    assert validate_submission(raw(emails=["a@b.fr"], recipient=public.decode())).recipient.startswith("ssh-ed25519")


def test_identifiers_are_deduplicated_and_ordered_for_a_stable_digest() -> None:
    first = validate_submission(raw(emails=["b@x.fr", "A@x.fr", "a@x.fr"]))
    second = validate_submission(raw(emails=["a@x.fr", "b@x.fr"]))
    assert first.identifiers == second.identifiers
    assert len(first.identifiers) == 2


def test_too_many_values_are_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_submission(raw(emails=[f"p{i}@x.fr" for i in range(11)]))
    assert fields_at_fault(error) == {"subject.emails"}


def test_keypair_is_32_bytes_each() -> None:  # the request key sizes the bus relies on
    pair = KeyPair.generate()
    assert len(pair.private) == len(pair.public) == 32


def test_an_ssh_key_comment_is_not_kept_it_is_often_an_email_address() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    submission = validate_submission(raw(emails=["a@b.fr"], recipient=f"{key.decode()} jean.dupont@example.fr"))
    assert submission.recipient == key.decode()


def test_an_age_recipient_is_kept_in_its_canonical_form() -> None:
    assert validate_submission(raw(emails=["a@b.fr"], recipient=f"  {RECIPIENT}\n")).recipient == RECIPIENT


def test_sizes_and_trailing_newlines_are_refused() -> None:
    with pytest.raises(InvalidArgument) as error:
        validate_submission(raw(emails=["a@b.fr"], recipient="ssh-rsa " + "A" * 5000, request_key="key\n"))
    assert fields_at_fault(error) == {"recipient", "request_key"}
