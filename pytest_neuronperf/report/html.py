"""The HTML report: one self-contained file with the verdicts, tables and plots of a run.

The file references nothing outside itself (CSS inline, plots as inline SVG),
so it can be attached to a CI run and opened anywhere. Plots come from
matplotlib, an optional dependency imported only while a report is written.
"""

from __future__ import annotations

import html
import importlib.util
import io
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from pytest_neuronperf.gate.verdict import Verdict
from pytest_neuronperf.gate.wording import (
    SYMBOLS,
    TITLES,
    VERDICT_ORDER,
    age_text,
    config_label,
    format_change,
)
from pytest_neuronperf.report.figures import Figures, change_key, shown_change, shown_value, value_key
from pytest_neuronperf.report.generative import (
    FAILED_COL,
    generative_metrics,
    has_failed,
    is_streaming,
    shows_failed,
)
from pytest_neuronperf.report.generative import TITLES as TOKEN_TITLES
from pytest_neuronperf.report.markdown import MEASUREMENT_ITSELF, explanations, judgement, verdict_counts
from pytest_neuronperf.report.results_file import (
    Measurement,
    Results,
    as_measurements,
    environment_of,
    measurement_label,
)
from pytest_neuronperf.report.serving import has_goodput, is_open_loop, is_searched, met_word, number, share_text
from pytest_neuronperf.spec import fields
from pytest_neuronperf.spec.matrix import config_key, config_text
from pytest_neuronperf.spec.metrics import BY_NAME
from pytest_neuronperf.spec.slo import Constraint, parse_slo

INSTALL_HINT: Final = 'pip install "pytest-neuronperf[report]"'
CURRENT_COLOUR: Final = "#2563eb"
BASELINE_COLOUR: Final = "#6b7280"
# Colour-blind-safe series colours (Okabe-Ito) for several configurations in one plot.
_SERIES: Final[tuple[str, ...]] = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442",
                                   "#000000")


class ReportDependencyError(ImportError):
    """A report needs an optional package that is not installed."""


def require_matplotlib() -> None:
    """Raise ReportDependencyError (with the install command) when matplotlib is missing.

    Cheap: it looks the package up without importing it, so the plugin can call
    it while configuring a run that asked for ``--npf-html``.
    """
    if importlib.util.find_spec("matplotlib") is None:
        raise ReportDependencyError(f"the HTML report draws its plots with matplotlib, which is not installed; "
                                    f"install it with: {INSTALL_HINT}")


# --- SVG plots --------------------------------------------------------------------------------------


class _Plots:
    """Draws figures and turns them into inline SVG with ids unique within the page."""

    def __init__(self) -> None:
        require_matplotlib()
        import sys

        import matplotlib

        # Agg never opens a window; leave an already chosen pyplot backend of the user's alone.
        if "matplotlib.pyplot" not in sys.modules:
            matplotlib.use("Agg")
        self.count = 0
        self.rc: dict[str, Any] = {
            "svg.fonttype": "none", "font.size": 9, "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"], "axes.spines.top": False,
            "axes.spines.right": False, "axes.edgecolor": "#9ca3af", "axes.grid": True, "grid.color": "#e5e7eb",
            "grid.linewidth": 0.8, "axes.axisbelow": True, "axes.titlesize": 10, "axes.titleweight": "bold",
            "legend.frameon": False, "legend.fontsize": 8, "xtick.color": "#374151", "ytick.color": "#374151",
            "text.usetex": False, "path.simplify": True,
        }

    def render(self, size: tuple[float, float], draw: Callable[[Any], None], label: str) -> str:
        import matplotlib
        from matplotlib.figure import Figure

        self.count += 1
        prefix = f"npf{self.count}-"
        # A fixed salt keeps the report byte-for-byte reproducible; the prefix keeps ids apart between plots.
        rc: Any = {**self.rc, "svg.hashsalt": prefix}
        with matplotlib.rc_context(rc):
            fig = Figure(figsize=size, layout="constrained")
            draw(fig)
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
        return _inline_svg(buf.getvalue(), prefix, label)


def _inline_svg(text: str, prefix: str, label: str) -> str:
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    # Inline SVG in HTML needs no namespace declarations, and SVG 2 reads a plain href.
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = text.replace("xlink:href=", "href=")
    # Several plots share one page: give every id (and every reference to it) the plot's prefix.
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", text)
    # The page's CSS sizes the plot; the viewBox keeps its proportions.
    head_end = text.index(">")
    width = re.search(r'\swidth="([\d.]+)pt"', text[:head_end])
    head = re.sub(r'\s(width|height)="[^"]*"', "", text[:head_end])
    # Shrink to fit a narrow column, but never grow past the drawn size (text would grow with it).
    style = f' style="max-width: {float(width.group(1)) * 4 / 3:.0f}px"' if width else ""
    return head + f' class="plot" role="img" aria-label="{_esc(label)}"{style}' + text[head_end:]


def _short_label(report: Mapping[str, Any], batches: bool) -> str:
    text = f"{report.get('n_models')}x{report.get('workers_per_model')}"
    if batches:
        text += f" b{report.get('batch_size')}"
    if report.get("pipeline_size") not in (None, 1):
        text += f" p{report.get('pipeline_size')}"
    return text


def _cdf_points(cdf: Any) -> tuple[list[float], list[float]]:
    points = [(float(p), float(v)) for p, v in (cdf or []) if isinstance(v, (int, float)) and v > 0]
    return [v for _, v in points], [p for p, _ in points]


# Percentile axis stretched towards the tail, so p99 and p99.9 get as much room as p0..p90.
_TAIL_CAP: Final = 99.95
_PERCENTILE_TICKS: Final = (0.0, 50.0, 90.0, 99.0, 99.9, _TAIL_CAP)


