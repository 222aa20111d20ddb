"""The validator for the JSON Schema subset the archive emits, the manifest's schema, and CSV cells."""

import pytest

from dsar_service.archive import manifest_schema, validate
from dsar_service.archive.csvfile import CsvEncoder, cell

SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0},
            "s": {"type": ["string", "null"]},
            "k": {"enum": ["a", "b"]},
            "h": {"type": "string", "pattern": "^[0-9a-f]{4}$"},
        },
        "required": ["n"],
        "additionalProperties": False,
    },
}


@pytest.mark.parametrize(
    ("instance", "problem"),
    [
        ([{"n": 1, "s": None, "k": "a", "h": "00ff"}], None),
        ([{"n": 1.0}], None),
        ([{"s": "x"}], "missing required property 'n'"),
        ([{"n": True}], "$[0].n: not of type integer"),
        ([{"n": -1}], "below 0"),
        ([{"n": 1, "z": 1}], "property 'z' is not in the schema"),
        ([{"n": 1, "k": "c"}], "not one of the allowed values"),
        ([{"n": 1, "h": "xyz"}], "does not match"),
        ({"n": 1}, "$: not of type array"),
    ],
)
def test_validate(instance: object, problem: str | None) -> None:
    errors = validate(instance, SCHEMA)
    if problem is None:
        assert errors == []
    else:
        assert any(problem in e for e in errors), errors


def test_messages_never_hold_values() -> None:
    errors = validate([{"n": "secret-value"}], SCHEMA)
    assert errors and all("secret-value" not in e for e in errors)


def test_the_manifest_schema_refuses_a_manifest_without_hashes() -> None:
    schema = manifest_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    errors = validate({"format_version": "1.1", "files": [{"path": "x", "size": 1}]}, schema)
    assert any("sha256" in e for e in errors)


def test_cells() -> None:
    assert [cell(v) for v in (None, True, False, 3, 2.5, "é,\n")] == ["", "true", "false", "3", "2.5", "é,\n"]
    assert cell({"a": [1, None]}) == '{"a":[1,null]}'


def test_csv_lines_quote_as_rfc_4180() -> None:
    encoder = CsvEncoder(["a", "b"])
    assert encoder.header() == b"a,b\r\n"
    assert encoder.row({"a": 'say "hi", bye', "c": 1}) == b'"say ""hi"", bye",\r\n'
