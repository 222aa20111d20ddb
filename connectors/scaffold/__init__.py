"""`dsar connectors new NAME`: the skeleton of a new connector and of its conformance test.

    paths = write_connector_skeleton("billing", Path("connectors"), "postgresql",
                                     tests=Path("tests/connectors"))

writes `connectors/billing.py`, one file shaped like `connectors/policy.py` (docstring,
declaration, a dataset, its search), and `tests/connectors/test_billing_conformance.py`, a
`ConformanceSuite` that creates the dataset's table (or collection and indexes), seeds a subject,
his household and a heavy subject, and runs the kit. The skeleton passes the kit as written; the
engineer then replaces the example table with the system's own, keeping the test green.
The connector still has to be named in the package's `dsar.connectors` entry points
(`entry_point(name, destination)` gives the line).
"""

from pathlib import Path
from typing import Literal

from connectors.scaffold._names import check_connector_name
from connectors.scaffold._templates import connector_source, test_source

StoreKind = Literal["postgresql", "mongodb"]

__all__ = ["StoreKind", "check_connector_name", "entry_point", "module_path", "write_connector_skeleton"]


def module_path(name: str, destination: Path) -> str:
    """The dotted name the connector module will be imported by: `pkg.sub.name` when `destination` is
    a package (has `__init__.py`, up the tree), plain `name` otherwise."""
    parts = [name]
    folder = destination.resolve()
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def entry_point(name: str, destination: Path) -> str:
    """The line to add under `[project.entry-points."dsar.connectors"]` in pyproject.toml."""
    return f'{name} = "{module_path(name, destination)}:connector"'


def write_connector_skeleton(
    name: str, destination: Path, store: StoreKind, *, tests: Path | None = None
) -> list[Path]:
    """Write `<destination>/<name>.py` and `<tests or destination>/test_<name>_conformance.py`.

    Raises ValueError for a name that cannot be a connector's (see `check_connector_name`) or an
    unknown store, and FileExistsError when either file exists. Folders are created as needed.
    Returns the paths written, the connector first.
    """
    check_connector_name(name)
    if store not in ("postgresql", "mongodb"):
        raise ValueError(f"store must be 'postgresql' or 'mongodb', not {store!r}")
    tests = tests or destination
    connector_file = destination / f"{name}.py"
    test_file = tests / f"test_{name}_conformance.py"
    for path in (connector_file, test_file):
        if path.exists():
            raise FileExistsError(f"{path} already exists")
    destination.mkdir(parents=True, exist_ok=True)
    tests.mkdir(parents=True, exist_ok=True)
    module = module_path(name, destination)
    connector_file.write_text(connector_source(name, store), encoding="utf-8")
    test_file.write_text(test_source(name, store, module), encoding="utf-8")
    return [connector_file, test_file]