def _tail_forward(p: Any) -> Any:
    import numpy as np

    return -np.log10(1.0 - np.clip(p, 0.0, _TAIL_CAP) / 100.0)


def _tail_inverse(y: Any) -> Any:
    import numpy as np

    return 100.0 * (1.0 - np.power(10.0, -np.asarray(y)))


def _percentile_axis(ax: Any) -> None:
    ax.set_yscale("function", functions=(_tail_forward, _tail_inverse))
    ax.set_yticks(list(_PERCENTILE_TICKS))
    ax.set_yticklabels(["0", "50", "90", "99", "99.9", "max"])
    ax.set_ylim(0.0, _TAIL_CAP)
    ax.set_ylabel("percentile")


def _ms_axis(ax: Any, every: Sequence[float], what: str) -> None:
    """The x axis of a distribution in milliseconds, log scale where the values span more than a decade."""
    # A log axis only helps when the latencies span more than one order of magnitude (tails, outliers).
    log_x = max(every) / min(every) > 10.0
    if log_x:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_xscale("log")
        # 1-2-5 ticks as plain numbers read better than powers of ten for milliseconds.
        decades = math.log10(max(every) / min(every))
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"{what} (ms" + (", log scale)" if log_x else ")"))


def _cdf_plot(plots: _Plots, report: Mapping[str, Any], baseline: Mapping[str, Any] | None,
              saved: str) -> str | None:
    cur_x, cur_p = _cdf_points(report.get(fields.CDF_KEY))
    base_x, base_p = _cdf_points((baseline or {}).get(fields.CDF_KEY))
    if not cur_x:
        return None

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        if base_x:
            label = "baseline" + (f" ({saved})" if saved else "")
            ax.plot(base_x, [min(p, _TAIL_CAP) for p in base_p], color=BASELINE_COLOUR, linestyle="--",
                    linewidth=1.6, marker="o", markersize=2.5, label=label)
        ax.plot(cur_x, [min(p, _TAIL_CAP) for p in cur_p], color=CURRENT_COLOUR, linewidth=1.8, marker="o",
                markersize=2.5, label="this run")
        _percentile_axis(ax)
        _ms_axis(ax, cur_x + base_x, "latency")
        ax.set_title(config_label(report), loc="left")
        ax.legend(loc="lower right")

    return plots.render((4.0, 3.0), draw, f"latency CDF of {config_label(report)}, this run and baseline")


# --- a generative model's token latencies (TTFT, ITL) and output tokens over time -------------------------

# What each distribution plot shows: the report's key, the plot's name, its title and the x axis's quantity.
TOKEN_DISTRIBUTIONS: Final[tuple[tuple[str, str, str, str], ...]] = (
    (fields.TTFT_CDF_KEY, "TTFT distribution", "Time to first token", "time to first token"),
    (fields.ITL_CDF_KEY, "ITL distribution", "Inter-token latency", "gap between tokens"),
)


def _baseline_of(outcome: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The baseline's report the outcome was compared with (None without one)."""
    found = outcome.get("baseline")
    return found if isinstance(found, Mapping) else None


def token_distribution_data(m: Measurement, key: str) -> dict[str, Any]:
    """What a token latency plot draws (``key``: :data:`~pytest_neuronperf.spec.fields.TTFT_CDF_KEY` or
    :data:`~pytest_neuronperf.spec.fields.ITL_CDF_KEY`): per streaming configuration, its distribution as
    [percentile, ms] points and the baseline's where its record kept one (else an empty list)."""
    name = next(plot for k, plot, _, _ in TOKEN_DISTRIBUTIONS if k == key)
    batches = len({r.get("batch_size") for r in m.reports}) > 1
    series = []
    for report, outcome in m.pairs():
        if not is_streaming(report):
            continue
        cur_x, cur_p = _cdf_points(report.get(key))
        if not cur_x:
            continue
        base_x, base_p = _cdf_points((_baseline_of(outcome) or {}).get(key))
        series.append({"config": _config_of(report), "label": _short_label(report, batches),
                       "cdf": [[p, x] for p, x in zip(cur_p, cur_x, strict=True)],
                       "baseline_cdf": [[p, x] for p, x in zip(base_p, base_x, strict=True)],
                       "baseline_saved_at": outcome.get("baseline_saved_at") if base_x else None})
    return {"plot": name, "key": key, "series": series}


def _token_distribution(plots: _Plots, data: Mapping[str, Any], title: str, what: str,
                        now: datetime) -> str | None:
    series: list[dict[str, Any]] = data["series"]
    if not series:
        return None
    single = len(series) == 1
    saved = _age(series[0]["baseline_saved_at"], now) if single else ""
    every = [float(x) for item in series for _, x in [*item["cdf"], *item["baseline_cdf"]]]

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        for i, item in enumerate(series):
            colour = CURRENT_COLOUR if single else _SERIES[i % len(_SERIES)]
            if item["baseline_cdf"]:
                label = ("baseline" + (f" ({saved})" if saved else "")) if single else f"{item['label']} baseline"
                ax.plot([x for _, x in item["baseline_cdf"]], [min(p, _TAIL_CAP) for p, _ in item["baseline_cdf"]],
                        color=BASELINE_COLOUR if single else colour, linestyle="--", linewidth=1.4, alpha=0.9,
                        marker="o", markersize=2.0, label=label)
            ax.plot([x for _, x in item["cdf"]], [min(p, _TAIL_CAP) for p, _ in item["cdf"]], color=colour,
                    linewidth=1.7, marker="o", markersize=2.5, label="this run" if single else item["label"])
        _percentile_axis(ax)
        _ms_axis(ax, every, what)
        ax.set_title(title, loc="left")
        if single:
            ax.legend(loc="lower right")
        else:
            ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="copies x\nworkers")

    size = (4.6, 3.2) if single else (6.0, 3.2)
    against = " and baseline" if any(item["baseline_cdf"] for item in series) else ""
    return plots.render(size, draw, f"{title.lower()} (CDF), every configuration, this run{against}")


