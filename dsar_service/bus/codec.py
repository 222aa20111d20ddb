"""Protobuf encodings of what is sealed inside bus messages: queries, discovered identifiers, records."""

from collections.abc import Iterable

from google.protobuf.message import DecodeError

from connectors.sdk.identifiers import Ident, Identifier
from dsar.bus.v1 import bus_pb2
from dsar_common.record_batches import BatchError, inflated
from dsar_service.bus.service_bus import kind_to_bus


class PayloadError(ValueError):
    """An opened payload is not what it should be."""


def _kind_to_bus(kind: Ident) -> int:
    return bus_pb2.IdentifierKind.Value(f"IDENTIFIER_KIND_{kind.name}")


def _kind_from_bus(value: int) -> Ident:
    try:
        name = bus_pb2.IdentifierKind.Name(value)  # type: ignore[arg-type]
        return Ident[name.removeprefix("IDENTIFIER_KIND_")]
    except (KeyError, ValueError) as error:
        raise PayloadError("unknown identifier kind") from error


def encode_query(kind: str, identifiers: Iterable[Identifier]) -> bytes:
    query = bus_pb2.Query(
        kind=kind_to_bus(kind),  # type: ignore[arg-type]
        identifiers=[
            bus_pb2.Identifier(kind=_kind_to_bus(i.kind), value=i.value, source=i.source)  # type: ignore[arg-type]
            for i in identifiers
        ],
    )
    return query.SerializeToString()


def decode_discovered(plaintext: bytes, system: str) -> list[Identifier]:
    """Strong identifiers a system discovered; weak ones are dropped (world.md §2: only strong propagate)."""
    try:
        discovered = bus_pb2.Discovered.FromString(plaintext)
    except DecodeError as error:
        raise PayloadError("discovered identifiers do not decode") from error
    found = []
    for item in discovered.identifiers:
        kind = _kind_from_bus(item.kind)
        if kind.strong and item.value:
            found.append(Identifier(kind, item.value, source=system))
    return found


def decode_records(plaintext: bytes) -> list[tuple[str, bytes]]:
    """The records of an opened chunk, as (dataset, fields as JSON), its batch inflated first if it
    was deflated. (The keys are left: connectors de-duplicate, the archive does not show them.)"""
    try:
        batch = bus_pb2.RecordBatch.FromString(inflated(plaintext))
    except BatchError as error:
        raise PayloadError(str(error)) from None
    except DecodeError as error:
        raise PayloadError("a record batch does not decode") from error
    return [(record.dataset, record.fields_json) for record in batch.records]
