"""Connectors are found through the `dsar.connectors` entry-point group, never by name in code.

A package declares its connectors in its metadata:

    [project.entry-points."dsar.connectors"]
    policy = "connectors.policy:connector"

The entry point's name must be the connector's name.
"""

from collections.abc import Iterable
from importlib.metadata import entry_points

from connectors.sdk import Connector, ConnectorDefinitionError

GROUP = "dsar.connectors"


def available() -> list[str]:
    """The names of the installed connectors, sorted."""
    return sorted({ep.name for ep in entry_points(group=GROUP)})


def load_connectors(systems: Iterable[str] | None = None) -> list[Connector]:
    """Import and check the named connectors (all installed ones when `systems` is None).

    Raises ConnectorDefinitionError for an unknown name, an entry point that is not a
    Connector, a name mismatch, or a dataset without a search.
    """
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    names = sorted(found) if systems is None else list(dict.fromkeys(systems))
    unknown = [name for name in names if name not in found]
    if unknown:
        raise ConnectorDefinitionError(
            f"no connector named {', '.join(unknown)}; installed: {', '.join(sorted(found)) or 'none'}"
        )
    connectors = []
    for name in names:
        connector = found[name].load()
        if not isinstance(connector, Connector):
            raise ConnectorDefinitionError(f"entry point {name} is not a connectors.sdk.Connector")
        if connector.name != name:
            raise ConnectorDefinitionError(f"entry point {name} names connector {connector.name}")
        connector.check()
        connectors.append(connector)
    return connectors