def tokens_timeline_data(m: Measurement) -> dict[str, Any]:
    """What the tokens timeline draws: per streaming configuration, every round's sub-window output tokens/s,
    and from which round on the rounds were added by the sequential gate."""
    batches = len({x.get("batch_size") for x in m.reports}) > 1
    series = [{"config": _config_of(r), "label": _short_label(r, batches),
               "rounds": list(r[fields.TOKENS_TIMELINE_KEY])}
              for r in m.reports if is_streaming(r) and isinstance(r.get(fields.TOKENS_TIMELINE_KEY), list)
              and any(r[fields.TOKENS_TIMELINE_KEY])]
    return {"plot": "output tokens over time", "first_rounds": m.first_rounds, "series": series}


def _tokens_timeline(plots: _Plots, data: Mapping[str, Any]) -> str | None:
    return _timeline(plots, data, "output tokens/s", "Output tokens over time",
                     "output tokens per second over time within the timed window, every round")


def _config_of(report: Mapping[str, Any]) -> str:
    try:
        return config_key(report)
    except ValueError:
        return ""


def throughput_bar_data(m: Measurement) -> dict[str, Any]:
    """What the bar chart draws: each configuration's shown throughput and its baseline's (figures.py)."""
    rows = [(r, f) for (r, _), f in zip(m.pairs(), m.figures(), strict=True) if f.throughput is not None]
    return {"plot": "throughput by configuration", "configurations": [_config_of(r) for r, _ in rows],
            "labels": [_short_label(r, len({r.get("batch_size") for r, _ in rows}) > 1) for r, _ in rows],
            "throughput": [f.throughput for _, f in rows],
            "baseline_throughput": [f.baseline_throughput for _, f in rows]}


def _throughput_bars(plots: _Plots, data: Mapping[str, Any]) -> str | None:
    labels: list[str] = data["labels"]
    if not labels:
        return None
    batches = any(" b" in label for label in labels)
    current: list[float] = data["throughput"]
    base: list[float | None] = data["baseline_throughput"]
    has_base = any(b is not None for b in base)

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        xs = list(range(len(labels)))
        width = 0.38 if has_base else 0.6
        if has_base:
            ax.bar([x - width / 2 for x in xs], [b or 0.0 for b in base], width, color="#d1d5db",
                   edgecolor=BASELINE_COLOUR, hatch="//", linewidth=0.6, label="baseline")
            ax.bar([x + width / 2 for x in xs], current, width, color=CURRENT_COLOUR, label="this run")
        else:
            ax.bar(xs, current, width, color=CURRENT_COLOUR, label="this run")
        ax.set_xticks(xs)
        ax.set_xticklabels(labels, rotation=30 if len(labels) > 6 else 0)
        ax.set_xlabel("configuration (model copies x workers per copy" + (", batch size)" if batches else ")"))
        ax.set_ylabel("throughput (inferences/s, geometric mean of rounds)")
        ax.set_title("Throughput by configuration", loc="left")
        ax.grid(axis="x", visible=False)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))

    return plots.render((max(4.6, min(11.0, 1.6 + 0.75 * len(labels))), 3.2), draw,
                        "throughput by configuration, this run and baseline")


def throughput_timeline_data(m: Measurement) -> dict[str, Any]:
    """What the timeline draws: per configuration, every round's sub-window throughputs, and from which
    round on the rounds were added by the sequential gate."""
    series = [{"config": _config_of(r), "label": _short_label(r, len({x.get("batch_size") for x in m.reports}) > 1),
               "rounds": list(r[fields.TIMELINE_KEY])}
              for r in m.reports if isinstance(r.get(fields.TIMELINE_KEY), list) and any(r[fields.TIMELINE_KEY])]
    return {"plot": "throughput over time", "first_rounds": m.first_rounds, "series": series}


def _throughput_timeline(plots: _Plots, data: Mapping[str, Any]) -> str | None:
    return _timeline(plots, data, "throughput (inferences/s)", "Throughput over time",
                     "throughput over time within the timed window, every round")


def _timeline(plots: _Plots, data: Mapping[str, Any], ylabel: str, title: str, label: str) -> str | None:
    """Per configuration, a rate over every round's timed window, end to end (rounds apart by dotted lines)."""
    series: list[dict[str, Any]] = data["series"]
    if not series:
        return None
    first: int | None = data["first_rounds"]
    n_rounds = max(len(s["rounds"]) for s in series)
    extra = max(0, n_rounds - first) if first else 0

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        boundaries: list[float] = []
        for i, item in enumerate(series):
            xs: list[float] = []
            ys: list[float] = []
            offset = 0.0
            for rnd in item["rounds"]:
                points = [(float(t), float(v)) for t, v in rnd]
                if points:
                    xs += [offset + t for t, _ in points] + [float("nan")]
                    ys += [v for _, v in points] + [float("nan")]
                    # Points sit at the middle of equal sub-windows, so the round ends half a window after the last.
                    offset += points[-1][0] + points[0][0]
                if i == 0:
                    boundaries.append(offset)
            ax.plot(xs, ys, color=_SERIES[i % len(_SERIES)], linewidth=1.5, marker="o", markersize=2.5,
                    label=item["label"])
        for b in boundaries[:-1]:
            ax.axvline(b, color="#9ca3af", linewidth=0.8, linestyle=":")
        if extra and first and len(boundaries) > first:
            # The rounds the sequential gate added after its first look: judged with the others, so drawn too.
            ax.axvspan(boundaries[first - 1], boundaries[-1], color="#fef3c7", alpha=0.6, linewidth=0,
                       label=f"{extra} added round{'' if extra == 1 else 's'}")
        ax.set_ylim(bottom=0)
        ax.set_xlabel("seconds in the timed window" + (f" ({n_rounds} rounds end to end)" if n_rounds > 1 else ""))
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="copies x\nworkers")

    return plots.render((max(4.6, min(11.0, 1.6 + 0.75 * len(series))), 3.2), draw, label)


