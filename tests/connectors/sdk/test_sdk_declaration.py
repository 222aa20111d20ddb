"""The SDK's declaration rules, checked when a connector module is imported."""

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import pytest
from bson import ObjectId

import connectors.sdk as sdk
from connectors.sdk import (
    REDACTIONS,
    Connector,
    ConnectorDefinitionError,
    Field,
    Ident,
    Identifier,
    Query,
    Record,
    RecordError,
    RequestKind,
    mongodb,
    postgresql,
)
from connectors.sdk import Provenance as P


def test_exported_members_are_the_public_surface() -> None:
    public = {name for name in dir(sdk) if not name.startswith("_")} - {"identifiers"}
    assert set(sdk.__all__) == public
    assert len(sdk.__all__) == len(set(sdk.__all__))


def demo(**changes: Any) -> Connector:
    options: dict[str, Any] = {
        "store": postgresql("demo"),
        "accepts": [Ident.EMAIL, (Ident.PHONE, Ident.BIRTH_DATE)],
        "discovers": [Ident.PERSON_ID],
    }
    return Connector("demo", **{**options, **changes})


@pytest.mark.parametrize("weak", [Ident.PHONE, Ident.POLICY_NUMBER, Ident.FULL_NAME, Ident.BIRTH_DATE])
def test_a_weak_identifier_alone_is_refused(weak: Ident) -> None:
    with pytest.raises(ConnectorDefinitionError, match="alone"):
        demo(accepts=[Ident.EMAIL, weak])


def test_weak_identifiers_count_with_birth_date_or_a_strong_one() -> None:
    connector = demo(accepts=[(Ident.FULL_NAME, Ident.BIRTH_DATE), (Ident.PHONE, Ident.EMAIL)])
    assert connector.accepted_kinds == {Ident.FULL_NAME, Ident.BIRTH_DATE, Ident.PHONE, Ident.EMAIL}
    with pytest.raises(ConnectorDefinitionError):
        demo(accepts=[(Ident.PHONE, Ident.POLICY_NUMBER)])  # two weak ones still designate no one
    with pytest.raises(ConnectorDefinitionError):
        demo(accepts=[])


def test_discovers_lists_strong_identifiers_only() -> None:
    with pytest.raises(ConnectorDefinitionError, match="strong"):
        demo(discovers=[Ident.PHONE])


def test_every_field_needs_a_provenance() -> None:
    connector = demo()
    with pytest.raises(ConnectorDefinitionError, match=r"demo\.contacts\.email has no provenance"):
        connector.dataset("contacts", activity="prospection", key="id", fields={"email": "provided"})  # type: ignore[dict-item]
    with pytest.raises(ConnectorDefinitionError, match="no field"):
        connector.dataset("empty", activity="prospection", key="id", fields={})


def test_names_and_duplicates_are_checked() -> None:
    connector = demo()
    connector.dataset("contacts", activity="prospection", key="id", fields={"email": P.PROVIDED})
    with pytest.raises(ConnectorDefinitionError, match="twice"):
        connector.dataset("contacts", activity="prospection", key="id", fields={"email": P.PROVIDED})
    with pytest.raises(ConnectorDefinitionError, match="dataset name"):
        connector.dataset("_redactions", activity="prospection", key="id", fields={"email": P.PROVIDED})
    with pytest.raises(ConnectorDefinitionError, match="activity name"):
        connector.dataset("other", activity="Prospection!", key="id", fields={"email": P.PROVIDED})
    with pytest.raises(ConnectorDefinitionError, match="database name"):
        mongodb("crm; drop")


def test_fields_take_the_dataset_activity_unless_they_name_their_own() -> None:
    dataset = demo().dataset(
        "claims",
        activity="policy_management",
        key="id",
        fields={"amount": P.OBSERVED, "alert": Field(P.DERIVED, activity="fraud_prevention", description="x")},
    )
    assert dataset.fields["amount"] == Field(P.OBSERVED, "policy_management")
    assert dataset.fields["alert"] == Field(P.DERIVED, "fraud_prevention", "x")
    assert dataset.portable and dataset.portable_fields == {"amount"}


def test_searches_must_be_async_generators_and_are_required() -> None:
    connector = demo()
    dataset = connector.dataset("contacts", activity="prospection", key="id", fields={"email": P.PROVIDED})
    with pytest.raises(ConnectorDefinitionError, match="no search"):
        connector.check()

    async def not_a_generator(q: Query, db: Any) -> list[Record]:
        return []

    with pytest.raises(ConnectorDefinitionError, match="async generator"):
        dataset.search(not_a_generator)  # type: ignore[arg-type]

    @dataset.search
    async def find(q: Query, db: Any) -> AsyncIterator[Record]:
        yield dataset.record({"id": 1, "email": "a@b.fr"})

    connector.check()
    with pytest.raises(ConnectorDefinitionError, match="two searches"):
        dataset.search(find)


