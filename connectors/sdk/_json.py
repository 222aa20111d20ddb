"""How record fields become JSON: orjson, with the store types it does not know converted exactly."""

import base64
import datetime as dt
import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    # Called by orjson for what it cannot encode itself (it handles str, int, float, bool, None,
    # dict, list, tuple, datetime, date, time, UUID, dataclasses and enums natively).
    if isinstance(value, uuid.UUID):  # subclasses, like asyncpg's own UUID, which orjson leaves to us
        return str(value)
    if isinstance(value, Decimal):
        return str(value)  # exact; a float would round money
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if hasattr(value, "items") and callable(value.items):  # asyncpg.Record, bson SON
        return dict(value.items())
    if type(value).__name__ in ("ObjectId", "Decimal128"):  # bson's, recognised without importing bson
        return str(value)
    raise TypeError(f"cannot encode a value of type {type(value).__name__} as JSON")


def encode_json(fields: Mapping[str, Any]) -> bytes:
    """Encode a record's fields as a JSON object (UTF-8). Raises TypeError for an unknown type."""
    return orjson.dumps(fields, default=_default, option=_OPTIONS)
