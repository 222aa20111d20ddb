"""Identities for the decryption checks: age X25519 from `age-keygen`, SSH keys from `ssh-keygen`.

Where a tool is missing, the key is made with pyrage or cryptography and written in the same
file format, so the checks still run against the independent decryptors.
"""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyrage
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


@dataclass(frozen=True)
class Identity:
    """A key pair: the public text the service receives, and the secret key file that decrypts."""

    recipient: str
    path: Path

    def pyrage_identity(self) -> Any:
        data = self.path.read_bytes()
        if data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            return pyrage.ssh.Identity.from_buffer(data)
        secret = next(line for line in data.decode().splitlines() if line.startswith("AGE-SECRET-KEY-"))
        return pyrage.x25519.Identity.from_str(secret)


def age_identity(directory: Path) -> Identity:
    path = directory / "age-identity.txt"
    if shutil.which("age-keygen"):
        subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
        public = subprocess.run(["age-keygen", "-y", str(path)], check=True, capture_output=True, text=True)
        return Identity(public.stdout.strip(), path)
    identity = pyrage.x25519.Identity.generate()
    path.write_text(f"{identity}\n")
    return Identity(str(identity.to_public()), path)


def ssh_identity(directory: Path, kind: str) -> Identity:
    path = directory / f"id_{kind}"
    if shutil.which("ssh-keygen"):
        extra = ["-b", "2048"] if kind == "rsa" else []
        command = ["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", "subject@example", "-f", str(path)]
        subprocess.run(command, check=True, capture_output=True)
        return Identity(path.with_suffix(".pub").read_text().strip(), path)
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return Identity(public.decode() + " subject@example", path)


def age_cli(ciphertext: bytes, identity: Identity) -> bytes:
    result = subprocess.run(["age", "-d", "-i", str(identity.path)], input=ciphertext, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout
