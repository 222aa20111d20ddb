"""`<state dir>/stack.toml`: the settings that `dsar serve`, the connectors and the CLI read from a stack.

Keys are `dsar_common.settings.Settings` field names (Kafka's as `kafka_<field>`), so
`Settings.load()` reads the file as it is. The secrets in it, `master_key` (32 random bytes) and
`connector_key` (an X25519 private key), are made on the first `up` and kept by every later one,
as is the gRPC address: archives sealed, and clients configured, against a running stack stay
valid across restarts. The file is written owner-only (0600), through a rename.
"""

import base64
import binascii
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from dsar_service.stack._net import LOOPBACK, free_port
from dsar_service.stack._processes import write_private
from dsar_service.stack._servers import TANSU_FETCH_WAIT_MS


@dataclass(frozen=True)
class KeptValues:
    """What a stack keeps from one `up` to the next: its two keys and its gRPC address."""

    master_key: bytes
    connector_key: bytes
    grpc_address: str

    @classmethod
    def fresh(cls) -> "KeptValues":
        """New random keys and a free loopback port for the gRPC service."""
        connector_key = X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        return cls(os.urandom(32), connector_key, f"{LOOPBACK}:{free_port()}")

    @classmethod
    def load_or_fresh(cls, path: Path) -> "KeptValues":
        """The values in an existing settings file, each replaced by a fresh one if missing or malformed."""
        fresh = cls.fresh()
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError):
            return fresh
        return cls(
            master_key=_key(data.get("master_key")) or fresh.master_key,
            connector_key=_key(data.get("connector_key")) or fresh.connector_key,
            grpc_address=str(data.get("listen") or fresh.grpc_address),
        )


def write_settings(
    path: Path,
    *,
    kept: KeptValues,
    kafka_bootstrap: str,
    database_url: str,
    source_postgres_url: str,
    source_mongodb_url: str,
) -> None:
    """Write the settings file (0600), unless it already holds exactly this content."""
    values: Mapping[str, str | int | bool] = {
        "kafka_bootstrap": kafka_bootstrap,
        "kafka_fetch_wait_ms": TANSU_FETCH_WAIT_MS,
        "database_url": database_url,
        "source_postgres_url": source_postgres_url,
        "source_mongodb_url": source_mongodb_url,
        "listen": kept.grpc_address,
        "server": kept.grpc_address,
        "insecure": True,
        "master_key": base64.b64encode(kept.master_key).decode(),
        "connector_key": base64.b64encode(kept.connector_key).decode(),
    }
    text = _render(values)
    try:
        if path.read_text() == text:
            os.chmod(path, 0o600)
            return
    except FileNotFoundError:
        pass
    write_private(path, text)


def _render(values: Mapping[str, str | int | bool]) -> str:
    lines = [
        "# Written by `dsar stack up` for the embedded development stack: keys are Settings names.",
        "# insecure = true: plaintext gRPC on loopback. Holds keys: keep it owner-only.",
    ]
    for name, value in values.items():
        # A JSON string of ASCII text is a valid TOML basic string.
        rendered = ("true" if value else "false") if isinstance(value, bool) else json.dumps(value)
        lines.append(f"{name} = {rendered}")
    return "\n".join(lines) + "\n"


def _key(text: object) -> bytes | None:
    """32 bytes from base64 text, else None."""
    if not isinstance(text, str):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error:
        return None
    return raw if len(raw) == 32 else None