# --- latency against offered load (a capacity search's steps) ---------------------------------------------

# The percentiles every knee plot shows; an SLO on another percentile adds its own panel.
_KNEE_PERCENTILES: Final = (50.0, 99.0)
SLO_COLOUR: Final = "#b91c1c"


def _step_key(percentile: float) -> str:
    return f"p{percentile:g}_ms"


def _knee_steps(steps: object) -> list[dict[str, Any]]:
    """The steps with a rate, in rising rate (the search visits them in bisection order), each with its
    rate, whether it met the SLO and its finite latency percentiles (ms)."""
    out = []
    for step in steps if isinstance(steps, list) else []:
        if not isinstance(step, Mapping):
            continue
        # The rate each step was offered (its arrivals / its window), the unit capacity_rps is in.
        rate = number(step.get("offered_rps"))
        rate = rate if rate is not None else number(step.get("rate"))
        if rate is None:
            continue
        latencies = {k: v for k, v in ((k, number(v)) for k, v in step.items()
                                       if isinstance(k, str) and k.startswith("p") and k.endswith("_ms"))
                     if v is not None and v > 0}
        out.append({"rate": rate, "met": step.get("met") is True, **latencies})
    return sorted(out, key=lambda s: float(s["rate"]))


def _constraints(slo: object) -> list[Constraint]:
    try:
        parsed = parse_slo(slo)
    except ValueError:
        return []
    return [] if parsed is None else list(parsed.constraints)


def capacity_knee_data(m: Measurement) -> dict[str, Any]:
    """What the knee plot draws: per configuration with a capacity search, its steps (latency against offered
    load), its capacity and its SLO, and the baseline's steps where the baseline kept them."""
    batches = len({r.get("batch_size") for r in m.reports}) > 1
    series = []
    for report, outcome in m.pairs():
        steps = _knee_steps(report.get(fields.CAPACITY_STEPS_KEY))
        if not steps:
            continue
        found = outcome.get("baseline")
        baseline: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        series.append({"config": _config_of(report), "label": _short_label(report, batches),
                       "slo": report.get("slo"), "capacity_rps": number(report.get("capacity_rps")),
                       "steps": steps, "baseline_steps": _knee_steps(baseline.get(fields.CAPACITY_STEPS_KEY))})
    return {"plot": "latency against offered load", "series": series}


def _knee_panels(series: Sequence[Mapping[str, Any]]) -> list[tuple[float, list[Constraint]]]:
    """(percentile, the SLO bounds on it) per panel: p50 and p99, and any other percentile an SLO bounds,
    where some step measured it."""
    bounds: dict[float, list[Constraint]] = {q: [] for q in _KNEE_PERCENTILES}
    for item in series:
        for c in _constraints(item["slo"]):
            if c not in bounds.setdefault(c.percentile, []):
                bounds[c.percentile].append(c)
    measured = {k for item in series for step in [*item["steps"], *item["baseline_steps"]] for k in step}
    return [(q, bounds[q]) for q in sorted(bounds) if _step_key(q) in measured]


def _draw_knee_series(ax: Any, item: Mapping[str, Any], key: str, colour: str, base_colour: str,
                      single: bool) -> None:
    base = [s for s in item["baseline_steps"] if key in s]
    if base:
        ax.plot([s["rate"] for s in base], [s[key] for s in base], color=base_colour, linestyle="--",
                linewidth=1.4, alpha=0.8, label="baseline" if single else f"{item['label']} baseline")
    steps = [s for s in item["steps"] if key in s]
    ax.plot([s["rate"] for s in steps], [s[key] for s in steps], color=colour, linewidth=1.6,
            label="this run" if single else item["label"])
    for met, marker in ((True, "o"), (False, "X")):
        chosen = [s for s in steps if s["met"] is met]
        if chosen:
            ax.plot([s["rate"] for s in chosen], [s[key] for s in chosen], linestyle="none", marker=marker,
                    markersize=5 if met else 6, color=colour, markerfacecolor=colour if met else "white")
    capacity = item["capacity_rps"]
    if capacity:
        ax.axvline(capacity, color=colour, linestyle=":", linewidth=1.2)


def _knee_legend(ax: Any, panels: Sequence[tuple[float, list[Constraint]]], capacity: bool) -> None:
    from matplotlib.lines import Line2D

    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="#374151", marker="o", linestyle="none", markersize=5, label="met the SLO"),
                Line2D([], [], color="#374151", marker="X", markerfacecolor="white", linestyle="none",
                       markersize=6, label="missed it")]
    if any(bounds for _, bounds in panels):
        handles.append(Line2D([], [], color=SLO_COLOUR, linewidth=1.2, label="SLO bound"))
    if capacity:
        handles.append(Line2D([], [], color="#374151", linestyle=":", linewidth=1.2, label="capacity"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))


