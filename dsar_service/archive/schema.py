"""The data dictionary (a JSON Schema per data file) and a validator for the subset it uses.

Each `data/<system>/<dataset>.json` gets `schemas/<system>/<dataset>.schema.json` (draft 2020-12):
an array of objects whose properties are the dataset's fields, each with its description, its
provenance (`x-provenance`: provided, observed, derived) and its processing activity
(`x-activity`); a label column says which code it puts in words (`x-label-of`). Types are the
JSON types the field took in this archive; `required` lists the fields every record has.

`validate` checks an instance against the keywords these schemas and the manifest's schema use:
type, enum, const, pattern, minimum, properties, required, additionalProperties, items. Other
keywords (annotations, `x-*`) are ignored.
"""

import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any

from .shape import DatasetShape

__all__ = ["DRAFT", "dataset_schema", "manifest_schema", "validate"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_PROVENANCE_WORDS = {
    "provided": "you gave it (a form, your policy, a document)",
    "observed": "recorded as you used our services",
    "derived": "computed or decided by Henner",
}


def _types(seen: set[str]) -> list[str] | str | None:
    if not seen:
        return None
    if "integer" in seen and "number" in seen:
        seen = seen - {"integer"}
    ordered = sorted(seen)
    return ordered[0] if len(ordered) == 1 else ordered


def dataset_schema(shape: DatasetShape, title: str, description: str) -> dict[str, Any]:
    """The JSON Schema of one data file, from its shape after the JSON pass."""
    properties: dict[str, Any] = {}
    columns, seen_types, present = shape.columns, shape.types, shape.present
    for column in columns:
        info = column.field
        prop: dict[str, Any] = {}
        types = _types(seen_types.get(column.name, set()))
        if column.label_of:
            prop["type"] = ["null", "string"]
            prop["description"] = f"{column.label_of} in words (added to this archive; null for an unknown code)"
            prop["x-label-of"] = column.label_of
        else:
            if types is not None:
                prop["type"] = types
            prop["description"] = info.description if info and info.description else column.name.replace("_", " ")
        if info is not None:
            prop["x-provenance"] = info.provenance
            prop["x-activity"] = info.activity
        properties[column.name] = prop
    required = [c.name for c in columns if present.get(c.name, 0) == shape.records and shape.records]
    items: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }
    schema: dict[str, Any] = {
        "$schema": DRAFT,
        "$id": f"schemas/{shape.system}/{shape.name}.schema.json",
        "title": title,
        "description": description,
        "type": "array",
        "items": items,
        "x-system": shape.system,
        "x-dataset": shape.name,
        "x-activity": shape.activity,
        "x-key-fields": list(shape.declared.key_fields) if shape.declared else [],
        "x-provenance-meanings": _PROVENANCE_WORDS,
    }
    return schema


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of manifest.json (shipped with this package: the manifest is a contract)."""
    text = resources.files(__package__).joinpath("manifest.schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _is_type(value: Any, name: str) -> bool:
    match name:
        case "null":
            return value is None
        case "boolean":
            return isinstance(value, bool)
        case "integer":
            return (isinstance(value, int) and not isinstance(value, bool)) or (
                isinstance(value, float) and value.is_integer()
            )
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "string":
            return isinstance(value, str)
        case "array":
            return isinstance(value, list)
        case "object":
            return isinstance(value, dict)
    return False


def validate(instance: Any, schema: Mapping[str, Any], path: str = "$", limit: int = 20) -> list[str]:
    """Where `instance` breaks `schema`: a list of messages (at most `limit`), empty when valid.

    Messages name paths and keywords, never values: a data file holds personal data.
    """
    errors: list[str] = []
    _check(instance, schema, path, errors, limit)
    return errors


def _check(value: Any, schema: Mapping[str, Any], path: str, errors: list[str], limit: int) -> None:
    if len(errors) >= limit:
        return
    expected = schema.get("type")
    if expected is not None:
        names = [expected] if isinstance(expected, str) else list(expected)
        if not any(_is_type(value, name) for name in names):
            errors.append(f"{path}: not of type {'/'.join(names)}")
            return
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not one of the allowed values")
    if "const" in schema and value != schema["const"]:
        errors.append(f"{path}: not the expected constant")
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        errors.append(f"{path}: does not match {schema['pattern']}")
    if "minimum" in schema and isinstance(value, int | float) and value < schema["minimum"]:
        errors.append(f"{path}: below {schema['minimum']}")
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                errors.append(f"{path}: missing required property {name!r}")
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], f"{path}.{name}", errors, limit)
            elif extra is False:
                errors.append(f"{path}: property {name!r} is not in the schema")
            elif isinstance(extra, Mapping):
                _check(item, extra, f"{path}.{name}", errors, limit)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{path}[{index}]", errors, limit)
            if len(errors) >= limit:
                return
