"""An age identity to decrypt archives with, and a decryptor: the `age` CLI, or pyrage without it."""

import shutil
import subprocess
from collections.abc import Callable

import pyrage
import pytest
from archive_support import AgeKey


@pytest.fixture(scope="session")
def age_key(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    path = tmp_path_factory.mktemp("archive-key") / "identity.txt"
    if shutil.which("age-keygen"):
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    else:
        path.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    secret = next(line for line in path.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    public = str(pyrage.x25519.Identity.from_str(secret).to_public())
    return AgeKey(public, path, secret)


@pytest.fixture(scope="session")
def age_decrypt(age_key: AgeKey) -> Callable[[bytes], bytes]:
    """Decrypt with the reference `age` CLI when installed, and check pyrage agrees."""

    def decrypt(ciphertext: bytes) -> bytes:
        plaintext = pyrage.decrypt(ciphertext, [pyrage.x25519.Identity.from_str(age_key.secret)])
        if shutil.which("age"):
            command = ["age", "-d", "-i", str(age_key.identity_file)]
            result = subprocess.run(command, input=ciphertext, capture_output=True)
            assert result.returncode == 0, result.stderr.decode()
            assert result.stdout == plaintext
        assert isinstance(plaintext, bytes)
        return plaintext

    return decrypt
