"""The result table the benchmark scripts print: each figure beside its reference, the ratio, the target, met."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    measurement: str
    value: str
    reference: str
    ratio: float | None
    target: str
    met: bool | None


@dataclass(frozen=True)
class Target:
    text: str
    # Of the ratio value / reference; None: a reference row, not judged.
    check: Callable[[float], bool] | None


REFERENCE = Target("reference", None)


def within(fraction: float) -> Target:
    """A ratio within ``fraction`` of 1 (``within(0.03)``: "within 3%")."""
    return Target(f"within {fraction * 100:g}%", lambda r: abs(r - 1.0) <= fraction)


def ratio_row(measurement: str, value: float, reference: float, unit: str, target: Target, digits: int = 3) -> Row:
    ratio = value / reference if reference else math.nan
    met = None if target.check is None else math.isfinite(ratio) and target.check(ratio)
    return Row(measurement, f"{value:.{digits}f} {unit}", f"{reference:.{digits}f} {unit}", ratio, target.text, met)


def table(rows: list[Row]) -> str:
    head = ("measurement", "value", "reference", "ratio", "target", "met")
    cells = [head] + [(r.measurement, r.value, r.reference, "-" if r.ratio is None else f"{r.ratio:.3f}", r.target,
                       "-" if r.met is None else ("yes" if r.met else "no")) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in cells)
