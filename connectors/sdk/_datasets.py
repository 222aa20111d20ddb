"""Datasets, their fields, and the records a search yields.

A dataset is one table or collection a connector returns. Each field declares its provenance
(what the subject provided, what the insurer observed, what it derived) and its processing
activity, so that the portability filter (art. 20) and the register of activities (art. 15(1))
come from code rather than from a document that drifts.
"""

import inspect
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from connectors.sdk._errors import ConnectorDefinitionError, RecordError
from connectors.sdk._json import encode_json
from connectors.sdk._query import Query
from connectors.sdk.identifiers import Ident, Identifier, normalise_discovered

if TYPE_CHECKING:
    from connectors.sdk._connector import Connector

# The reserved dataset that carries redaction notes (see `Connector.redaction`).
REDACTIONS = "_redactions"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")

# What a search is: `async def find(q: Query, db) -> AsyncIterator[Record]`, an async generator.
Search = Callable[[Query, Any], AsyncIterator["Record"]]


class Provenance(Enum):
    """Where a value comes from (world.md §3). Only provided and observed data is portable."""

    PROVIDED = "provided"  # the subject gave it: a form, a contract, a document
    OBSERVED = "observed"  # recorded as the subject used the service: payments, visits, logs
    DERIVED = "derived"  # computed or inferred by the insurer: scores, decisions, assessments

    @property
    def portable(self) -> bool:
        """Whether art. 20 portability includes values of this provenance."""
        return self is not Provenance.DERIVED


