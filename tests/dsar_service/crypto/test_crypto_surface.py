"""The crypto package's public surface, and its boundary: no transport or database imports."""

import ast
from pathlib import Path

import dsar_service.crypto as crypto

FORBIDDEN = {"grpc", "aiokafka", "asyncpg"}


def test_exports_exist_once() -> None:
    assert len(set(crypto.__all__)) == len(crypto.__all__)
    for name in crypto.__all__:
        assert getattr(crypto, name) is not None


def test_imports_nothing_from_the_transports() -> None:
    for path in Path(crypto.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            assert not {n.split(".")[0] for n in names} & FORBIDDEN, path.name
