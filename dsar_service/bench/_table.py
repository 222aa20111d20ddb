"""The benchmark's result table: one row per figure, with its reference, ratio and target.

Machines are shared and noisy, so a figure is judged against a reference measured in the same
run (a plain read of the same rows, SHA-256 of the same bytes, the same process at another size)
whenever there is one; the ratio is what the target applies to. Absolute targets (a latency, a
memory ceiling) are judged on the figure itself.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Check = Callable[[float], bool]
ORDER = ("large", "tenth", "memory", "many", "crypto")


@dataclass(frozen=True)
class Row:
    """One figure. `judged` is what the target applies to: the ratio if there is one, else the value."""

    scenario: str
    measure: str
    value: str
    reference: str = ""
    ratio: float | None = None
    target: str = ""
    check: Check | None = None
    judged: float | None = None

    @property
    def verdict(self) -> str:
        if self.check is None or self.judged is None:
            return ""
        return "ok" if self.check(self.judged) else "MISS"


@dataclass
class Table:
    """Rows in the order they were added; `lines()` renders them aligned."""

    rows: list[Row] = field(default_factory=list)

    def add(
        self,
        scenario: str,
        measure: str,
        value: str,
        *,
        reference: str = "",
        ratio: float | None = None,
        target: str = "",
        check: Check | None = None,
        judged: float | None = None,
    ) -> None:
        """Add a row; with `check`, the verdict judges `judged`, or the ratio when `judged` is None."""
        self.rows.append(
            Row(scenario, measure, value, reference, ratio, target, check, ratio if judged is None else judged)
        )

    @property
    def misses(self) -> list[Row]:
        """Rows whose target was missed."""
        return [row for row in self.rows if row.verdict == "MISS"]

    def lines(self) -> list[str]:
        """The rows aligned under a header, grouped by scenario in ORDER (in insertion order within one)."""
        rank = {name: index for index, name in enumerate(ORDER)}
        rows = sorted(self.rows, key=lambda row: rank.get(row.scenario, len(ORDER)))
        header = ("scenario", "measure", "value", "reference", "ratio", "target", "")
        body = [(r.scenario, r.measure, r.value, r.reference, _ratio(r.ratio), r.target, r.verdict) for r in rows]
        return aligned([header, *body])


def _ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def aligned(rows: Sequence[Sequence[str]]) -> list[str]:
    """The rows as lines of columns two spaces apart, the first one underlined."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths).rstrip())
    return lines


def at_most(limit: float) -> Check:
    return lambda value: value <= limit


def at_least(limit: float) -> Check:
    return lambda value: value >= limit


def seconds(value: float) -> str:
    """`0.123 s`, `12.3 s`, for a duration."""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def mebibytes(value: float) -> str:
    return f"{value / (1 << 20):.1f} MiB"


def rate(value: float, unit: str) -> str:
    """`12,345 records/s`, `45.6 MB/s`."""
    if math.isinf(value) or math.isnan(value):
        return f"- {unit}"
    return f"{value:,.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"


def ratio_of(value: float, reference: float) -> float | None:
    """value / reference, None when the reference is zero."""
    return value / reference if reference > 0 else None


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (fraction in (0, 1]) of a non-empty sequence."""
    ordered = sorted(values)
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index]
