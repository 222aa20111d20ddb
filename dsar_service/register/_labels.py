"""Words for internal codes, and titles for datasets: what makes an export readable by a person.

`labels.json` beside this module maps `system/dataset/field` to {code: label} (care categories,
claim statuses, dunning steps, policy statuses, roles, channels...), `system/dataset` to a
title and an optional note, and each system to what it holds, in words. A code without a label
is left as it is, with an empty label.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType

__all__ = ["DatasetLabel", "Labels", "load_labels"]


@dataclass(frozen=True)
class DatasetLabel:
    """A dataset's title for a person, and what they should know to read it."""

    title: str
    note: str = ""


@dataclass(frozen=True)
class Labels:
    """The decode table and dataset titles, by system and dataset."""

    version: str
    codes: Mapping[str, Mapping[str, str]]  # "system/dataset/field" -> {code: label}
    datasets: Mapping[str, DatasetLabel]  # "system/dataset" -> title
    systems: Mapping[str, str]  # system -> what it holds, in words

    def coded_fields(self, system: str, dataset: str) -> dict[str, Mapping[str, str]]:
        """The fields of `dataset` that hold codes, each with its code -> label table."""
        prefix = f"{system}/{dataset}/"
        return {key.removeprefix(prefix): table for key, table in self.codes.items() if key.startswith(prefix)}

    def system(self, system: str, fallback: str = "") -> str:
        """What a source system holds, in words (the fallback, or its name, when there is none)."""
        return self.systems.get(system) or fallback or system

    def dataset(self, system: str, dataset: str, fallback: str = "") -> DatasetLabel:
        """The dataset's title (the fallback, or its name in words, when there is none)."""
        found = self.datasets.get(f"{system}/{dataset}")
        return found or DatasetLabel(fallback or dataset.replace("_", " ").capitalize())


def load_labels(path: Path | None = None) -> Labels:
    """Read the labels (default: the labels.json shipped with this package)."""
    source = (
        path.read_text("utf-8") if path else resources.files(__package__).joinpath("labels.json").read_text("utf-8")
    )
    raw = json.loads(source)
    return Labels(
        version=str(raw["version"]),
        codes=MappingProxyType({key: MappingProxyType(dict(table)) for key, table in raw["codes"].items()}),
        datasets=MappingProxyType(
            {key: DatasetLabel(item["title"], item.get("note", "")) for key, item in raw["datasets"].items()}
        ),
        systems=MappingProxyType(dict(raw.get("systems", {}))),
    )