def test_records_hold_declared_fields_only() -> None:
    dataset = demo().dataset(
        "people", activity="policy_management", key=("policy", "person_id"), fields={"email": P.PROVIDED}
    )
    person = uuid.UUID(int=7)
    record = dataset.record(
        {"policy": "P1", "person_id": person, "email": "a@b.fr"},
        discovered={Ident.PERSON_ID: [person, None]},
    )
    assert record == Record(
        "people", f"P1/{person}", {"email": "a@b.fr"}, (Identifier(Ident.PERSON_ID, str(person), "demo"),)
    )
    with pytest.raises(RecordError, match="'secret' is not declared"):
        dataset.record({"policy": "P1", "person_id": person, "secret": "x"})
    with pytest.raises(RecordError, match="key column 'policy'"):
        dataset.record({"person_id": person})
    with pytest.raises(RecordError, match="discovers"):
        dataset.record({"policy": "P1", "person_id": person}, discovered={Ident.EMAIL: "a@b.fr"})
    assert dataset.record({"email": None}, key="override").key == "override"


def test_rows_of_one_layout_are_checked_once_and_each_made_as_the_first() -> None:
    dataset = demo().dataset(
        "visits", activity="site_audience", key="_id", fields={"site": P.OBSERVED, "pages": P.OBSERVED}
    )
    first = dataset.record({"_id": "v1", "site": "public", "pages": [1]})
    second = dataset.record({"_id": "v2", "site": "personal_space", "pages": []})
    assert (first.key, first.fields) == ("v1", {"site": "public", "pages": [1]})
    assert (second.key, second.fields) == ("v2", {"site": "personal_space", "pages": []})
    row = {"site": "public"}
    whole = dataset.record(row, key="k")  # every column a field: the row copied whole
    row["site"] = "changed"
    assert whole.fields == {"site": "public"}
    # A layout seen before still refuses a row without its key, unless the key is given.
    with pytest.raises(RecordError, match="key column '_id' is missing"):
        dataset.record({"site": "public"})
    for _ in range(2):  # refused each time, not only when first seen
        with pytest.raises(RecordError, match="'secret' is not declared"):
            dataset.record({"_id": "v3", "secret": "x"})
    # A column twice (a SELECT naming two tables' columns alike): its last value, as before.
    assert dataset.record(_Row([("_id", "v4"), ("site", "a"), ("site", "b")])).fields == {"site": "b"}
    assert dataset.record(_Row([("site", "a"), ("site", "b")]), key="k").fields == {"site": "b"}


class _Row(dict[str, Any]):
    """A mapping whose items may repeat a name, as an asyncpg.Record's can."""

    def __init__(self, items: list[tuple[str, Any]]) -> None:
        super().__init__(items)
        self._items = items

    def keys(self) -> Any:
        return [name for name, _ in self._items]

    def items(self) -> Any:
        return list(self._items)


def test_portability_keeps_provided_and_observed_fields() -> None:
    dataset = demo().dataset(
        "dunning", activity="policy_management", key="id", fields={"at": P.OBSERVED, "step": P.DERIVED}
    )
    record = dataset.record({"id": 1, "at": "2024-01-01", "step": "reminder"})
    assert dataset.view(record, portability=False) is record
    assert dataset.view(record, portability=True) == Record("dunning", "1", {"at": "2024-01-01"})
    assert dataset.view(dataset.record({"id": 2, "step": "x"}), portability=True) is None


def test_redaction_notes_travel_in_the_reserved_dataset() -> None:
    connector = demo()
    members = connector.dataset("members", activity="policy_management", key="id", fields={"role": P.PROVIDED})
    note = connector.redaction(members, "P1/spouse-1", ["person_id", "person_id", "birth_date"], "another person")
    assert note == Record(
        REDACTIONS,
        "members/P1/spouse-1",
        {
            "dataset": "members",
            "record_key": "P1/spouse-1",
            "fields_removed": ["birth_date", "person_id"],
            "reason": "another person",
        },
    )
    with pytest.raises(ConnectorDefinitionError):
        connector.redaction("unknown", "k", [], "r")


def test_query_gives_only_what_the_connector_accepts() -> None:
    phone = Identifier(Ident.PHONE, "+33612345678")
    birth = Identifier(Ident.BIRTH_DATE, "1980-02-03")
    email = Identifier(Ident.EMAIL, "a@b.fr")
    nir = Identifier(Ident.NIR, "180027512345678")
    connector = demo()
    query = Query.of(RequestKind.ACCESS, [phone, email, nir, email])
    assert connector.restrict(query).identifiers == (email,)  # a phone without a birth date counts for nothing
    full = connector.restrict(Query.of(RequestKind.PORTABILITY, [phone, birth, nir]))
    assert full.portability and set(full.identifiers) == {phone, birth}
    assert full.pairs(Ident.PHONE, Ident.BIRTH_DATE) == [("+33612345678", "1980-02-03")]
    assert full.values(Ident.EMAIL) == [] and not full.has(Ident.EMAIL)
    assert "612345678" not in query.masked()


def test_fields_encode_to_json_with_store_types() -> None:
    oid = ObjectId()
    record = Record(
        "d",
        "k",
        {
            "money": Decimal("12.30"),
            "oid": oid,
            "raw": b"\x00\x01",
            "when": dt.datetime(2024, 5, 1, 12, 0),
            "day": dt.date(2024, 5, 1),
            "id": uuid.UUID(int=1),
            "nested": {"tags": {"b", "a"}},
        },
    )
    assert orjson.loads(record.fields_json()) == {
        "money": "12.30",
        "oid": str(oid),
        "raw": "AAE=",
        "when": "2024-05-01T12:00:00+00:00",
        "day": "2024-05-01",
        "id": "00000000-0000-0000-0000-000000000001",
        "nested": {"tags": ["a", "b"]},
    }
    with pytest.raises(TypeError):
        Record("d", "k", {"x": object()}).fields_json()
