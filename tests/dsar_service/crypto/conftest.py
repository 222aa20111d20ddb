"""Fixtures: one identity per recipient kind, and the independent decryptors to check with."""

import shutil
from collections.abc import Callable

import pyrage
import pytest
from age_identities import Identity, age_cli, age_identity, ssh_identity


@pytest.fixture(scope="session")
def identities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Identity]:
    """One identity per supported recipient kind: "age", "ed25519", "rsa"."""
    directory = tmp_path_factory.mktemp("identities")
    return {
        "age": age_identity(directory),
        "ed25519": ssh_identity(directory, "ed25519"),
        "rsa": ssh_identity(directory, "rsa"),
    }


@pytest.fixture(scope="session")
def decryptors() -> list[Callable[[bytes, Identity], bytes]]:
    """Independent age decryptors: the reference `age` CLI (when installed) and pyrage (rage)."""
    found: list[Callable[[bytes, Identity], bytes]] = [
        lambda ciphertext, identity: pyrage.decrypt(ciphertext, [identity.pyrage_identity()])
    ]
    if shutil.which("age"):
        found.append(age_cli)
    return found