def _capacity_knee(plots: _Plots, data: Mapping[str, Any]) -> str | None:
    series: list[dict[str, Any]] = data["series"]
    panels = _knee_panels(series)
    if not series or not panels:
        return None
    single = len(series) == 1

    def draw(fig: Any) -> None:
        axes = fig.subplots(1, len(panels), sharex=True, squeeze=False)[0]
        for ax, (q, bounds) in zip(axes, panels, strict=True):
            key = _step_key(q)
            for i, item in enumerate(series):
                colour = CURRENT_COLOUR if single else _SERIES[i % len(_SERIES)]
                _draw_knee_series(ax, item, key, colour, BASELINE_COLOUR if single else colour, single)
            for c in bounds:
                ax.axhline(c.max_ms, color=SLO_COLOUR, linewidth=1.2)
                ax.annotate(f"SLO {c.text()}", (0.01, c.max_ms), xycoords=("axes fraction", "data"),
                            xytext=(0, 3), textcoords="offset points", color=SLO_COLOUR, fontsize=8)
            # Room above the highest point and bound, so the bound's label stays inside the panel.
            top = max([s[key] for item in series for s in [*item["steps"], *item["baseline_steps"]] if key in s]
                      + [c.max_ms for c in bounds])
            ax.set_ylim(0, top * 1.15)
            ax.set_xlim(left=0)
            ax.set_xlabel("offered load (req/s)")
            ax.set_ylabel(f"p{q:g} latency (ms)")
        axes[0].set_title("Latency against offered load", loc="left")
        _knee_legend(axes[-1], panels, any(item["capacity_rps"] for item in series))

    return plots.render((max(4.6, min(11.0, 1.4 + 3.3 * len(panels))), 3.2), draw,
                        "latency against offered load with the SLO and the capacity, every configuration")


def _plot_data(data: Mapping[str, Any]) -> str:
    """The plotted numbers as an attribute of the plot's figure, for readers and tools (no script in the page)."""
    return f' data-plot="{_esc(json.dumps(data, allow_nan=False, default=str))}"'


# --- HTML -------------------------------------------------------------------------------------------------

_CSS: Final = """
:root { --fg: #111827; --muted: #6b7280; --line: #e5e7eb; --bg: #ffffff; --panel: #f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0; word-break: break-all; }
h3 { font-size: 14px; margin: 18px 0 8px; color: #374151; }
.muted { color: var(--muted); }
.summary { margin: 18px 0 8px; padding: 16px 18px; border: 1px solid var(--line); border-radius: 10px;
  background: var(--panel); }
.summary p { margin: 0 0 12px; font-size: 15px; }
.tiles { display: flex; flex-wrap: wrap; gap: 8px; }
.tiles + .tiles { margin-top: 8px; }
.tile { min-width: 118px; padding: 8px 12px; border-radius: 8px; border: 1px solid; }
.tile b { display: block; font-size: 22px; line-height: 1.1; }
.tile span { font-size: 12px; }
.tiles .what { align-self: center; width: 120px; font-weight: 600; color: #374151; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; border: 1px solid; font-size: 12px;
  font-weight: 600; white-space: nowrap; }
.v-pass { background: #dcfce7; color: #166534; border-color: #86efac; }
.v-fail { background: #fee2e2; color: #991b1b; border-color: #fca5a5; }
.v-inconclusive { background: #fef3c7; color: #92400e; border-color: #fcd34d; }
.v-no-baseline { background: #e0e7ff; color: #3730a3; border-color: #a5b4fc; }
.v-error { background: #fce7f3; color: #9d174d; border-color: #f9a8d4; }
pre.error { margin: 8px 0; padding: 8px 10px; border: 1px solid #f9a8d4; border-radius: 8px; background: #fdf2f8;
  font-size: 12px; white-space: pre-wrap; word-break: break-word; }
.v-measured, .v-skipped, .v-other { background: #f3f4f6; color: #374151; border-color: #d1d5db; }
nav ul { margin: 6px 0 0; padding-left: 18px; }
nav li { margin: 2px 0; }
nav a { color: var(--fg); }
section.test { margin-top: 28px; padding-top: 18px; border-top: 2px solid var(--line); }
.test-head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-size: 13px; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--panel); font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:nth-child(even) td { background: #fcfcfd; }
.ci { color: var(--muted); font-size: 11px; }
.worse { color: #b91c1c; font-weight: 600; }
.better { color: #15803d; font-weight: 600; }
ul.why { margin: 6px 0; padding-left: 18px; font-size: 13px; }
ul.why li { margin: 3px 0; }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.plots.wide { grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); }
figure { margin: 0; padding: 8px; border: 1px solid var(--line); border-radius: 8px; background: #fff; }
svg.plot { display: block; width: 100%; height: auto; margin: 0 auto; }
details.env { margin-top: 10px; }
details.env table { width: auto; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _verdict_class(verdict: str) -> str:
    return "v-" + verdict.replace(" ", "-") if verdict in VERDICT_ORDER else "v-other"


def _badge(verdict: str) -> str:
    symbol = SYMBOLS.get(verdict, "")
    text = f"{symbol} {verdict}" if symbol else verdict
    return f'<span class="badge {_verdict_class(verdict)}">{_esc(text)}</span>'


def _kind(kind: str) -> str:
    return _badge(kind) if kind in VERDICT_ORDER else f'<span class="badge v-other">{_esc(kind)}</span>'


def _tiles(what: str, counts: Mapping[str, int], total: int) -> str:
    parts = [f'<div class="tiles"><div class="what">{_esc(what)}<br><span class="muted">{total} in all</span></div>']
    for verdict in VERDICT_ORDER:
        n = counts.get(verdict, 0)
        if n or verdict in (Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NO_BASELINE):
            parts.append(f'<div class="tile {_verdict_class(verdict)}"><b>{n}</b>'
                         f"<span>{_esc(TITLES[verdict])}</span></div>")
    for other, n in sorted(counts.items()):
        if other not in VERDICT_ORDER and n:
            parts.append(f'<div class="tile v-other"><b>{n}</b><span>{_esc(other)}</span></div>')
    parts.append("</div>")
    return "".join(parts)


def _errors_phrase(by_m: Mapping[str, int], by_c: Mapping[str, int]) -> str:
    counts = [(n, what) for n, what in
              ((by_m.get(Verdict.ERROR, 0), "measurement"), (by_c.get(Verdict.ERROR, 0), "configuration")) if n]
    if not counts:
        return ""
    parts = [f"{n} {what}{'' if n == 1 else 's'}" for n, what in counts]
    whose = "its" if len(counts) == 1 and counts[0][0] == 1 else "their"
    return f"{' and '.join(parts)} errored; {whose} results are missing."


def _summary(ms: Sequence[Measurement]) -> str:
    by_m, by_c = verdict_counts(ms)
    n_c = sum(by_c.values())
    regressed = by_c.get(Verdict.FAIL, 0)
    errored = _errors_phrase(by_m, by_c)
    if not ms:
        headline = "No performance measurements."
    elif errored:
        # A crash hides whatever it would have measured: never call such a run free of regressions.
        headline = errored + (
            f" {regressed} of {n_c} configuration{'' if n_c == 1 else 's'} regressed." if regressed else "")
    elif regressed:
        headline = f"{regressed} of {n_c} configuration{'' if n_c == 1 else 's'} regressed."
    elif by_c.get(Verdict.INCONCLUSIVE, 0):
        headline = f"No regression found; {by_c[Verdict.INCONCLUSIVE]} configuration(s) could not be judged."
    elif by_c.get(Verdict.PASS, 0):
        headline = "No regression: every compared configuration passed."
    else:
        headline = "Nothing was compared with a baseline."
    tone = "worse" if regressed or errored else ""
    return (f'<section class="summary" id="summary"><p><strong class="{tone}">{_esc(headline)}</strong></p>'
            f"{_tiles('Measurements', by_m, len(ms))}{_tiles('Configurations', by_c, n_c)}</section>")


def _change_css(j: Mapping[str, Any], higher_is_better: bool, change: float | None) -> str:
    """``better`` or ``worse`` where the change is beyond the judgement's tolerance, else nothing."""
    if change is not None and abs(change) >= float(j.get("tolerance") or 0.0) > 0:
        return "better" if (change > 0) == higher_is_better else "worse"
    return ""


