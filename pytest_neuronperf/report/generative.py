"""What the reports say about a generative (streaming) model: the table columns that apply to its reports and
the text of their cells.

Pure functions of report dicts (and of the shown figures, :mod:`~pytest_neuronperf.report.figures`), shared by
the plain table, the terminal summary, the Markdown summary and the HTML report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pytest_neuronperf.report.figures import Figures, shown_change, shown_value
from pytest_neuronperf.report.serving import number
from pytest_neuronperf.spec.metrics import BY_NAME

Report = Mapping[str, Any]

# The gated metrics every streaming report shows, in order; goodput only where an SLO has per-request objectives.
TOKEN_METRICS: Final[tuple[str, ...]] = ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "tokens_per_s")
GOODPUT_METRIC: Final = "goodput"
# Shown only where some request yielded no token: a column of zeros says nothing.
FAILED_COL: Final = "failed_requests"

# What people read for each metric: a title and its unit.
TITLES: Final[Mapping[str, tuple[str, str]]] = {
    "ttft_p50": ("TTFT p50", "ms"), "ttft_p99": ("TTFT p99", "ms"),
    "tpot_p50": ("TPOT p50", "ms"), "tpot_p99": ("TPOT p99", "ms"),
    "tokens_per_s": ("Output tokens", "/s"), "goodput": ("Goodput", "req/s"),
}


def is_streaming(report: Report) -> bool:
    """The report measured a generative model (``streaming=True``): it names its request shape."""
    return report.get("generation") is not None


def has_goodput(report: Report) -> bool:
    return number(report.get("goodput")) is not None


def has_failed(report: Report) -> bool:
    return (number(report.get(FAILED_COL)) or 0) > 0


def generative_metrics(reports: Sequence[Report]) -> list[str]:
    """The gated metrics (:data:`~pytest_neuronperf.spec.metrics.METRICS` names) whose figures the tables of
    ``reports`` show: none unless some report is streaming."""
    if not any(is_streaming(r) for r in reports):
        return []
    return [*TOKEN_METRICS, *([GOODPUT_METRIC] if any(has_goodput(r) for r in reports) else [])]


def shows_failed(reports: Sequence[Report]) -> bool:
    return any(is_streaming(r) for r in reports) and any(has_failed(r) for r in reports)


def generative_columns(reports: Sequence[Report]) -> list[str]:
    """The plain table's extra columns (report fields) that apply to ``reports``: none unless some is streaming."""
    cols = [BY_NAME[m].report_field for m in generative_metrics(reports)]
    return cols + ([FAILED_COL] if shows_failed(reports) else [])


def title(metric: str) -> str:
    """``TTFT p50 (ms)``, ``Output tokens/s``: a metric's column title."""
    name, unit = TITLES[metric]
    return f"{name}{unit}" if unit.startswith("/") else f"{name} ({unit})"


def figure_text(report: Report, shown: Figures, metric: str) -> str | None:
    """``20.2 (+3.1%)``: the shown figure of ``metric`` and, where a baseline was compared, the change; None
    for a report that is not streaming or has no such figure."""
    if not is_streaming(report):
        return None
    value = shown.value(metric)
    if value is None:
        return None
    change = shown.change(metric)
    return shown_value(value) + (f" ({shown_change(change)})" if change is not None else "")


def failed_text(report: Report) -> str | None:
    """How many requests yielded no token, of a streaming report; None otherwise."""
    if not is_streaming(report):
        return None
    failed = number(report.get(FAILED_COL))
    return None if failed is None else f"{failed:g}"

