"""What the reports say about serving load and a latency objective (SLO): the table columns that apply to
open-loop and SLO reports, the text of their cells, and which configuration serves the SLO best (by capacity,
goodput or throughput).

Pure functions of report dicts, shared by the plain table, the Markdown summary and the HTML report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pytest_neuronperf.gate.wording import format_number
from pytest_neuronperf.spec import fields
from pytest_neuronperf.spec.matrix import config_text

Report = Mapping[str, Any]

# The plain table's columns for open-loop reports, in order.
OPEN_LOOP_COLS: Final[tuple[str, ...]] = ("offered_rps", "achieved_rps", "service_ms_p99", "wait_ms_p99")
# Shown only where some request was lost: a column of zeros says nothing.
LOSS_COLS: Final[tuple[str, ...]] = ("dropped_requests", "unfinished_requests")
CAPACITY_COLS: Final[tuple[str, ...]] = ("capacity_rps", "capacity_ms_p99")


def number(value: object) -> float | None:
    """A finite number, else None (booleans are no numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def is_open_loop(report: Report) -> bool:
    return number(report.get("offered_rps")) is not None


def has_goodput(report: Report) -> bool:
    """The report counts the requests that met the SLO's per-request objectives (ttft, tpot, e2e)."""
    return number(report.get("goodput")) is not None


def is_searched(report: Report) -> bool:
    """The report holds the result of a capacity search (an SLO without request_rate)."""
    return number(report.get("capacity_rps")) is not None


def has_slo(report: Report) -> bool:
    return bool(report.get("slo"))


def serving_columns(reports: Sequence[Report]) -> list[str]:
    """The plain table's extra columns that apply to ``reports``: none for closed-loop runs without an SLO."""
    cols: list[str] = []
    if any(is_open_loop(r) for r in reports):
        cols += OPEN_LOOP_COLS
        cols += [c for c in LOSS_COLS if any((number(r.get(c)) or 0) > 0 for r in reports)]
        if any(r.get("overloaded") is True for r in reports):
            cols.append("overloaded")
    # An SLO of per-request objectives only has no slo_met: goodput answers it.
    if any(has_slo(r) and r.get("slo_met") is not None for r in reports):
        cols.append("slo_met")
    if any(is_searched(r) for r in reports):
        cols += CAPACITY_COLS
    return cols


def slo_groups(reports: Sequence[Report]) -> list[tuple[str, list[Report]]]:
    """The reports with an SLO, grouped by its text in the order each SLO first appears: configurations are
    only compared under the same objective."""
    groups: dict[str, list[Report]] = {}
    for r in reports:
        if has_slo(r):
            groups.setdefault(str(r["slo"]), []).append(r)
    return list(groups.items())


def best_report(group: Sequence[Report]) -> Report | None:
    """The configuration that serves the SLO best: the highest capacity where a capacity search ran, else the
    highest goodput where the SLO bounds every request (among those whose latency percentiles, if it bounds
    any, met it), else the highest throughput among those whose latency met it; None when none meets it."""
    finished = [r for r in group if r.get("status") == fields.STATUS_OK]
    if any(is_searched(r) for r in group):
        scored = [(number(r.get("capacity_rps")) or 0.0, r) for r in finished if is_searched(r)]
    elif any(has_goodput(r) for r in group):
        scored = [(number(r.get("goodput")) or 0.0, r) for r in finished
                  if has_goodput(r) and r.get("slo_met") is not False]
    else:
        scored = [(number(r.get("throughput_avg")) or 0.0, r) for r in finished if r.get("slo_met") is True]
    scored = [(score, r) for score, r in scored if score > 0]
    if not scored:
        return None
    # max() keeps the first of equals: the earlier configuration of the sweep.
    return max(scored, key=lambda item: item[0])[1]


def best_per_slo(reports: Sequence[Report]) -> list[tuple[str, Report | None]]:
    """Each SLO of the reports, with the configuration that serves it best (None: none meets it)."""
    return [(slo, best_report(group)) for slo, group in slo_groups(reports)]


def rate_text(value: object) -> str:
    return f"{format_number(value)} req/s"


def best_text(report: Report) -> str:
    """What made ``report`` the best: its capacity, or its throughput where no search ran."""
    if is_searched(report):
        return f"capacity {rate_text(report.get('capacity_rps'))}"
    if has_goodput(report):
        return f"goodput {rate_text(report.get('goodput'))}"
    return f"throughput {format_number(report.get('throughput_avg'))}/s"


def load_text(report: Report) -> str | None:
    """``230 → 230``: the offered and achieved rate (req/s) of an open-loop report; None for other reports."""
    if not is_open_loop(report):
        return None
    text = f"{format_number(report.get('offered_rps'))} → {format_number(report.get('achieved_rps'))}"
    return text + " (overloaded)" if report.get("overloaded") is True else text


def capacity_text(report: Report) -> str | None:
    """``156 (p99 5.88 ms)``: the capacity (req/s) at the SLO and the p99 there; None without a search."""
    if not is_searched(report):
        return None
    capacity = number(report.get("capacity_rps")) or 0.0
    if capacity <= 0:
        return "none meets"
    p99 = number(report.get("capacity_ms_p99"))
    return format_number(capacity) + (f" (p99 {format_number(p99)} ms)" if p99 is not None else "")


def met_word(report: Report) -> str:
    return "meets" if report.get("slo_met") is True else "misses"


def share_text(ratio: float) -> str:
    """``98.5% of requests meet it``: the share of requests that met the SLO's per-request objectives."""
    # Cut, never rounded: a run where some request missed must not read 100% (the epsilon undoes binary
    # fractions such as 0.57 * 1000 = 569.99...).
    return f"{math.floor(ratio * 1000 + 1e-9) / 10:g}% of requests meet it"


def goodput_text(report: Report) -> str | None:
    """``5.5 req/s (98.5% of requests meet it)``: the goodput of a report whose SLO bounds every request;
    None for other reports."""
    if not has_goodput(report):
        return None
    ratio = number(report.get("goodput_ratio"))
    return rate_text(report.get("goodput")) + (f" ({share_text(ratio)})" if ratio is not None else "")


def _config_line(report: Report) -> str:
    status = report.get("status")
    if status not in (fields.STATUS_OK, fields.STATUS_OVERLOADED):
        return f"{config_text(report)}: {status or 'not measured'}, not judged"
    goodput = goodput_text(report)
    if is_open_loop(report):
        rate = report.get("request_rate") or report.get("offered_rps")
        head = "overloaded; latency" if report.get("overloaded") is True else "latency"
        load = (f"({format_number(report.get('offered_rps'))} offered, "
                f"{format_number(report.get('achieved_rps'))} achieved)")
        if report.get("slo_met") is None and goodput is not None:
            over = "overloaded; " if report.get("overloaded") is True else ""
            return f"{config_text(report)}: {over}goodput {goodput} at {rate_text(rate)} {load}"
        return (f"{config_text(report)}: {head} at {rate_text(rate)} {met_word(report)} it {load}"
                + (f"; goodput {goodput}" if goodput is not None else ""))
    if report.get("slo_met") is None and goodput is not None:
        # Only per-request objectives: no percentile to meet, the goodput is the answer.
        return f"{config_text(report)}: goodput {goodput}"
    line = f"{config_text(report)}: closed-loop latency {met_word(report)} it"
    if goodput is not None:
        line += f"; goodput {goodput}"
    if is_searched(report):
        capacity = number(report.get("capacity_rps")) or 0.0
        if capacity > 0:
            p99 = number(report.get("capacity_ms_p99"))
            line += f"; capacity {rate_text(capacity)}" + (f" (p99 {format_number(p99)} ms there)" if p99 else "")
        else:
            reason = report.get("reason")
            line += "; no rate tried meets it" + (f" ({reason})" if reason else "")
    return line


def slo_lines(reports: Sequence[Report]) -> list[str]:
    """Per SLO: whether each configuration meets it (and its capacity where searched), then the best
    configuration, or that none meets it. Empty unless some finished report has an SLO."""
    if not any(has_slo(r) and r.get("status") == fields.STATUS_OK for r in reports):
        return []
    lines: list[str] = []
    for slo, group in slo_groups(reports):
        lines.append(f"SLO {slo}:")
        lines += [f"  {_config_line(r)}" for r in group]
        best = best_report(group)
        lines.append(f"  best: {config_text(best)} ({best_text(best)})" if best is not None
                     else f"  no configuration meets {slo}")
    return lines
