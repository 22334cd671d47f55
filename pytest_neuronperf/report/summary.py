"""The terminal summary: one row per configuration with the shown figures, fitted to the terminal's width."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final

from pytest_neuronperf.gate.verdict import Verdict
from pytest_neuronperf.gate.wording import pct
from pytest_neuronperf.report.figures import Figures, shown_change, shown_value
from pytest_neuronperf.report.generative import FAILED_COL, generative_metrics, shows_failed
from pytest_neuronperf.report.results_file import Measurement
from pytest_neuronperf.report.text import format_value
from pytest_neuronperf.spec.matrix import config_key, config_text

# (header, cell) of each column: the shown figures (report/figures.py), then the report's own fields.
_Cell = Callable[[dict[str, Any], Figures], str]


def _figure(metric: str) -> _Cell:
    return lambda _report, shown: shown_value(shown.value(metric))


def _baseline(metric: str) -> _Cell:
    return lambda _report, shown: shown_value(shown.baseline(metric))


def _change(metric: str) -> _Cell:
    return lambda _report, shown: shown_change(shown.change(metric))


def _config(report: dict[str, Any], _shown: Figures) -> str:
    try:
        return config_key(report)
    except ValueError:
        return ""


def _report_field(key: str) -> _Cell:
    return lambda report, _shown: format_value(report.get(key))


# A generative model's gated metrics, shown only where a measurement is streaming: the column of each
# metric's figure and of its change.
GENERATIVE_HEADERS: Final[dict[str, tuple[str, str]]] = {
    "ttft_p50": ("ttft_p50", "ttft50_chg"), "ttft_p99": ("ttft_p99", "ttft99_chg"),
    "tpot_p50": ("tpot_p50", "tpot50_chg"), "tpot_p99": ("tpot_p99", "tpot99_chg"),
    "tokens_per_s": ("tok_s", "tok_chg"), "goodput": ("goodput", "good_chg"),
}

CELLS: Final[dict[str, _Cell]] = {
    "config": _config,
    "model": _report_field("model_filename"),
    "throughput": _figure("throughput"),
    "baseline": _baseline("throughput"),
    "change": _change("throughput"),
    "p50_ms": _figure("p50"),
    "p99_ms": _figure("p99"),
    "p99_base": _baseline("p99"),
    "p99_change": _change("p99"),
    "rounds": lambda _report, shown: shown.rounds_text(),
    "capacity": _figure("capacity"),
    "cap_change": _change("capacity"),
    **{col: cell for metric, (value_col, change_col) in GENERATIVE_HEADERS.items()
       for col, cell in ((value_col, _figure(metric)), (change_col, _change(metric)))},
    FAILED_COL: _report_field(FAILED_COL),
}
COLUMNS: Final = ("config", "model", "throughput", "baseline", "change", "p50_ms", "p99_ms", "p99_base", "p99_change",
                  "rounds", "verdict")
VERBOSE_EXTRA: Final = ("latency_ms_p90", "infer_ms_p50", "load_avg_ms", "warmup_avg_ms", "stable", "latency_samples")
# Shown only where a measurement has them: capacity at an SLO, and under -v what open-loop load offered and achieved.
CAPACITY_COLUMNS: Final = ("capacity", "cap_change")
SERVING_EXTRA: Final = ("offered_rps", "achieved_rps")
# What a narrow terminal loses first; the columns not named here are always shown. Of a generative model's
# figures the medians go first (each value before its change), then the p99s' and the rates' own values; their
# changes, what the gate judges, stay with the throughput's and the p99's.
DROP_ORDER: Final = (*reversed(SERVING_EXTRA), *reversed(VERBOSE_EXTRA), "model", FAILED_COL, "tpot_p50",
                     "tpot50_chg", "ttft_p50", "ttft50_chg", "slo_met", "p50_ms", "p99_base", "rounds", "goodput",
                     "tok_s", "tpot_p99", "ttft_p99")


def _cell(key: str, value: Any) -> str:
    if key.endswith("_change") and isinstance(value, float):
        return pct(value)
    return format_value(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    """Left-aligned columns of plain values (``npf show``'s table)."""
    cells = [list(columns)] + [[_cell(c, r.get(c)) for c in columns] for r in rows]
    return _aligned(cells)


def _aligned(cells: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return [indent + " ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells]


def counts_line(measurements: Sequence[Measurement]) -> str:
    verdicts = Counter(o["verdict"] for m in measurements for _, o in m.pairs())
    parts = [f"{n} {v}" for v, n in sorted(verdicts.items())]
    errored = sum(1 for m in measurements if m.errored)
    head = f"neuronperf: {len(measurements)} measurement(s)" + (f" ({errored} errored)" if errored else "")
    return f"{head}, configurations: " + (", ".join(parts) or "none")


def first_line(text: str, limit: int = 300) -> str:
    """The first line of a message (an error's traceback follows in the test's own failure report)."""
    lines = text.strip().splitlines() or [""]
    line = lines[0] if len(lines[0]) <= limit else lines[0][: limit - 3] + "..."
    return line + (" (...)" if len(lines) > 1 else "")


def error_lines(m: Measurement) -> list[str]:
    """The measurement's own error, and each configuration that errored, with its reason."""
    lines = [f"error: {m.label}: {first_line(m.error_text())}"] if m.errored and (m.error or not m.reports) else []
    lines += [f"error: {m.label}: {config_text(r)}: {first_line(str(o.get('note') or r.get('reason') or ''))}"
              for r, o in m.pairs() if o.get("verdict") == Verdict.ERROR and (o.get("note") or r.get("reason"))]
    return lines


def _row_cells(m: Measurement, columns: Sequence[str]) -> list[list[str]]:
    if m.errored and not m.reports:
        return [["" if c != "verdict" else Verdict.ERROR.value for c in columns]]
    out = []
    for (report, outcome), shown in zip(m.pairs(), m.figures(), strict=True):
        cells = []
        for c in columns:
            if c == "verdict":
                cells.append(str(outcome.get("verdict") or ""))
            elif c in CELLS:
                cells.append(CELLS[c](report, shown))
            else:
                cells.append(_cell(c, report.get(c)))
        out.append(cells)
    return out


def _flat(measurements: Sequence[Measurement], columns: Sequence[str]) -> list[str]:
    cells = [["test", *columns]]
    for m in measurements:
        cells += [[m.label, *row] for row in _row_cells(m, columns)]
    return _aligned(cells)


def _grouped(measurements: Sequence[Measurement], columns: Sequence[str]) -> list[str]:
    """Each measurement's name on a line of its own, its configurations below it: a long test id then costs
    one line instead of the width of every row. The columns line up across measurements."""
    groups = [_row_cells(m, columns) for m in measurements]
    aligned = _aligned([list(columns)] + [row for rows in groups for row in rows], indent="  ")
    lines = [aligned[0]]
    at = 1
    for m, rows in zip(measurements, groups, strict=True):
        lines.append(m.label)
        lines += aligned[at:at + len(rows)]
        at += len(rows)
    return lines


def fitted_table(measurements: Sequence[Measurement], columns: Sequence[str], width: int | None) -> list[str]:
    """The table in the first layout whose lines fit ``width`` (None: any width): one row per configuration
    with the test in its first column; else grouped under each measurement's name; then with the least
    important columns left out, one at a time (:data:`DROP_ORDER`). The figures never change, only which
    are shown."""
    flat = _flat(measurements, columns)
    if width is None or max(map(len, flat)) <= width:
        return flat
    shown = list(columns)
    for drop in (None, *DROP_ORDER):
        if drop in shown:
            shown.remove(drop)
        elif drop is not None:
            continue
        lines = _grouped(measurements, shown)
        # A long test id on its own line may wrap; the table's rows are what must fit.
        rows = [line for line in lines if line.startswith("  ")]
        if max(map(len, rows)) <= width:
            return lines
    return lines


def slo_best_lines(measurements: Sequence[Measurement]) -> list[str]:
    """Per measurement with an SLO: the configuration that serves it best, or that none meets it."""
    from pytest_neuronperf.report.serving import best_per_slo, best_text

    lines = []
    for m in measurements:
        for slo, best in best_per_slo(m.reports):
            said = (f"best {config_text(best)} ({best_text(best)})" if best is not None
                    else "no configuration meets it")
            lines.append(f"slo: {m.label}: {slo}: {said}")
    return lines


def _generative_columns(measurements: Sequence[Measurement], metrics: Sequence[str]) -> list[str]:
    """Each generative metric's figure, and its change where some configuration was compared on it: without a
    baseline a column of dashes would only push the table past the terminal's width."""
    figures = [f for m in measurements for f in m.figures()]
    columns = []
    for metric in metrics:
        value_col, change_col = GENERATIVE_HEADERS[metric]
        columns.append(value_col)
        if any(f.change(metric) is not None for f in figures):
            columns.append(change_col)
    return columns


def summary_lines(measurements: Sequence[Measurement], *, verbose: bool, width: int | None = None) -> list[str]:
    if not measurements:
        return []
    columns: tuple[str, ...] = COLUMNS + VERBOSE_EXTRA if verbose else COLUMNS
    reports = [r for m in measurements for r in m.reports]
    if any(r.get("capacity_rps") is not None for r in reports):
        at = columns.index("rounds")
        columns = (*columns[:at], *CAPACITY_COLUMNS, *columns[at:])
    metrics = generative_metrics(reports)
    if metrics:
        at = columns.index("rounds")
        columns = (*columns[:at], *_generative_columns(measurements, metrics),
                   *([FAILED_COL] if shows_failed(reports) else []), *columns[at:])
    # An SLO of per-request objectives only has no slo_met: its goodput column answers it.
    if any(r.get("slo") and r.get("slo_met") is not None for r in reports):
        at = columns.index("verdict")
        columns = (*columns[:at], "slo_met", *columns[at:])
    if verbose and any(r.get("offered_rps") is not None for r in reports):
        columns = (*columns, *SERVING_EXTRA)
    lines = fitted_table(measurements, columns, width)
    lines.extend(slo_best_lines(measurements))
    if verbose:
        # What the device said about each configuration: whether the host or the device limits it.
        lines.extend(f"{m.nodeid} {config_text(r)}: {r['diagnosis']}" for m in measurements for r in m.reports
                     if r.get("diagnosis"))
    for m in measurements:
        lines.extend(f"note: {m.nodeid}: {note}" for note in m.notes)
    for m in measurements:
        lines.extend(error_lines(m))
    lines.append(counts_line(measurements))
    return lines