def _change_cell(j: Mapping[str, Any] | None, higher_is_better: bool, change: float | None, name: str) -> str:
    if j is None:
        return f'<td class="num" data-figure="{name}">—</td>'
    css = _change_css(j, higher_is_better, change)
    ci = j.get("change_ci")
    ci_text = ""
    if isinstance(ci, list) and len(ci) == 2 and all(isinstance(v, (int, float)) for v in ci):
        ci_text = f'<br><span class="ci">CI {_esc(format_change(ci[0]))} .. {_esc(format_change(ci[1]))}</span>'
    return (f'<td class="num" data-figure="{name}"><span class="{css}">{_esc(shown_change(change))}</span>'
            f"{ci_text}</td>")


def _figure_cell(name: str, value: float | None) -> str:
    return f'<td class="num" data-figure="{name}">{_esc(shown_value(value))}</td>'


# A column of the configuration table for serving, SLO and generative runs: its header cell and its cell of a
# configuration (its report, outcome and shown figures).
_ServingColumn = tuple[str, Callable[[Mapping[str, Any], Mapping[str, Any], Figures], str]]


def _load_cell(report: Mapping[str, Any]) -> str:
    if not is_open_loop(report):
        return '<td class="num" data-figure="achieved_rps">—</td>'
    offered, achieved = number(report.get("offered_rps")), number(report.get("achieved_rps"))
    css = ' class="worse"' if report.get("overloaded") is True else ""
    return (f'<td class="num" data-figure="achieved_rps">{_esc(shown_value(offered))} → '
            f"<span{css}>{_esc(shown_value(achieved))}</span></td>")


def _capacity_cell(report: Mapping[str, Any]) -> str:
    capacity = number(report.get("capacity_rps"))
    p99 = number(report.get("capacity_ms_p99"))
    if capacity is None or capacity <= 0:
        text = "—" if capacity is None else "none meets"
        return f'<td class="num" data-figure="capacity_rps">{_esc(text)}</td>'
    at = f'<br><span class="ci">p99 {_esc(shown_value(p99))} ms</span>' if p99 is not None else ""
    return f'<td class="num" data-figure="capacity_rps">{_esc(shown_value(capacity))}{at}</td>'


def _slo_cell(report: Mapping[str, Any], shared: bool) -> str:
    if not report.get("slo"):
        return '<td data-figure="slo_met">—</td>'
    met = report.get("slo_met") is True
    # Several constraints may wrap after their commas.
    which = "" if shared else f'<br><span class="ci">{_esc(report.get("slo")).replace(",", ",<wbr>")}</span>'
    ratio = number(report.get("goodput_ratio"))
    if report.get("slo_met") is None and has_goodput(report) and ratio is not None:
        # Only per-request objectives: no percentile to meet or miss, the share of requests that met them.
        return f'<td data-figure="slo_met">{_esc(share_text(ratio))}{which}</td>'
    return (f'<td data-figure="slo_met"><span class="{"better" if met else "worse"}">{_esc(met_word(report))}'
            f"</span>{which}</td>")


# The tooltip of each generative metric's column.
_TOKEN_TIPS: Final[Mapping[str, str]] = {
    "ttft_p50": "time to first token, median over requests",
    "ttft_p99": "time to first token, p99 over requests",
    "tpot_p50": "time per output token after the first, median over requests",
    "tpot_p99": "time per output token after the first, p99 over requests",
    "tokens_per_s": "output tokens per second in the timed window",
    "goodput": "requests per second that met every per-request objective of the SLO",
}


def _token_head(metric: str) -> str:
    name, unit = TOKEN_TITLES[metric]
    text = f"{name}{unit}" if unit.startswith("/") else f"{name} {unit}"
    return _head(text, f"{_TOKEN_TIPS[metric]} (geometric mean of rounds); below it the change against the baseline")


