"""The one configuration object of dsar, read once from the environment and a settings file.

Every value has an environment variable (`DSAR_…`) and a key of the same name, lower-case and
without the prefix, in a TOML file. The environment wins over the file. The file is the one named
by `DSAR_CONFIG`, else `<state dir>/stack.toml` when `dsar stack up` wrote one. Only the CLI calls
`Settings.load()`; everything else is handed the object.
"""

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# Environment variables of the dsar family that are read elsewhere, not settings of this object.
NOT_SETTINGS = frozenset({"DSAR_CONFIG", "DSAR_STACK_POSTGRES_URL"})


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class KafkaSettings:
    """How to reach the Kafka cluster (plaintext on loopback, TLS and SASL in production)."""

    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    # How long a fetch may wait at the broker for records (Kafka's fetch.max.wait.ms). A Kafka
    # broker answers as soon as a record is there, so this bounds idle polling, not latency.
    # The embedded stack's broker (Tansu) answers a fetch over several partitions only when the
    # wait is over: the stack sets a short one (dsar_service/stack, TANSU_FETCH_WAIT_MS).
    fetch_wait_ms: int = 500


@dataclass(frozen=True)
class Settings:
    """Everything configurable. See the README's table for each value's meaning."""

    state_dir: Path = Path(".dsar")
    # The service
    database_url: str = "postgresql://postgres@127.0.0.1:5432/dsar"
    listen: str = "127.0.0.1:50051"
    server: str = "127.0.0.1:50051"
    insecure: bool = False
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    authz_policy_file: str = ""
    master_key: bytes = field(default=b"", repr=False)
    topic_prefix: str = "dsar"
    system_timeout_seconds: float = 120.0
    attempt_deadline_seconds: float = 3600.0
    max_attempts: int = 3
    assembly_lease_seconds: float = 60.0
    parts_ahead_disk_bytes: int = 32 * 1024 * 1024
    archive_ttl_days: int = 30
    request_retention_days: int = 365
    purge_interval_seconds: float = 3600.0
    metrics_listen: str = ""
    health_listen: str = ""
    trace_export: str = ""
    log_format: str = "json"
    caller_requests_per_minute: int = 120
    subject_requests_per_day: int = 5
    # The connectors
    connector_key: bytes = field(default=b"", repr=False)
    source_postgres_url: str = "postgresql://postgres@127.0.0.1:5432"
    source_mongodb_url: str = "mongodb://127.0.0.1:27017"
    heartbeat_seconds: int = 5
    # The client (dsar submit, status, …)
    server_ca_file: str = ""
    client_cert_file: str = ""
    client_key_file: str = ""
    kafka: KafkaSettings = field(default_factory=KafkaSettings)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Read the settings file (if any) and the environment, environment first."""
        env = os.environ if environ is None else environ
        state_dir = Path(env.get("DSAR_STATE_DIR", ".dsar"))
        file_values = _read_file(env.get("DSAR_CONFIG"), state_dir)
        values: dict[str, str] = {**file_values}
        for key, value in env.items():
            if key.startswith("DSAR_") and key not in NOT_SETTINGS:
                values[key[len("DSAR_") :].lower()] = value
        return cls.from_values(values)

    @classmethod
    def from_values(cls, values: Mapping[str, str]) -> "Settings":
        """Build from flat `name: text` pairs; Kafka's are named `kafka_<field>`."""
        known = {f.name for f in fields(cls)} | {f"kafka_{f.name}" for f in fields(KafkaSettings)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
        top: dict[str, Any] = {}
        kafka: dict[str, Any] = {}
        for name, text in values.items():
            if name.startswith("kafka_") and name != "kafka":
                kafka[name[len("kafka_") :]] = _cast(KafkaSettings, name[len("kafka_") :], text, "DSAR_KAFKA_")
            else:
                top[name] = _cast(cls, name, text)
        return cls(**top, kafka=KafkaSettings(**kafka))

    def with_values(self, **changes: Any) -> "Settings":
        """A copy with some values changed (for tests and the CLI's flags)."""
        from dataclasses import replace

        return replace(self, **changes)

    def require_master_key(self) -> bytes:
        if len(self.master_key) != 32:
            raise SettingsError("DSAR_MASTER_KEY must be 32 bytes, base64-encoded")
        return self.master_key

    def require_connector_key(self) -> bytes:
        if len(self.connector_key) != 32:
            raise SettingsError("DSAR_CONNECTOR_KEY must be an X25519 private key: 32 bytes, base64-encoded")
        return self.connector_key


def _read_file(explicit: str | None, state_dir: Path) -> dict[str, str]:
    path = Path(explicit) if explicit else state_dir / "stack.toml"
    if not path.exists():
        if explicit:
            raise SettingsError(f"DSAR_CONFIG names {path}, which does not exist")
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path} is not valid TOML: {error}") from error
    return {str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in data.items()}


def _cast(cls: type, name: str, text: str, variable: str = "DSAR_") -> Any:
    kind = {f.name: f.type for f in fields(cls)}[name]
    try:
        if kind in (bool, "bool"):
            if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("1", "true", "yes")
        if kind in (int, "int"):
            return int(text)
        if kind in (float, "float"):
            return float(text)
        if kind in (bytes, "bytes"):
            return base64.b64decode(text, validate=True) if text else b""
        if kind in (Path, "Path"):
            return Path(text)
        return text
    except (ValueError, binascii.Error) as error:
        raise SettingsError(f"{variable}{name.upper()} is malformed") from error