@dataclass(frozen=True)
class Field:
    """A field's provenance, and optionally its own activity and a description for the archive.

    Use `Field(...)` only when a field differs from its dataset's activity or needs explaining;
    a bare `Provenance` is enough otherwise:

        fields={"iban": Provenance.PROVIDED,
                "automated": Field(Provenance.DERIVED, description="decided without a person")}
    """

    provenance: Provenance
    activity: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its dataset, a key unique within the dataset, its fields, what it revealed.

    Build records with `Dataset.record` (or `Connector.redaction`), which check them.
    `discovered` holds the strong identifiers of the subject the record revealed, for the search
    of the other systems; they are never sent as part of the record itself.
    """

    dataset: str
    key: str
    fields: Mapping[str, Any]
    discovered: tuple[Identifier, ...] = ()

    def fields_json(self) -> bytes:
        """The fields as a UTF-8 JSON object (what travels in `dsar.bus.v1.Record.fields_json`)."""
        return encode_json(self.fields)


@dataclass(eq=False)
class Dataset:
    """One table or collection a connector returns. Create it with `Connector.dataset`."""

    connector: "Connector"
    name: str
    activity: str
    key: tuple[str, ...]
    fields: Mapping[str, Field]
    description: str = ""
    _search: Search | None = field(default=None, repr=False)
    _layouts: dict[tuple[str, ...], "_RowLayout"] = field(default_factory=dict, repr=False)

    @property
    def portable(self) -> bool:
        """Whether portability returns this dataset at all (it has a provided or observed field)."""
        return any(f.provenance.portable for f in self.fields.values())

    @property
    def portable_fields(self) -> frozenset[str]:
        """The fields portability returns."""
        return frozenset(name for name, f in self.fields.items() if f.provenance.portable)

    @property
    def searcher(self) -> Search:
        """The registered search; raises ConnectorDefinitionError if there is none."""
        if self._search is None:
            raise ConnectorDefinitionError(f"dataset {self.connector.name}.{self.name} has no search")
        return self._search

    def search(self, function: Search) -> Search:
        """Register the dataset's search (a decorator). It must be an async generator function:

            @insured_person.search
            async def find_insured_person(q: Query, db) -> AsyncIterator[Record]:
                ...
                yield insured_person.record(row, discovered={Ident.EMAIL: row["email"]})

        It receives the query (only the identifiers the connector accepts) and a connection lent
        by the runtime. It yields records as rows arrive, never a list built in memory.
        """
        if not inspect.isasyncgenfunction(function):
            raise ConnectorDefinitionError(
                f"the search of {self.connector.name}.{self.name} must be an async generator function"
            )
        if self._search is not None:
            raise ConnectorDefinitionError(f"dataset {self.connector.name}.{self.name} has two searches")
        self._search = function
        return function

    def record(
        self,
        row: Mapping[str, Any],
        *,
        key: str | None = None,
        discovered: Mapping[Ident, object] | None = None,
    ) -> Record:
        """A record of this dataset from a row (a dict, a PyMongo document or an asyncpg.Record).

        The row may hold only declared fields and the key's columns (which are exported only
        if declared too): read what you declare, so the SQL or the projection shows what the
        system gives up. Anything else raises RecordError. A declared field missing from the row
        is simply absent. `key` overrides the key computed from the row's key columns (useful
        when those columns must not be disclosed). `discovered` maps an identifier kind the
        connector `discovers` to a value, or to a list of values; None and "" are ignored.
        """
        names = tuple(row.keys())
        layout = self._layouts.get(names) or self._layout(names)
        if layout.whole:
            fields = dict(row.items())
        else:
            fields = {name: value for name, value in row.items() if name in self.fields}
        if key is None:
            if layout.key is None:
                missing = next(column for column in self.key if column not in names)
                raise RecordError(f"{self.connector.name}.{self.name}: key column {missing!r} is missing")
            key = layout.key(row)
        return Record(self.name, key, fields, self._discovered(discovered) if discovered else ())

    def _layout(self, names: tuple[str, ...]) -> "_RowLayout":
        """What `record` makes of rows with these column names in this order, checked once and
        kept (rows of one search nearly always share them); RecordError as `record` says."""
        where = f"{self.connector.name}.{self.name}"
        for name in names:
            if name not in self.fields and name not in self.key:
                raise RecordError(f"{where}: field {name!r} is not declared")
        whole = all(name in self.fields for name in names)
        keyed = all(column in names for column in self.key)
        layout = _RowLayout(whole, _key_of(self.key) if keyed else None)
        if len(self._layouts) >= _MAX_ROW_LAYOUTS:
            self._layouts.clear()
        self._layouts[names] = layout
        return layout

    def view(self, record: Record, portability: bool) -> Record | None:
        """The record as the request kind allows: for portability, without derived fields, and
        None when no field is left. Redaction notes pass unchanged."""
        if not portability:
            return record
        portable = self.portable_fields
        kept = {name: value for name, value in record.fields.items() if name in portable}
        if not kept:
            return None
        return Record(record.dataset, record.key, kept, record.discovered)

    def _discovered(self, found: Mapping[Ident, object]) -> tuple[Identifier, ...]:
        identifiers: list[Identifier] = []
        for kind, value in found.items():
            if kind not in self.connector.discovers:
                raise RecordError(
                    f"{self.connector.name}.{self.name}: {kind.value} is not in the connector's discovers"
                )
            values: Iterable[object] = value if isinstance(value, list | tuple | set | frozenset) else (value,)
            for one in values:
                text = normalise_discovered(kind, one)
                if text is not None:
                    identifiers.append(Identifier(kind, text, self.connector.name))
        return tuple(identifiers)


_MAX_ROW_LAYOUTS = 64  # per dataset: a search has a few (its SELECT's columns, a document's fields)


@dataclass(frozen=True, slots=True)
class _RowLayout:
    """Rows with one list of column names: whether every column is a field (the row is then
    copied whole), and how their key is made (None: a key column is missing)."""

    whole: bool
    key: Callable[[Mapping[str, Any]], str] | None


def _key_of(columns: tuple[str, ...]) -> Callable[[Mapping[str, Any]], str]:
    """The key of a row: its key columns' values as text, joined with '/'."""
    if len(columns) == 1:
        (column,) = columns
        return lambda row: str(row[column])
    return lambda row: "/".join(str(row[column]) for column in columns)


def check_name(what: str, name: str) -> str:
    """Names of datasets, fields and activities: lower-case snake case, as they appear in archives."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConnectorDefinitionError(f"invalid {what} name {name!r}: use lower_snake_case")
    return name


def build_fields(owner: str, activity: str, fields: Mapping[str, "Provenance | Field"]) -> dict[str, Field]:
    """Check declared fields and give each its activity (the dataset's unless it names its own)."""
    if not fields:
        raise ConnectorDefinitionError(f"dataset {owner} declares no field")
    built: dict[str, Field] = {}
    for name, spec in fields.items():
        check_name("field", name)
        if isinstance(spec, Provenance):
            spec = Field(spec)
        if not isinstance(spec, Field) or not isinstance(spec.provenance, Provenance):
            raise ConnectorDefinitionError(
                f"field {owner}.{name} has no provenance: give a Provenance or a Field(Provenance…)"
            )
        built[name] = Field(spec.provenance, check_name("activity", spec.activity or activity), spec.description)
    return built


def key_columns(owner: str, key: str | Sequence[str]) -> tuple[str, ...]:
    columns = (key,) if isinstance(key, str) else tuple(key)
    if not columns or not all(isinstance(c, str) and c for c in columns):
        raise ConnectorDefinitionError(f"dataset {owner} needs a key: a column name or several")
    return columns
