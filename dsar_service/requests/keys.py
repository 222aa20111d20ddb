"""A request's secrets at rest: its identifiers and its private key, both under the master key."""

import json
from collections.abc import Iterable
from dataclasses import dataclass

from connectors.sdk.identifiers import Ident, Identifier
from dsar_common.sealing import KeyPair
from dsar_service.crypto import context, open_at_rest, seal_at_rest, unwrap, wrap


@dataclass(frozen=True)
class RequestKeys:
    """Seals and opens the secrets of requests with the service's master key."""

    master_key: bytes

    def seal_identifiers(self, request_id: str, identifiers: Iterable[Identifier]) -> bytes:
        plain = json.dumps([[i.kind.value, i.value, i.source] for i in identifiers]).encode()
        return seal_at_rest(self.master_key, plain, context("identifiers", request_id))

    def open_identifiers(self, request_id: str, sealed: bytes) -> list[Identifier]:
        plain = open_at_rest(self.master_key, sealed, context("identifiers", request_id))
        return [Identifier(Ident(kind), value, source) for kind, value, source in json.loads(plain)]

    def wrap_private_key(self, request_id: str, pair: KeyPair) -> bytes:
        return wrap(self.master_key, pair.private, context("request-key", request_id))

    def private_key(self, request_id: str, wrapped: bytes) -> bytes:
        return unwrap(self.master_key, wrapped, context("request-key", request_id))
