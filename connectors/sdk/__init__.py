"""The connector SDK: what a platform engineer needs to connect a source system to dsar.

A connector is one module (see connectors/policy.py) with four parts: a docstring saying what
the system leaves out and why; a `Connector` declaration (store, accepted and discovered
identifiers); one `Dataset` per table or collection, every field with a `Provenance` and a
processing activity; one search per dataset, an async generator yielding `Record`s. The runtime
(connectors/runtime/) does everything else: Kafka, sealing, chunking, retries, cancellation.
Nothing here imports Kafka or gRPC.
"""

from connectors.sdk._connector import Connector
from connectors.sdk._datasets import REDACTIONS, Dataset, Field, Provenance, Record
from connectors.sdk._errors import (
    ConnectorDefinitionError,
    ConnectorError,
    PermanentError,
    RecordError,
    TemporaryError,
)
from connectors.sdk._query import Query, RequestKind
from connectors.sdk._stores import Store, documents, mongodb, postgresql, rows
from connectors.sdk.identifiers import Ident, Identifier, split_full_name

__all__ = [
    "REDACTIONS",
    "Connector",
    "ConnectorDefinitionError",
    "ConnectorError",
    "Dataset",
    "Field",
    "Ident",
    "Identifier",
    "PermanentError",
    "Provenance",
    "Query",
    "Record",
    "RecordError",
    "RequestKind",
    "Store",
    "TemporaryError",
    "documents",
    "mongodb",
    "postgresql",
    "rows",
    "split_full_name",
]
