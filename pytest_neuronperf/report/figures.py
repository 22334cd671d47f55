"""The figures every report shows for a configuration, defined once. Each gated metric (throughput, p50, p99) is
shown as the gate's own estimate: the geometric mean of its per-round values over every round the verdict used
(the first rounds and any rounds the sequential gate added), and the baseline's over every stored round it was
compared with. The change beside them is the gate's, so it always equals current / baseline - 1. A
configuration without a judgement (no baseline, nothing compared) shows the same estimate over its own rounds,
with no baseline (a report without round summaries shows its own field). The terminal table, Markdown, HTML
(table and bar chart), CSV, the results file and ``npf show`` all take their numbers from here, and format
them with the same two functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from pytest_neuronperf.gate.wording import format_change, format_number
from pytest_neuronperf.spec.fields import ROUNDS_KEY
from pytest_neuronperf.spec.metrics import METRICS, Metric

# The figure of each gated metric, as the reports' columns and the results file name it: the round summary's field.
VALUE_KEYS: Final[Mapping[str, str]] = {m.name: m.round_value for m in METRICS}


def value_key(metric: str) -> str:
    return VALUE_KEYS[metric]


def baseline_key(metric: str) -> str:
    return f"baseline_{VALUE_KEYS[metric]}"


def change_key(metric: str) -> str:
    return f"{metric}_change"


METRIC_FIGURE_KEYS: Final[tuple[str, ...]] = tuple(
    key for m in METRICS for key in (value_key(m.name), baseline_key(m.name), change_key(m.name)))
FIGURE_KEYS: Final[tuple[str, ...]] = (*METRIC_FIGURE_KEYS, "judged_rounds", "added_rounds", "baseline_rounds")
"""Every key of :meth:`Figures.as_dict`, in column order."""


@dataclass(frozen=True)
class Figures:
    """What the reports show for one configuration (None where there is nothing to show).

    Each metric's figure, its baseline's and the change are attributes named by
    :data:`METRIC_FIGURE_KEYS` (``throughput``, ``baseline_p99_ms``, ``tpot_p50_change``, ...).
    """

    values: Mapping[str, float | None] = field(default_factory=dict)
    # Rounds of this run the figures pool, how many of them the sequential gate added after the
    # first look, and the baseline's rounds (None without a baseline).
    judged_rounds: int = 0
    added_rounds: int = 0
    baseline_rounds: int | None = None

    def __getattr__(self, name: str) -> float | None:
        if name in _METRIC_KEYS:
            return self.values.get(name)
        raise AttributeError(name)

    def value(self, metric: str) -> float | None:
        return getattr(self, value_key(metric))  # type: ignore[no-any-return]

    def baseline(self, metric: str) -> float | None:
        return getattr(self, baseline_key(metric))  # type: ignore[no-any-return]

    def change(self, metric: str) -> float | None:
        return getattr(self, change_key(metric))  # type: ignore[no-any-return]

    def as_dict(self) -> dict[str, Any]:
        return {**{k: self.values.get(k) for k in METRIC_FIGURE_KEYS}, "judged_rounds": self.judged_rounds,
                "added_rounds": self.added_rounds, "baseline_rounds": self.baseline_rounds}

    def rounds_text(self) -> str:
        """``3``, or ``3+2`` when the gate added 2 rounds to the first 3."""
        if not self.judged_rounds:
            return ""
        first = self.judged_rounds - self.added_rounds
        return f"{first}+{self.added_rounds}" if self.added_rounds else str(self.judged_rounds)


_METRIC_KEYS: Final = frozenset(METRIC_FIGURE_KEYS)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def geometric_mean(values: Sequence[object]) -> float | None:
    """The gate's estimate of a side with several rounds; None unless every value is positive and finite."""
    numbers = [_number(v) for v in values]
    if not numbers or any(v is None or v <= 0 for v in numbers):
        return None
    return math.exp(sum(math.log(v) for v in numbers if v is not None) / len(numbers))


def round_values(rounds: object, spec: Metric) -> list[object]:
    if not isinstance(rounds, list):
        return []
    return [r.get(spec.round_value) for r in rounds if isinstance(r, Mapping)]


def _judgement(outcome: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    return next((j for j in outcome.get("judgements") or [] if isinstance(j, Mapping) and j.get("metric") == metric),
                None)


def figures_of(report: Mapping[str, Any], outcome: Mapping[str, Any], first_rounds: int | None = None) -> Figures:
    """The figures of one configuration from its report and outcome (as the results file holds them).

    ``first_rounds``: the rounds before the gate's first look (the results file's ``judged_with``);
    rounds beyond them are the ones the sequential gate added.
    """
    values: dict[str, Any] = {}
    rounds = report.get(ROUNDS_KEY)
    n_rounds = len(rounds) if isinstance(rounds, list) else 0
    baseline_rounds: int | None = None
    for spec in METRICS:
        j = _judgement(outcome, spec.name)
        if j is not None:
            values[value_key(spec.name)] = _number(j.get("current"))
            values[baseline_key(spec.name)] = _number(j.get("baseline"))
            values[change_key(spec.name)] = _number(j.get("change"))
            # A paired comparison judges only complete pairs: the rounds the verdict used.
            used = j.get("current_rounds")
            if isinstance(used, int) and not isinstance(used, bool) and used > 0:
                n_rounds = used
            base = j.get("baseline_rounds")
            if isinstance(base, int) and not isinstance(base, bool):
                baseline_rounds = base
        elif isinstance(rounds, list) and rounds:
            values[value_key(spec.name)] = geometric_mean(round_values(rounds, spec))
        else:
            # A report without round summaries (written by hand, or by an old version): its own field.
            values[value_key(spec.name)] = _number(report.get(spec.report_field))
    extra = max(0, n_rounds - first_rounds) if first_rounds else 0
    return Figures(values, judged_rounds=n_rounds, added_rounds=extra, baseline_rounds=baseline_rounds)


def stored_figures(rounds: Sequence[Mapping[str, object]]) -> Figures:
    """The figures of a stored baseline: what the gate compares a run with (``npf show``)."""
    values: dict[str, Any] = {value_key(spec.name): geometric_mean(round_values(list(rounds), spec))
                              for spec in METRICS}
    return Figures(values, judged_rounds=len(rounds))


def shown_value(value: float | None) -> str:
    """A figure as every text report prints it."""
    return format_number(value)


def shown_change(value: float | None) -> str:
    """A change as every text report prints it."""
    return format_change(value)
