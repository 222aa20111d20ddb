"""The requester's side of age: make an identity (key pair), and decrypt an archive with it.

The service only ever encrypts (dsar_service.crypto); a requester uses their own age tool. For the
demo and for tests, this module uses what is there, in order: the `age-keygen` / `age` commands
(the reference implementation), else pyrage (an independent implementation, installed with the
`dev` extra). Secrets never appear in messages or reprs.
"""

import asyncio
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ._errors import ClientError


class AgeError(ClientError):
    """No age implementation is available, or one failed (the message never holds a key)."""


@dataclass(frozen=True)
class AgeIdentity:
    """An age X25519 key pair: `secret` (AGE-SECRET-KEY-1…) and its `recipient` (age1…)."""

    recipient: str
    secret: str = field(repr=False)

    def write(self, path: Path) -> None:
        """Write an identity file as `age-keygen` does, owner-only (0600), replacing `path`."""
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"# created: {created}\n# public key: {self.recipient}\n{self.secret}\n"
        temp = path.with_name(f".{path.name}.tmp")
        descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        os.replace(temp, path)


def parse_identity(text: str) -> AgeIdentity:
    """The identity in `age-keygen` output (the public key is read from its `# public key:` comment)."""
    secret = next((line.strip() for line in text.splitlines() if line.startswith("AGE-SECRET-KEY-1")), "")
    recipient = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("# public key:")), ""
    )
    if not secret or not recipient.startswith("age1"):
        raise AgeError("age-keygen did not print an identity with its public key")
    return AgeIdentity(recipient=recipient, secret=secret)


async def generate_identity() -> AgeIdentity:
    """A fresh X25519 identity, from `age-keygen` if installed, else from pyrage."""
    keygen = shutil.which("age-keygen")
    if keygen:
        output = await _run([keygen], b"")
        return parse_identity(output.decode())
    try:
        from pyrage import x25519
    except ImportError:
        raise AgeError("no age implementation: install `age` or the pyrage package") from None
    identity = x25519.Identity.generate()
    return AgeIdentity(recipient=str(identity.to_public()), secret=str(identity))


async def decrypt_file(source: Path, target: Path, identity_file: Path) -> None:
    """Decrypt the age file `source` into `target` (0600) with the identity in `identity_file`."""
    age = shutil.which("age")
    if age:
        await _run([age, "--decrypt", "--identity", str(identity_file), "--output", str(target), str(source)], b"")
        os.chmod(target, 0o600)
        return
    await asyncio.to_thread(_decrypt_with_pyrage, source, target, identity_file)


def _decrypt_with_pyrage(source: Path, target: Path, identity_file: Path) -> None:
    try:
        import pyrage
        from pyrage import x25519
    except ImportError:
        raise AgeError("no age implementation: install `age` or the pyrage package") from None
    identity = parse_identity(identity_file.read_text())
    try:
        plaintext = pyrage.decrypt(source.read_bytes(), [x25519.Identity.from_str(identity.secret)])
    except pyrage.DecryptError:
        raise AgeError("the archive could not be decrypted with this identity") from None
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(plaintext)


async def _run(argv: list[str], stdin: bytes) -> bytes:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output, errors = await process.communicate(stdin)
    if process.returncode != 0:
        reason = errors.decode(errors="replace").strip().splitlines()
        raise AgeError(f"{Path(argv[0]).name} failed: {reason[-1] if reason else f'exit {process.returncode}'}")
    return output
