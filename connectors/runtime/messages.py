"""Protobuf in and out: commands decoded into SDK values, and events built for the result topic.

Protobuf stays here and in the worker; searches see only SDK dataclasses.
"""

import datetime as dt
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from connectors.sdk import Dataset, Ident, Identifier, Query, RequestKind
from dsar.bus.v1 import bus_pb2
from dsar_common.sealing import SealError, open_sealed, query_binding

_KIND_PREFIX = "IDENTIFIER_KIND_"
_REQUEST_KINDS = {
    bus_pb2.REQUEST_KIND_ACCESS: RequestKind.ACCESS,
    bus_pb2.REQUEST_KIND_PORTABILITY: RequestKind.PORTABILITY,
}


class InvalidCommand(Exception):
    """A command that cannot be acted on. The message says why, without personal data."""

    def __init__(self, reason: str, command: "bus_pb2.QueryCommand | None" = None, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command = command  # set when the request, system and attempt are readable
        self.retryable = retryable


@dataclass(frozen=True)
class QueryOrder:
    """An opened QueryCommand: where the results go, by when, and the query itself."""

    request_id: str
    system: str
    attempt: int
    result_public_key: bytes
    deadline: dt.datetime | None
    query: Query
    deflate: bool = False  # the service reads deflated record batches (RECORD_ENCODING_DEFLATE)


def kind_to_proto(kind: Ident) -> "bus_pb2.IdentifierKind.ValueType":
    return bus_pb2.IdentifierKind.Value(_KIND_PREFIX + kind.name)


def declaration_to_proto(dataset: Dataset) -> bus_pb2.DatasetDeclaration:
    """A dataset's declaration, for the heartbeat (the archive's data dictionary comes from it)."""
    return bus_pb2.DatasetDeclaration(
        name=dataset.name,
        activity=dataset.activity,
        description=dataset.description,
        key_fields=list(dataset.key),
        fields=[
            bus_pb2.FieldDeclaration(
                name=name,
                provenance=bus_pb2.Provenance.Value("PROVENANCE_" + declared.provenance.name),
                activity=declared.activity or dataset.activity,
                description=declared.description,
            )
            for name, declared in dataset.fields.items()
        ],
    )


def kind_from_proto(kind: "bus_pb2.IdentifierKind.ValueType") -> Ident | None:
    name = bus_pb2.IdentifierKind.Name(kind).removeprefix(_KIND_PREFIX)
    return Ident.__members__.get(name)


def identifier_to_proto(identifier: Identifier) -> bus_pb2.Identifier:
    return bus_pb2.Identifier(kind=kind_to_proto(identifier.kind), value=identifier.value, source=identifier.source)


def decode_command(value: bytes | None) -> bus_pb2.Command:
    """Parse a command; raises InvalidCommand when it is not one."""
    try:
        command = bus_pb2.Command.FromString(value or b"")
    except DecodeError:
        raise InvalidCommand("not a dsar.bus.v1.Command") from None
    if command.WhichOneof("command") is None:
        raise InvalidCommand("empty command")
    return command


def open_query(command: bus_pb2.QueryCommand, system: str, private_key: bytes, key_id: str) -> QueryOrder:
    """Check a QueryCommand and open its sealed query with the system's private key."""
    if command.system != system:
        raise InvalidCommand("command for another system", command)
    if len(command.result_public_key) != 32:
        raise InvalidCommand("result public key is not 32 bytes", command)
    if command.key_id != key_id:
        raise InvalidCommand("query sealed to another key of the system", command, retryable=True)
    try:
        plain = open_sealed(
            command.sealed_query, private_key, query_binding(command.request_id, system, command.attempt)
        )
        query = bus_pb2.Query.FromString(plain)
    except (SealError, DecodeError):
        raise InvalidCommand("sealed query did not open", command) from None
    kind = _REQUEST_KINDS.get(query.kind)
    if kind is None:
        raise InvalidCommand("query without a request kind", command)
    identifiers = []
    for identifier in query.identifiers:
        ident = kind_from_proto(identifier.kind)
        if ident is not None and identifier.value:
            identifiers.append(Identifier(ident, identifier.value, identifier.source or "request"))
    deadline = command.deadline.ToDatetime(dt.UTC) if command.HasField("deadline") else None
    return QueryOrder(
        request_id=command.request_id,
        system=system,
        attempt=command.attempt,
        result_public_key=command.result_public_key,
        deadline=deadline,
        query=Query.of(kind, identifiers),
        deflate=bus_pb2.RECORD_ENCODING_DEFLATE in command.record_encodings,
    )
