"""The requester's side of age: identities made by age-keygen or pyrage open archives the service encrypts."""

import shutil
import stat
from pathlib import Path

import pytest

from dsar_service.client import AgeError, decrypt_file, generate_identity, parse_identity
from dsar_service.crypto import encrypt, parse_recipient

PLAINTEXT = b"PK\x03\x04 a zip, say" * 10_000


def _without_age_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)


@pytest.mark.parametrize("tools", ["age commands", "pyrage"])
async def test_an_identity_decrypts_what_the_service_encrypted_to_it(
    tools: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if tools == "pyrage":
        _without_age_commands(monkeypatch)
    elif not (shutil.which("age") and shutil.which("age-keygen")):
        pytest.skip("the age commands are not installed")
    identity = await generate_identity()
    identity_file = tmp_path / "identity.txt"
    identity.write(identity_file)
    source, target = tmp_path / "archive.age", tmp_path / "archive.zip"
    source.write_bytes(encrypt(PLAINTEXT, [parse_recipient(identity.recipient)]))

    await decrypt_file(source, target, identity_file)

    assert target.read_bytes() == PLAINTEXT
    assert stat.S_IMODE(identity_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert parse_identity(identity_file.read_text()) == identity
    assert identity.secret not in repr(identity)


@pytest.mark.parametrize("tools", ["age commands", "pyrage"])
async def test_another_identity_cannot_decrypt(tools: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if tools == "pyrage":
        _without_age_commands(monkeypatch)
    intended, other = await generate_identity(), await generate_identity()
    other.write(tmp_path / "other.txt")
    (tmp_path / "archive.age").write_bytes(encrypt(PLAINTEXT, [parse_recipient(intended.recipient)]))
    with pytest.raises(AgeError) as caught:
        await decrypt_file(tmp_path / "archive.age", tmp_path / "out.zip", tmp_path / "other.txt")
    assert other.secret not in caught.value.message


def test_text_without_an_identity_is_refused() -> None:
    with pytest.raises(AgeError, match="did not print an identity"):
        parse_identity("# public key: age1abc\n")