def _token_cell(metric: str) -> Callable[[Mapping[str, Any], Mapping[str, Any], Figures], str]:
    name, higher_is_better = value_key(metric), BY_NAME[metric].higher_is_better

    def cell(report: Mapping[str, Any], outcome: Mapping[str, Any], shown: Figures) -> str:
        if not is_streaming(report):
            return f'<td class="num" data-figure="{name}">—</td>'
        j = judgement(outcome, metric)
        change = shown.change(metric)
        below = ""
        if j is not None:
            below = (f'<br><span class="{_change_css(j, higher_is_better, change)}" '
                     f'data-figure="{change_key(metric)}">{_esc(shown_change(change))}</span>')
        return f'<td class="num" data-figure="{name}">{_esc(shown_value(shown.value(metric)))}{below}</td>'

    return cell


def _failed_cell(report: Mapping[str, Any], _outcome: Mapping[str, Any], _shown: Figures) -> str:
    failed = number(report.get(FAILED_COL)) if is_streaming(report) else None
    text = "—" if failed is None else f"{failed:g}"
    css = ' class="worse"' if has_failed(report) else ""
    return f'<td class="num" data-figure="{FAILED_COL}"><span{css}>{_esc(text)}</span></td>'


def _head(name: str, title: str, numeric: bool = True, note: str = "") -> str:
    css = ' class="num"' if numeric else ""
    extra = f'<br><span class="ci">{_esc(note)}</span>' if note else ""
    return f'<th{css} title="{_esc(title)}">{_esc(name)}{extra}</th>'


def _serving_columns(reports: Sequence[Mapping[str, Any]]) -> list[_ServingColumn]:
    cols: list[_ServingColumn] = []
    if any(is_open_loop(r) for r in reports):
        cols.append((_head("Offered → achieved", "requests/s offered to the configuration in the timed window, "
                           "and completed in it"), lambda r, _o, _s: _load_cell(r)))
    if any(is_searched(r) for r in reports):
        cols.append((_head("Capacity req/s", "the highest offered rate that met the SLO; the p99 there"),
                     lambda r, _o, _s: _capacity_cell(r)))
    cols += [(_token_head(metric), _token_cell(metric)) for metric in generative_metrics(reports)]
    if shows_failed(reports):
        cols.append((_head("Failed requests", "requests that yielded no token: left out of the latencies"),
                     _failed_cell))
    slos = {str(r["slo"]) for r in reports if r.get("slo")}
    if slos:
        # An SLO every configuration shares is named once, in the header.
        shared = len(slos) == 1 and all(r.get("slo") for r in reports)
        head = _head("SLO", "whether the latency of the timed window met the objective", numeric=False,
                     note=next(iter(slos)) if shared else "")
        cols.append((head, lambda r, _o, _s: _slo_cell(r, shared)))
    return cols


def _config_table(m: Measurement) -> str:
    extra = _serving_columns(m.reports)
    head = ("<thead><tr><th>Configuration</th><th class=\"num\">Throughput /s</th><th class=\"num\">Baseline</th>"
            "<th class=\"num\">Change</th><th class=\"num\">p50 ms</th><th class=\"num\">p99 ms</th>"
            "<th class=\"num\">Baseline p99</th><th class=\"num\">Change</th>"
            "<th class=\"num\" title=\"rounds the figures pool; +N: added by the sequential gate\">Rounds</th>"
            + "".join(head for head, _ in extra)
            + "<th>Verdict</th></tr></thead>")
    rows = []
    if m.errored and not m.reports:
        rows.append(f'<tr><td>{_esc(MEASUREMENT_ITSELF)}</td>' + '<td class="num">—</td>' * (8 + len(extra))
                    + f"<td>{_badge(Verdict.ERROR.value)}</td></tr>")
    for (report, outcome), shown in zip(m.pairs(), m.figures(), strict=True):
        verdict = str(outcome.get("verdict"))
        tput, p99 = judgement(outcome, "throughput"), judgement(outcome, "p99")
        key = outcome.get("config_key") or _config_of(report)
        reason = "" if report.get("status") == fields.STATUS_OK else str(report.get("reason") or "")
        label = (f"{_esc(config_label(report))}<br><span class=\"ci\">{_esc(key)}"
                 + (f" · {_esc(reason)}" if reason else "") + "</span>")
        rows.append(
            f'<tr data-config="{_esc(key)}"><td>{label}</td>'
            f"{_figure_cell('throughput', shown.throughput)}"
            f"{_figure_cell('baseline_throughput', shown.baseline_throughput)}"
            f"{_change_cell(tput, True, shown.throughput_change, 'throughput_change')}"
            f"{_figure_cell('p50_ms', shown.p50_ms)}{_figure_cell('p99_ms', shown.p99_ms)}"
            f"{_figure_cell('baseline_p99_ms', shown.baseline_p99_ms)}"
            f"{_change_cell(p99, False, shown.p99_change, 'p99_change')}"
            f'<td class="num" data-figure="rounds">{_esc(shown.rounds_text() or "—")}</td>'
            + "".join(cell(report, outcome, shown) for _, cell in extra)
            + f"<td>{_badge(verdict)}</td></tr>"
        )
    return f'<table class="configs">{head}<tbody>{"".join(rows)}</tbody></table>'


def _measurement_verdict(m: Measurement) -> str:
    return Verdict.ERROR.value if m.errored else m.verdict


def _anchor(index: int) -> str:
    return f"m{index}"


def _age(saved_at: Any, now: datetime) -> str:
    return age_text(saved_at, now) if isinstance(saved_at, str) else ""


