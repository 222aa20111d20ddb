"""`write_connector_skeleton`: names it refuses, what it writes, and that what it writes passes the kit.

The decisive tests generate a skeleton in a temporary folder and run pytest on its generated
conformance test in a subprocess, unchanged, against a real PostgreSQL (and an embedded MongoDB):
the kit creates and seeds the database itself.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.scaffold import check_connector_name, entry_point, module_path, write_connector_skeleton

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("Billing", "lower_snake_case"),
        ("1billing", "lower_snake_case"),
        ("bill-ing", "lower_snake_case"),
        ("", "lower_snake_case"),
        ("class", "keyword"),
        ("json", "standard-library"),
        ("policy", "already installed"),
        ("sdk", "connectors.sdk already exists"),
        ("scaffold", "connectors.scaffold already exists"),
    ],
)
def test_names_that_cannot_be_a_connector_are_refused(name: str, reason: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=reason):
        write_connector_skeleton(name, tmp_path, "postgresql")
    assert list(tmp_path.iterdir()) == []


def test_existing_files_and_unknown_stores_are_refused(tmp_path: Path) -> None:
    assert check_connector_name("billing") == "billing"
    with pytest.raises(ValueError, match="store must be"):
        write_connector_skeleton("billing", tmp_path, "oracle")  # type: ignore[arg-type]
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_billing_conformance.py").write_text("# mine\n")
    with pytest.raises(FileExistsError):
        write_connector_skeleton("billing", tmp_path, "postgresql", tests=tmp_path / "tests")
    assert not (tmp_path / "billing.py").exists()


def test_module_path_and_entry_point_follow_the_package(tmp_path: Path) -> None:
    package = tmp_path / "acme" / "connectors"
    package.mkdir(parents=True)
    (tmp_path / "acme" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    paths = write_connector_skeleton("billing", package, "postgresql", tests=tmp_path / "tests")
    assert paths == [package / "billing.py", tmp_path / "tests" / "test_billing_conformance.py"]
    assert module_path("billing", package) == "acme.connectors.billing"
    assert entry_point("billing", package) == 'billing = "acme.connectors.billing:connector"'
    assert "from acme.connectors import billing\n" in paths[1].read_text()
    assert module_path("billing", tmp_path) == "billing"


@pytest.mark.parametrize("store", ["postgresql", "mongodb"])
def test_the_skeleton_is_lint_and_type_clean(store: str, tmp_path: Path) -> None:
    connector, test = write_connector_skeleton("billing", tmp_path, store)  # type: ignore[arg-type]
    config = ["--config", str(REPO / "pyproject.toml"), "--no-cache"]
    lint = subprocess.run([BIN / "ruff", "check", *config, "--ignore", "I001", connector, test],
                          capture_output=True, text=True)  # fmt: skip
    assert lint.returncode == 0, lint.stdout
    types = subprocess.run([BIN / "mypy", "--strict", "--no-incremental", "--ignore-missing-imports", connector],
                           capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert types.returncode == 0, types.stdout


def run_generated(test: Path) -> subprocess.CompletedProcess[str]:
    """pytest on the generated file alone, outside the project's configuration, warnings as errors."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    return subprocess.run(
        [BIN / "pytest", "-p", "no:cacheprovider", "-W", "error", "-o", "asyncio_default_fixture_loop_scope=function",
         "-q", test.name],
        capture_output=True, text=True, cwd=test.parent, env=env, timeout=600,
    )  # fmt: skip


@pytest.mark.integration
def test_a_postgresql_skeleton_passes_the_kit_unchanged(tmp_path: Path) -> None:
    _, test = write_connector_skeleton("acme_billing", tmp_path, "postgresql")
    result = run_generated(test)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "8 passed" in result.stdout


@pytest.mark.integration
def test_a_mongodb_skeleton_passes_the_kit_unchanged(tmp_path: Path) -> None:
    _, test = write_connector_skeleton("acme_crm", tmp_path, "mongodb")
    result = run_generated(test)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "8 passed" in result.stdout  # not "skipped": an embedded SecantusDB is installed here
