"""The Markdown summary (for ``--npf-md`` and GitHub's job summary), and what every report format shares.

Every report writer takes its input through :func:`~pytest_neuronperf.report.results_file.as_measurements`,
so a list of measurements from a pytest run, a saved ``--npf-json`` document and the plain report dicts
of ``benchmark()`` all render the same way.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pytest_neuronperf.gate.verdict import Verdict
from pytest_neuronperf.gate.wording import (
    EMOJI,
    VERDICT_ORDER,
    config_label,
    sentence_word,
)
from pytest_neuronperf.report.figures import Figures, shown_change, shown_value
from pytest_neuronperf.report.generative import (
    GOODPUT_METRIC,
    TOKEN_METRICS,
    failed_text,
    figure_text,
    generative_metrics,
    shows_failed,
    title,
)
from pytest_neuronperf.report.results_file import Measurement, Results, as_measurements, measurement_label
from pytest_neuronperf.report.serving import (
    best_per_slo,
    best_text,
    capacity_text,
    is_open_loop,
    is_searched,
    load_text,
)
from pytest_neuronperf.report.summary import first_line

__all__ = ["append_markdown", "config_label", "explanations", "markdown_summary", "measurement_label",
           "summary_sentence", "verdict_counts", "write_markdown"]


def verdict_counts(measurements: Sequence[Measurement]) -> tuple[Counter[str], Counter[str]]:
    """(verdicts of measurements, verdicts of configurations); a measurement that errored counts as "error"."""
    return (Counter(Verdict.ERROR.value if m.errored else m.verdict for m in measurements),
            Counter(str(o.get("verdict")) for m in measurements for _, o in m.pairs()))


def _ordered(counts: Counter[str]) -> list[tuple[str, int]]:
    known = [(v, counts[v]) for v in VERDICT_ORDER if counts[v]]
    return known + sorted((v, n) for v, n in counts.items() if v not in VERDICT_ORDER and n)


def counts_phrase(counts: Counter[str]) -> str:
    """``1 regressed, 2 passed`` (worst first)."""
    return ", ".join(f"{n} {sentence_word(v)}" for v, n in _ordered(counts)) or "none"


def summary_sentence(measurements: Sequence[Measurement]) -> str:
    by_measurement, by_config = verdict_counts(measurements)
    n_m, n_c = len(measurements), sum(by_config.values())
    return (f"{n_m} measurement{'' if n_m == 1 else 's'}: {counts_phrase(by_measurement)}; "
            f"{n_c} configuration{'' if n_c == 1 else 's'}: {counts_phrase(by_config)}.")


def judgement(outcome: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    return next((j for j in outcome.get("judgements") or [] if j.get("metric") == metric), None)


MEASUREMENT_ITSELF: Final = "the measurement"


def explanations(m: Measurement) -> list[tuple[str, str, str]]:
    """(configuration, kind, sentence) for every error, judgement that did not pass, limit failure and note.

    ``kind`` is ``error`` (the measurement's own error comes first, as configuration "the
    measurement"), the judgement's verdict, ``fail`` for a limit failure, or ``note``.
    """
    lines: list[tuple[str, str, str]] = []
    if m.errored and (m.error or not m.reports):
        lines.append((MEASUREMENT_ITSELF, Verdict.ERROR.value, m.error_text()))
    for report, outcome in m.pairs():
        cfg = config_label(report)
        for j in outcome.get("judgements") or []:
            if j.get("verdict") != Verdict.PASS:
                hint = f" ({j['hint']})" if j.get("hint") else ""
                lines.append((cfg, str(j.get("verdict")), f"{j.get('message', '')}{hint}"))
        lines.extend((cfg, Verdict.FAIL.value, str(msg)) for msg in outcome.get("limit_failures") or [])
        errored = outcome.get("verdict") == Verdict.ERROR
        note = outcome.get("note") or (report.get("reason") if errored else None)
        if note:
            lines.append((cfg, Verdict.ERROR.value if errored else "note", str(note)))
    return lines


# --- Markdown -----------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    """Table-safe text: no line breaks, pipes escaped, and no HTML for GitHub to interpret."""
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _md_code(text: str) -> str:
    # A code span keeps brackets and underscores of test ids from turning into links or emphasis.
    text = _md_cell(text)
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_verdict(verdict: str) -> str:
    symbol = EMOJI.get(verdict)
    return f"{symbol} {verdict}" if symbol else verdict


# (title, alignment rule) of each column of the summary table.
_Column = tuple[str, str]
MD_COLUMNS: Final[tuple[_Column, ...]] = (
    ("Test", ":-----"), ("Configuration", ":--------------"), ("Throughput (/s)", "----------------:"),
    ("Baseline (/s)", "--------------:"), ("Change", "-------:"), ("p99 (ms)", "---------:"),
    ("Baseline p99 (ms)", "------------------:"), ("Change", "-------:"), ("Rounds", "-------:"),
    ("Verdict", ":--------"),
)
# Columns a run adds, before the verdict, only when some configuration has them.
LOAD_COLUMN: Final[_Column] = ("Offered → achieved (req/s)", "---------------------------:")
CAPACITY_COLUMN: Final[_Column] = ("Capacity at SLO (req/s)", "-----------------------:")


def _right(text: str) -> _Column:
    return (text, "-" * max(3, len(text)) + ":")


# A generative model's gated metrics: each figure, with the change where a baseline was compared.
GENERATIVE_COLUMNS: Final[Mapping[str, _Column]] = {
    metric: _right(title(metric)) for metric in (*TOKEN_METRICS, GOODPUT_METRIC)}
FAILED_COLUMN: Final[_Column] = _right("Failed requests")


def _header(columns: Sequence[_Column]) -> str:
    return "| " + " | ".join(t for t, _ in columns) + " |\n|" + "|".join(r for _, r in columns) + "|"


MD_HEADER: Final = _header(MD_COLUMNS)


def _serving_columns(ms: Sequence[Measurement]) -> list[_Column]:
    reports = [r for m in ms for r in m.reports]
    return ([LOAD_COLUMN] if any(is_open_loop(r) for r in reports) else []) + (
        [CAPACITY_COLUMN] if any(is_searched(r) for r in reports) else []) + _generative_columns(reports)


def _generative_columns(reports: Sequence[Mapping[str, Any]]) -> list[_Column]:
    return [GENERATIVE_COLUMNS[metric] for metric in generative_metrics(reports)] + (
        [FAILED_COLUMN] if shows_failed(reports) else [])


def _table_header(extra: Sequence[_Column]) -> str:
    return _header([*MD_COLUMNS[:-1], *extra, MD_COLUMNS[-1]])


def _serving_cells(report: Mapping[str, Any], shown: Figures, extra: Sequence[_Column]) -> list[str]:
    texts = {LOAD_COLUMN: load_text(report), CAPACITY_COLUMN: capacity_text(report),
             FAILED_COLUMN: failed_text(report),
             **{column: figure_text(report, shown, metric) for metric, column in GENERATIVE_COLUMNS.items()}}
    return [_md_cell(texts[column] or "—") for column in extra]


def _slo_bullets(ms: Sequence[Measurement]) -> list[str]:
    """Per measurement and SLO, the configuration that serves it best, or that none meets it."""
    lines = []
    for m in ms:
        for slo, best in best_per_slo(m.reports):
            verdict = (f"best is {config_label(best)} ({best_text(best)})" if best is not None
                       else "no configuration meets it")
            lines.append(f"- {_md_code(measurement_label(m))}, SLO {_md_cell(slo)}: {_md_cell(verdict)}")
    return lines


def markdown_summary(measurements: Results, *, title: str = "neuronperf") -> str:
    """One Markdown table of every configuration: the shown figures of throughput and p99 with the baseline's
    and the change (:mod:`~pytest_neuronperf.report.figures`), the rounds, the serving and generative (token)
    figures that apply, and the verdict; then the reasons for every configuration that did not pass."""
    ms = as_measurements(measurements)
    lines = [f"### {title}", ""]
    if not ms:
        lines.append("No performance measurements in this run.")
        return "\n".join(lines) + "\n"
    extra = _serving_columns(ms)
    lines += [summary_sentence(ms), "", _table_header(extra)]
    for m in ms:
        label = _md_code(measurement_label(m))
        if m.errored and not m.reports:
            lines.append("| " + " | ".join([label, *["—"] * (8 + len(extra)), md_verdict(Verdict.ERROR.value)])
                         + " |")
        for (report, outcome), shown in zip(m.pairs(), m.figures(), strict=True):
            cells = [
                label, _md_cell(config_label(report)),
                shown_value(shown.throughput), shown_value(shown.baseline_throughput),
                shown_change(shown.throughput_change),
                shown_value(shown.p99_ms), shown_value(shown.baseline_p99_ms), shown_change(shown.p99_change),
                shown.rounds_text() or "—", *_serving_cells(report, shown, extra),
                md_verdict(str(outcome.get("verdict"))),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    slo = _slo_bullets(ms)
    if slo:
        lines += ["", *slo]
    reasons = [(m, cfg, kind, text) for m in ms for cfg, kind, text in explanations(m)]
    if reasons:
        lines += ["", "<details><summary>Why</summary>", ""]
        lines += [f"- {_md_code(measurement_label(m))}, {_md_cell(cfg)}: **{_md_cell(kind)}**: "
                  f"{_md_cell(_first_line(text) if kind == Verdict.ERROR else text)}"
                  for m, cfg, kind, text in reasons]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _first_line(text: str) -> str:
    # A traceback in a table cell or list item would be one unreadable line; the test's report has it whole.
    return first_line(text, limit=500)


def write_markdown(measurements: Results, filename: str | os.PathLike[str]) -> str:
    """Write :func:`markdown_summary` to ``filename`` (replaced atomically); returns the file name."""
    from pytest_neuronperf._util.atomic_write import write_atomic

    name = os.fspath(filename)
    directory = os.path.dirname(os.path.abspath(name))
    os.makedirs(directory, exist_ok=True)
    write_atomic(name, markdown_summary(measurements).encode("utf-8"))
    return name


def append_markdown(measurements: Results, filename: str | os.PathLike[str]) -> str:
    """Append the summary to a file others write too (GitHub's ``$GITHUB_STEP_SUMMARY``)."""
    name = os.fspath(filename)
    with open(name, "a", encoding="utf-8") as fh:
        fh.write(markdown_summary(measurements) + "\n")
    return name