def _measurement_section(plots: _Plots, m: Measurement, index: int, now: datetime) -> str:
    out = [f'<section class="test" id="{_anchor(index)}"><div class="test-head">'
           f"<h2>{_esc(measurement_label(m))}</h2>{_badge(_measurement_verdict(m))}</div>"]
    model = next((str(r["model_name"]) for r in m.reports if r.get("model_name")), "")
    meta = [f"model {model}" if model else "", f"device {m.device_type}" if m.device_type else "",
            f"measurement {m.name!r}" if m.name != "default" else "",
            f"{len(m.reports)} configuration{'' if len(m.reports) == 1 else 's'}"]
    out.append(f'<p class="muted">{_esc(" · ".join(p for p in meta if p))}</p>')
    out.append(_config_table(m))
    if m.errored and (m.error or not m.reports):
        out.append(f'<pre class="error">{_esc(m.error_text())}</pre>')
    why = [(cfg, kind, text) for cfg, kind, text in explanations(m) if cfg != MEASUREMENT_ITSELF]
    if why:
        out.append('<ul class="why">' + "".join(
            f"<li><strong>{_esc(cfg)}</strong> {_kind(kind)} {_esc(text)}</li>" for cfg, kind, text in why) + "</ul>")
    out.extend(f'<p class="muted">note: {_esc(n)}</p>' for n in m.notes
               if not any(n.endswith(t) for _, _, t in why))
    diagnosed = [(config_text(r), str(r["diagnosis"])) for r in m.reports if r.get("diagnosis")]
    if diagnosed:
        out.append('<ul class="diagnosis">' + "".join(
            f"<li><strong>{_esc(cfg)}</strong> {_esc(text)}</li>" for cfg, text in diagnosed) + "</ul>")
    bars, timeline = throughput_bar_data(m), throughput_timeline_data(m)
    wide = [(svg, data) for svg, data in ((_throughput_bars(plots, bars), bars),
                                          (_throughput_timeline(plots, timeline), timeline)) if svg]
    if wide:
        out.append('<h3>Throughput</h3><div class="plots wide">'
                   + "".join(f"<figure{_plot_data(data)}>{svg}</figure>" for svg, data in wide) + "</div>")
    knee = capacity_knee_data(m)
    knee_svg = _capacity_knee(plots, knee)
    if knee_svg:
        out.append('<h3>Latency against offered load (capacity at the SLO)</h3><div class="plots wide">'
                   f"<figure{_plot_data(knee)}>{knee_svg}</figure></div>")
    cdfs = []
    for report, outcome in m.pairs():
        svg = _cdf_plot(plots, report, _baseline_of(outcome), _age(outcome.get("baseline_saved_at"), now))
        if svg:
            cdfs.append(f"<figure>{svg}</figure>")
    if cdfs:
        out.append('<h3>Latency distribution (CDF, this run vs baseline)</h3><div class="plots">'
                   + "".join(cdfs) + "</div>")
    out.append(_token_plots(plots, m, now))
    out.append("</section>")
    return "".join(out)


def _token_plots(plots: _Plots, m: Measurement, now: datetime) -> str:
    """A generative model's time to first token and inter-token latency (CDFs, against the baseline's where
    it kept them) and its output tokens/s over the timed window; empty unless a configuration is streaming."""
    if not any(is_streaming(r) for r in m.reports):
        return ""
    out = []
    dists = []
    for key, _, title, what in TOKEN_DISTRIBUTIONS:
        data = token_distribution_data(m, key)
        svg = _token_distribution(plots, data, title, what, now)
        if svg:
            dists.append(f"<figure{_plot_data(data)}>{svg}</figure>")
    if dists:
        out.append('<h3>Token latency (CDF, this run vs baseline)</h3><div class="plots wide">'
                   + "".join(dists) + "</div>")
    timeline = tokens_timeline_data(m)
    svg = _tokens_timeline(plots, timeline)
    if svg:
        out.append(f'<h3>Output tokens</h3><div class="plots wide"><figure{_plot_data(timeline)}>{svg}</figure></div>')
    return "".join(out)


def _environment(env: Mapping[str, str]) -> str:
    if not env:
        return ""
    rows = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in env.items())
    return f'<details class="env"><summary>Environment</summary><table>{rows}</table></details>'


def html_report(data: Results, *, title: str = "neuronperf report") -> str:
    """The report as one HTML document (see :func:`write_html`)."""
    ms = as_measurements(data)
    env = environment_of(data)
    plots = _Plots()
    now = datetime.now(timezone.utc)
    nav = ""
    if len(ms) > 1:
        nav = ("<nav><h3>Tests</h3><ul>" + "".join(
            f'<li><a href="#{_anchor(i)}">{_esc(measurement_label(m))}</a> {_badge(_measurement_verdict(m))}</li>'
            for i, m in enumerate(ms)) + "</ul></nav>")
    sections = "".join(_measurement_section(plots, m, i, now) for i, m in enumerate(ms))
    stamp = now.strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body><main>"
        f'<h1>{_esc(title)}</h1><p class="muted">Generated {_esc(stamp)} by pytest-neuronperf. '
        "Verdicts compare this run with the stored baselines: throughput regresses when it falls, latency "
        "percentiles when they rise, beyond the tolerance with statistical evidence.</p>"
        f"{_summary(ms)}{_environment(env)}{nav}{sections}"
        "<footer>Plots: dashed grey is the baseline, solid blue this run. Configurations read "
        "“copies x workers”: model copies times worker threads per copy.</footer>"
        "</main></body></html>\n"
    )


def write_html(measurements_or_reports: Results, filename: str | os.PathLike[str]) -> str:
    """Write a self-contained HTML report (summary, per-test tables, latency CDFs against the baseline,
    throughput by configuration and over time, latency against offered load where a capacity search ran,
    and for a generative model its TTFT and inter-token latency CDFs and output tokens over time); returns
    the file name.

    Takes the measurements of a pytest run, a ``--npf-json`` results document, or the report dicts
    ``benchmark()`` returns. Needs matplotlib (``pip install "pytest-neuronperf[report]"``).
    """
    from pytest_neuronperf._util.atomic_write import write_atomic

    text = html_report(measurements_or_reports)
    name = os.fspath(filename)
    os.makedirs(os.path.dirname(os.path.abspath(name)), exist_ok=True)
    write_atomic(name, text.encode("utf-8"))
    return name
