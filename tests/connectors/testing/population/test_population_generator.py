"""The generated population: reproducible, well-formed, and true to the facts it advertises."""

import hashlib
import itertools
import os
import subprocess
import sys
import types
import uuid
from collections import Counter, defaultdict
from typing import Any

import phonenumbers
import pytest

from connectors.testing.population import SYSTEMS, Population, PopulationSizes, generate
from connectors.testing.population._french import iban_is_valid, make_nir, nir_key
from connectors.testing.population.schemas import POSTGRES_SYSTEMS, POSTGRES_TABLES

# Field names of the MongoDB collections, from world.md §1.
MONGO_FIELDS = {
    "contacts": {
        "_id",
        "person_id",
        "emails",
        "phones",
        "first_name",
        "last_name",
        "birth_date",
        "policy_numbers",
        "source",
        "broker",
        "marketing",
        "created_at",
        "updated_at",
    },
    "interactions": {"_id", "contact_id", "channel", "occurred_at", "subject", "notes", "agent_id"},
    "complaints": {"_id", "contact_id", "opened_at", "category", "description", "status", "resolution"},
    "quotes": {"_id", "contact_id", "requested_at", "product", "answers"},
    "candidates": {
        "_id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "cv_filename",
        "cv_text",
        "source",
        "agency_name",
        "applications",
        "last_contact_at",
    },
    "visits": {"_id", "visitor_id", "user_id", "ip", "user_agent", "site", "started_at", "pages"},
    "cookie_consents": {"_id", "visitor_id", "user_id", "given_at", "categories"},
}
PRIMARY_KEYS = {
    "insured_person": ("person_id",),
    "policy": ("policy_number",),
    "policy_member": ("policy_number", "person_id"),
    "premium_payment": ("payment_id",),
    "dunning_event": ("id",),
    "aml_screening": ("id",),
    "file_access_log": ("id",),
    "claim": ("claim_id",),
    "claim_document": ("doc_id",),
    "fraud_alert": ("alert_id",),
}


@pytest.fixture(scope="module")
def population() -> Population:
    return generate(seed=11, sizes=PopulationSizes(households=40))


