"""Settings → the environment of a child process (`python -m dsar_service.cli …`).

A child reads its settings as the CLI does (`Settings.load()`): from the environment, and from
`<DSAR_STATE_DIR>/stack.toml` when there is one. The helpers here write every setting of the
test's Settings object as a `DSAR_…` variable and point DSAR_STATE_DIR at a folder without a
settings file, so a child sees exactly what the test decided, nothing inherited.
"""

import base64
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from dsar_common.settings import KafkaSettings, Settings


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def settings_variables(settings: Settings) -> dict[str, str]:
    """Every value of `settings` as the `DSAR_…` variable `Settings.load()` reads it from."""
    variables: dict[str, str] = {}
    for item in fields(Settings):
        if item.name == "kafka":
            continue
        variables[f"DSAR_{item.name.upper()}"] = _text(getattr(settings, item.name))
    for item in fields(KafkaSettings):
        variables[f"DSAR_KAFKA_{item.name.upper()}"] = _text(getattr(settings.kafka, item.name))
    return variables


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment without any DSAR_ variable, plus every setting of `settings`.

    `settings.state_dir` must not hold a stack.toml (it would be read under the environment).
    """
    if (settings.state_dir / "stack.toml").exists():
        raise ValueError(f"{settings.state_dir} holds a stack.toml: a child would read it")
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("DSAR_")}
    return {**inherited, **settings_variables(settings), "PYTHONUNBUFFERED": "1"}


def with_known(settings: Settings, **values: Any) -> Settings:
    """`settings` with those of `values` that are settings of this version; the others are ignored.

    For limits a test must lift when the version under test has them (rate limits, say).
    """
    names = {item.name for item in fields(Settings)}
    return settings.with_values(**{k: v for k, v in values.items() if k in names})


def empty_state_dir(folder: Path) -> Path:
    """An owner-only folder (made if missing): a child's DSAR_STATE_DIR, a log folder."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder
