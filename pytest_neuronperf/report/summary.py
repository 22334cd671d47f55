"""The terminal summary: the guide's table per configuration, with baseline and change columns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from pytest_neuronperf.gate.verdict import Verdict
from pytest_neuronperf.gate.wording import pct
from pytest_neuronperf.report.results_file import Measurement
from pytest_neuronperf.report.text import format_value
from pytest_neuronperf.spec.matrix import config_text

COLUMNS = ("test", "throughput_avg", "latency_ms_p50", "latency_ms_p99", "n_models", "pipeline_size",
           "workers_per_model", "batch_size", "model_filename", "baseline_throughput", "throughput_change",
           "p99_change", "verdict")
VERBOSE_EXTRA = ("latency_ms_p90", "infer_ms_p50", "load_avg_ms", "warmup_avg_ms", "stable", "latency_samples")


def _cell(key: str, value: Any) -> str:
    if key.endswith("_change") and isinstance(value, float):
        return pct(value)
    return format_value(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[str]:
    cells = [list(columns)] + [[_cell(c, r.get(c)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return [" ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in cells]


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


def summary_lines(measurements: Sequence[Measurement], *, verbose: bool) -> list[str]:
    if not measurements:
        return []
    rows = []
    for m in measurements:
        for row in m.flat_rows():
            rows.append({**row, "test": m.label})
    columns = COLUMNS + VERBOSE_EXTRA if verbose else COLUMNS
    lines = table(rows, columns)
    for m in measurements:
        lines.extend(f"note: {m.nodeid}: {note}" for note in m.notes)
    for m in measurements:
        lines.extend(error_lines(m))
    lines.append(counts_line(measurements))
    return lines