@pytest.fixture(scope="module")
def tables(population: Population) -> dict[str, list[dict[str, Any]]]:
    """Every row of the (small) population, by table or collection."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for system in SYSTEMS:
        for table, row in population.rows(system):
            rows[table].append(row)
    return rows


def test_the_public_names_are_these_and_exist() -> None:
    import connectors.testing.population as package

    assert set(package.__all__) == {
        "SYSTEMS",
        "CandidateFacts",
        "DemoSubject",
        "PersonFacts",
        "Population",
        "PopulationSizes",
        "VisitorFacts",
        "create_mongo_indexes",
        "create_postgres_schema",
        "generate",
        "load_population",
    }
    assert all(hasattr(package, name) for name in package.__all__)


def digest(population: Population) -> str:
    h = hashlib.sha256()
    for system in SYSTEMS:
        for table, row in population.rows(system):
            h.update(repr((table, sorted(row.items()))).encode())
    return h.hexdigest()


def test_same_seed_gives_the_same_rows_and_another_seed_other_rows() -> None:
    sizes = PopulationSizes(households=15)
    assert digest(generate(3, sizes)) == digest(generate(3, sizes))
    assert digest(generate(3, sizes)) != digest(generate(4, sizes))


def test_same_seed_gives_the_same_rows_in_another_process_with_another_hash_seed() -> None:
    sizes = PopulationSizes(households=15)
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from test_population_generator import digest; "
        "from connectors.testing.population import generate, PopulationSizes; "
        "print(digest(generate(3, PopulationSizes(households=15))))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", code, os.path.dirname(__file__)], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    assert other == digest(generate(3, sizes))


def test_rows_are_drawn_lazily(population: Population) -> None:
    stream = population.rows("analytics")
    assert isinstance(stream, types.GeneratorType)
    first = list(itertools.islice(stream, 3))
    assert len(first) == 3
    stream.close()


def test_every_nir_has_a_valid_key(tables: dict[str, list[dict[str, Any]]]) -> None:
    nirs = [row["nir"] for row in tables["insured_person"] if row["nir"] is not None]
    assert len(nirs) > 40
    assert any(nir[5:7] in ("2A", "2B") for nir in nirs), "Corsican NIRs exercise the 2A/2B rule"
    for nir in nirs:
        assert len(nir) == 15 and nir == nir.upper() and " " not in nir
        digits = nir[:13].replace("2A", "19", 1) if nir[5:7] == "2A" else nir[:13]
        digits = digits.replace("2B", "18", 1) if nir[5:7] == "2B" else digits
        assert int(nir[13:]) == 97 - int(digits) % 97


def test_nir_key_matches_published_examples() -> None:
    # Worked examples: a mainland NIR and a Corsican one (2B is read as 18 for the key).
    assert nir_key("1810369383047") == f"{97 - 1810369383047 % 97:02d}"
    assert nir_key("283072B033112") == f"{97 - 2830718033112 % 97:02d}"
    assert make_nir(2, 1983, 7, "2B", "033", 112) == "283072B033112" + nir_key("283072B033112")


def test_identifiers_are_stored_in_canonical_form(tables: dict[str, list[dict[str, Any]]]) -> None:
    phones = [row["phone"] for row in tables["insured_person"] if row["phone"]]
    phones += [p for row in tables["contacts"] for p in row["phones"]] + [row["phone"] for row in tables["candidates"]]
    for phone in phones:
        parsed = phonenumbers.parse(phone, "FR")
        assert phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == phone
    emails = [row["email"] for row in tables["insured_person"] if row["email"]]
    emails += [e for row in tables["contacts"] for e in row["emails"]] + [row["email"] for row in tables["candidates"]]
    assert all(email == email.strip().casefold() and "@example." in email for email in emails)
    assert all(iban_is_valid(row["iban"]) for row in tables["bank_account"])


def test_postgres_rows_have_exactly_the_schema_columns(tables: dict[str, list[dict[str, Any]]]) -> None:
    for system in POSTGRES_SYSTEMS:
        for table in POSTGRES_TABLES[system]:
            assert tables[table.name], f"{table.name} has rows"
            assert all(tuple(row) == table.column_names for row in tables[table.name]), table.name


def test_mongo_documents_have_exactly_the_world_fields(tables: dict[str, list[dict[str, Any]]]) -> None:
    for collection, fields in MONGO_FIELDS.items():
        assert tables[collection], f"{collection} has documents"
        assert all(set(doc) == fields for doc in tables[collection]), collection


def test_primary_keys_are_unique(tables: dict[str, list[dict[str, Any]]]) -> None:
    for table, key in PRIMARY_KEYS.items():
        keys = [tuple(row[k] for k in key) for row in tables[table]]
        assert len(keys) == len(set(keys)), table
    for collection in MONGO_FIELDS:
        ids = [doc["_id"] for doc in tables[collection]]
        assert len(ids) == len(set(ids)), collection


def test_references_point_at_existing_rows(tables: dict[str, list[dict[str, Any]]]) -> None:
    people = {row["person_id"] for row in tables["insured_person"]}
    policies = {row["policy_number"] for row in tables["policy"]}
    claims = {row["claim_id"] for row in tables["claim"]}
    contacts = {doc["_id"] for doc in tables["contacts"]}
    assert {row["subscriber_id"] for row in tables["policy"]} <= people
    assert {row["person_id"] for row in tables["policy_member"]} <= people
    assert {row["policy_number"] for row in tables["premium_payment"]} <= policies
    assert {row["patient_person_id"] for row in tables["claim"]} <= people
    assert {row["policy_number"] for row in tables["claim"]} <= policies
    assert {row["claim_id"] for row in tables["claim_document"]} <= claims
    assert {row["claim_id"] for row in tables["fraud_alert"]} <= claims
    for collection in ("interactions", "complaints", "quotes"):
        assert {doc["contact_id"] for doc in tables[collection]} <= contacts
    user_ids = {doc["user_id"] for doc in tables["visits"] if doc["user_id"]}
    assert user_ids <= {str(p) for p in people}


def test_the_household_shares_phone_policy_and_address(
    population: Population, tables: dict[str, list[dict[str, Any]]]
) -> None:
    demo = population.demo
    family = {demo.person_id, demo.spouse_person_id, *demo.children_person_ids}
    assert len(family) == 4 and len(demo.children_person_ids) == 2
    rows = {str(row["person_id"]): row for row in tables["insured_person"] if str(row["person_id"]) in family}
    assert {row["phone"] for row in rows.values()} == {demo.phone}
    assert {(r["address_line"], r["postal_code"], r["city"], r["country"]) for r in rows.values()} == {
        (demo.address_line, demo.postal_code, demo.city, "FR")
    }
    members = {
        str(row["person_id"]): row["role"]
        for row in tables["policy_member"]
        if row["policy_number"] == demo.policy_number
    }
    assert members == {
        demo.person_id: "subscriber",
        demo.spouse_person_id: "spouse",
        **dict.fromkeys(demo.children_person_ids, "child"),
    }
    assert population.spouse.person_id == demo.spouse_person_id and population.spouse.email != demo.email
    # The phone alone designates the whole household: four people in policy, two contacts in crm.
    assert sum(row["phone"] == demo.phone for row in tables["insured_person"]) == 4
    assert sum(demo.phone in doc["phones"] for doc in tables["contacts"]) == 2


def test_the_namesake_is_someone_else(population: Population, tables: dict[str, list[dict[str, Any]]]) -> None:
    demo, namesake = population.demo, population.namesake
    assert (namesake.first_name, namesake.last_name) == (demo.first_name, demo.last_name)
    assert namesake.birth_date != demo.birth_date
    assert namesake.email != demo.email and namesake.person_id != demo.person_id and namesake.nir != demo.nir
    same_name = [
        row
        for row in tables["insured_person"]
        if (row["first_name"], row["last_name"]) == (demo.first_name, demo.last_name)
    ]
    assert {str(row["person_id"]) for row in same_name} >= {demo.person_id, namesake.person_id}
    assert sum(row["birth_date"] == demo.birth_date for row in same_name) == 1
    assert any(doc["emails"] == [namesake.email] for doc in tables["contacts"])


def test_the_demo_subject_is_in_all_five_systems(
    population: Population, tables: dict[str, list[dict[str, Any]]]
) -> None:
    demo = population.demo
    person = uuid.UUID(demo.person_id)
    [me] = [row for row in tables["insured_person"] if row["person_id"] == person]
    assert (me["email"], me["nir"], me["phone"], me["birth_date"]) == (
        demo.email,
        demo.nir,
        demo.phone,
        demo.birth_date,
    )
    assert any(row["expatriation_country"] for row in tables["policy"] if row["subscriber_id"] == person)
    [contact] = [doc for doc in tables["contacts"] if doc["person_id"] == demo.person_id]
    assert contact["emails"] == [demo.email] and str(contact["_id"]) == demo.contact_id
    [candidate] = [doc for doc in tables["candidates"] if doc["email"] == demo.email]
    assert str(candidate["_id"]) == demo.candidate_id
    mine = [doc for doc in tables["visits"] if doc["visitor_id"] == demo.visitor_id]
    assert {doc["user_id"] for doc in mine} == {demo.person_id, None}


def test_the_demo_subject_has_one_of_every_kind_of_record(population: Population) -> None:
    demo = population.demo
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for system in SYSTEMS:
        for table, row in population.subject_rows(system):
            rows[table].append(row)
    assert any(row["card_last4"] for row in rows["premium_payment"])
    assert any(row["automated"] for row in rows["dunning_event"])
    assert any(not row["automated"] for row in rows["dunning_event"])
    assert {row["analyst_note"] for row in rows["aml_screening"]} == set(demo.aml_analyst_notes)
    assert all(row["accessor_id"] in demo.accessor_ids for row in rows["file_access_log"])
    assert demo.claims_for_self and demo.claims_for_relatives and demo.claims_by_relatives
    assert any(row["diagnosis_code"] for row in rows["claim"])
    assert rows["fraud_alert"] and rows["complaints"] and rows["quotes"]
    assert demo.visits_logged_in and demo.visits_anonymous


def test_subject_rows_are_rows_of_the_population_and_match_the_expected_counts(population: Population) -> None:
    for system in SYSTEMS:
        everything = {repr((table, sorted(row.items()))) for table, row in population.rows(system)}
        subject = [(table, row) for table, row in population.subject_rows(system)]
        assert {repr((table, sorted(row.items()))) for table, row in subject} <= everything
        assert dict(Counter(table for table, _ in subject)) == {
            table: n for table, n in population.demo.expected_counts[system].items() if n
        }


def test_demo_counts_follow_the_sizes() -> None:
    sizes = PopulationSizes(households=2, demo_claims=50, demo_visits=40, pages_per_visit=8, demo_interactions=30)
    demo = generate(5, sizes).demo
    assert demo.expected_counts["claims"]["claim"] == 50
    assert demo.claims_for_self + demo.claims_for_relatives + demo.claims_by_relatives == 50
    assert demo.expected_counts["analytics"]["visits"] == 40 == demo.visits_logged_in + demo.visits_anonymous
    assert 40 * 4 <= demo.page_views <= 40 * 12
    assert demo.expected_counts["crm"]["interactions"] == 30


def test_the_outsiders_are_known_to_one_system_only(
    population: Population, tables: dict[str, list[dict[str, Any]]]
) -> None:
    candidate, visitor = population.former_candidate, population.anonymous_visitor
    assert candidate.expected_counts == {"recruitment": {"candidates": 1}}
    assert [str(doc["_id"]) for doc in tables["candidates"] if doc["email"] == candidate.email] == [
        candidate.candidate_id
    ]
    assert not any(row["email"] == candidate.email for row in tables["insured_person"])
    assert not any(candidate.email in doc["emails"] for doc in tables["contacts"])
    visits = [doc for doc in tables["visits"] if doc["visitor_id"] == visitor.visitor_id]
    assert len(visits) == visitor.expected_counts["analytics"]["visits"] and all(v["user_id"] is None for v in visits)


@pytest.mark.parametrize(
    "bad", [{"households": -1}, {"demo_claims": 3}, {"demo_visits": 1}, {"pages_per_visit": 0}, {"lone_candidates": 0}]
)
def test_sizes_are_checked(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        PopulationSizes(**bad)


def test_unknown_system_is_refused(population: Population) -> None:
    with pytest.raises(ValueError):
        next(population.rows("billing"))
