"""The declaration of a connector: its system, its store, the identifiers it takes and finds."""

from collections.abc import Iterable, Mapping, Sequence

from connectors.sdk._datasets import (
    REDACTIONS,
    Dataset,
    Field,
    Provenance,
    Record,
    build_fields,
    check_name,
    key_columns,
)
from connectors.sdk._errors import ConnectorDefinitionError
from connectors.sdk._query import Query
from connectors.sdk._stores import Store
from connectors.sdk.identifiers import Ident

Accepted = Ident | tuple[Ident, ...]


class Connector:
    """A source system as the runtime sees it: plain data, checked when the module is imported.

        connector = Connector(
            "policy",
            store=postgresql("policy"),
            accepts=[Ident.EMAIL, Ident.NIR, (Ident.PHONE, Ident.BIRTH_DATE)],
            discovers=[Ident.PERSON_ID],
        )

    `accepts` lists what the system can be searched by. A strong identifier (`Ident.strong`)
    may stand alone. A weak one (phone, policy number, full name) only appears in a tuple with
    a strong identifier or with `Ident.BIRTH_DATE`: the search then matches both at once.
    `discovers` lists the strong identifiers the system can find for the other systems.

    The connector object must be named in the `dsar.connectors` entry-point group of the
    package (`policy = "connectors.policy:connector"`); the runtime finds it there.
    """

    def __init__(
        self,
        name: str,
        *,
        store: Store,
        accepts: Sequence[Accepted],
        discovers: Sequence[Ident] = (),
        version: str = "1",
        description: str = "",
    ) -> None:
        self.name = check_name("connector", name)
        if not isinstance(store, Store):
            raise ConnectorDefinitionError(f"connector {name}: store must be postgresql(...) or mongodb(...)")
        self.store = store
        self.accepts: tuple[frozenset[Ident], ...] = tuple(_combination(name, a) for a in accepts)
        if not self.accepts:
            raise ConnectorDefinitionError(f"connector {name} accepts no identifier")
        for kind in discovers:
            if not isinstance(kind, Ident) or not kind.strong:
                raise ConnectorDefinitionError(
                    f"connector {name}: discovers may list strong identifiers only, not {kind!r}"
                )
        self.discovers: frozenset[Ident] = frozenset(discovers)
        self.version = version
        self.description = description
        self._datasets: dict[str, Dataset] = {}

    def __repr__(self) -> str:
        return f"Connector({self.name!r}, store={self.store!r})"

    @property
    def datasets(self) -> tuple[Dataset, ...]:
        """The datasets in the order they were declared (the order the runtime searches them)."""
        return tuple(self._datasets.values())

    @property
    def accepted_kinds(self) -> frozenset[Ident]:
        """Every identifier kind the connector may be given."""
        return frozenset().union(*self.accepts)

    def dataset(
        self,
        name: str,
        *,
        activity: str,
        key: str | Sequence[str],
        fields: Mapping[str, Provenance | Field],
        description: str = "",
    ) -> Dataset:
        """Declare a dataset: its processing activity, its key column(s), and every field it returns.

        Each field maps to a `Provenance`, or to a `Field` when it has its own activity or needs a
        description. A field without provenance raises ConnectorDefinitionError.
        """
        check_name("dataset", name)
        if name in self._datasets:
            raise ConnectorDefinitionError(f"connector {self.name} declares dataset {name} twice")
        owner = f"{self.name}.{name}"
        dataset = Dataset(
            connector=self,
            name=name,
            activity=check_name("activity", activity),
            key=key_columns(owner, key),
            fields=build_fields(owner, activity, fields),
            description=description,
        )
        self._datasets[name] = dataset
        return dataset

    def redaction(self, dataset: Dataset | str, key: str, fields_removed: Iterable[str], reason: str) -> Record:
        """A note that another person's data was removed from a record (GDPR art. 15(4)).

        Yield it from the search like a record; the runtime sends all notes after the datasets,
        in the reserved dataset `_redactions`, and the archive lists them. `key` names the record
        (of `dataset`) the data was removed from; `fields_removed` and `reason` say what and why,
        in words without personal data.
        """
        name = dataset.name if isinstance(dataset, Dataset) else dataset
        if name not in self._datasets:
            raise ConnectorDefinitionError(f"connector {self.name} has no dataset {name!r}")
        removed = sorted(set(fields_removed))
        return Record(
            REDACTIONS,
            f"{name}/{key}",
            {"dataset": name, "record_key": key, "fields_removed": removed, "reason": reason},
        )

    def restrict(self, query: Query) -> Query:
        """The query with only the identifiers this connector may be given."""
        return query.restricted_to(self.accepts)

    def check(self) -> None:
        """Check what can only be checked once the module has run: a search for every dataset."""
        if not self._datasets:
            raise ConnectorDefinitionError(f"connector {self.name} declares no dataset")
        for dataset in self._datasets.values():
            dataset.searcher  # noqa: B018  (raises when the search is missing)


def _combination(connector: str, accepted: Accepted) -> frozenset[Ident]:
    kinds = (accepted,) if isinstance(accepted, Ident) else tuple(accepted)
    if not kinds or not all(isinstance(k, Ident) for k in kinds):
        raise ConnectorDefinitionError(f"connector {connector}: accepts holds something not an Ident")
    combination = frozenset(kinds)
    if len(combination) == 1:
        (kind,) = combination
        if not kind.strong:
            raise ConnectorDefinitionError(
                f"connector {connector}: {kind.value} does not designate a person alone;"
                " pair it with a strong identifier or Ident.BIRTH_DATE, e.g. (Ident.PHONE, Ident.BIRTH_DATE)"
            )
        return combination
    if not any(k.weak for k in combination):
        raise ConnectorDefinitionError(
            f"connector {connector}: a combination must hold a weak identifier; list strong ones alone"
        )
    if not any(k.strong or k is Ident.BIRTH_DATE for k in combination):
        raise ConnectorDefinitionError(
            f"connector {connector}: weak identifiers count only with a strong one or Ident.BIRTH_DATE"
        )
    return combination
