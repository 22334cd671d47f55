"""Raw results -> report dicts. ``benchmark`` uses exactly this, so ``get_reports`` reproduces it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_neuronperf.runner.recorder import StreamStats
from pytest_neuronperf.runner.results import ConfigResult, RoundResult
from pytest_neuronperf.spec import fields


def _ms(ns: float) -> float | None:
    return None if math.isnan(ns) else round(ns / 1e6, 4)


def window_throughputs(r: RoundResult, batch_size: int) -> np.ndarray:
    """Throughput of each full sub-window (inferences x batch size per second) of one round."""
    bins = np.zeros(0, dtype=np.int64)
    for c in r.copies:
        if bins.size < c.stats.bins.size:
            bins = np.pad(bins, (0, c.stats.bins.size - bins.size))
        bins[: c.stats.bins.size] += c.stats.bins
    full = r.window_ns // r.bin_ns if r.bin_ns else 0
    if full < 1:
        return np.array([], dtype=np.float64)
    return bins[:full].astype(np.float64) * batch_size / (r.bin_ns / 1e9)


def merged_stats(rounds: Sequence[RoundResult]) -> StreamStats:
    total = StreamStats()
    for r in rounds:
        for c in r.copies:
            total.merge(c.stats)
    return total


def round_summary(r: RoundResult, batch_size: int) -> dict[str, Any]:
    """The run-level figures of one round, for the regression gate and the baseline file."""
    from pytest_neuronperf.stats import quantiles as st

    s = merged_stats([r])
    window_s = r.window_ns / 1e9
    throughput = s.e2e.count * batch_size / window_s if window_s > 0 else 0.0
    tputs = window_throughputs(r, batch_size)
    p50, p99 = s.e2e.percentiles_ns((50, 99))
    series = [t for c in r.copies for t in c.stats.e2e.traces if t.size]
    n_eff = {q: _effective(series, q, s.e2e.count) for q in (0.5, 0.99)}
    ci50 = _quantile_ci(s, 0.5, n_eff[0.5])
    ci99 = _quantile_ci(s, 0.99, n_eff[0.99])
    if tputs.size >= 2:
        stable, cv = st.stability(tputs * (r.bin_ns / 1e9) / batch_size, r.bin_ns / 1e9)
        lo, hi = st.mean_ci(tputs)
        # Scale the sub-window CI to the round's overall throughput (sub-windows omit a partial tail).
        scale = throughput / float(tputs.mean()) if tputs.mean() > 0 else 1.0
        tci = (lo * scale, hi * scale)
    else:
        stable, cv, tci = True, 0.0, (throughput, throughput)
    summary = st.RoundSummary(
        throughput=throughput, throughput_ci=tci,
        p50_ms=p50 / 1e6, p50_ci=ci50, p99_ms=p99 / 1e6, p99_ci=ci99,
        n=s.e2e.count, n_eff_p50=n_eff[0.5], n_eff_p99=n_eff[0.99],
        duration_s=window_s, stable=bool(stable), throughput_cv=float(cv),
    )
    return summary.to_dict()


def _effective(series: list[np.ndarray], q: float, n: int) -> float:
    from pytest_neuronperf.stats import quantiles as st

    traced = sum(t.size for t in series)
    if traced == 0 or n == 0:
        return 0.0
    # Each worker's trace is its own time series; their effective sizes add up.
    ess = sum(st.effective_sample_size(t, q) for t in series if t.size >= 2)
    return float(min(n, ess * n / traced))


def _quantile_ci(s: StreamStats, q: float, n_eff: float) -> tuple[float, float]:
    from pytest_neuronperf.stats import quantiles as st

    n = s.e2e.count
    ranks = st.quantile_rank_interval(n, n_eff, q) if n else None
    if ranks is None:
        return (float("nan"), float("nan"))
    lo, hi = s.e2e.percentiles_ns((100.0 * (ranks[0] + 1) / n, 100.0 * (ranks[1] + 1) / n))
    return (lo / 1e6, hi / 1e6)


def build_report(result: ConfigResult) -> dict[str, Any]:
    report: dict[str, Any] = {key: None for key in fields.ALL_KEYS}
    report.update({k: v for k, v in result.config.items() if k in fields.CONFIG_KEYS})
    report["status"] = result.status
    report["reason"] = result.reason
    if result.status != fields.STATUS_OK or not result.rounds:
        return report
    bs = int(result.config["batch_size"])
    stats = merged_stats(result.rounds)
    window_s = sum(r.window_ns for r in result.rounds) / 1e9
    count = stats.e2e.count
    report["total_infs"] = count * bs
    report["total_s"] = round(window_s, 4)
    report["duration"] = round(window_s, 4)
    report["throughput_avg"] = round(count * bs / window_s, 3) if window_s > 0 else 0.0
    peaks = [window_throughputs(r, bs) for r in result.rounds]
    peak = max((float(p.max()) for p in peaks if p.size), default=report["throughput_avg"])
    report["throughput_peak"] = round(max(peak, report["throughput_avg"]), 3)
    percentiles = stats.e2e.percentiles_ns(tuple(map(float, fields.PERCENTILES)))
    for key, value in zip(fields.LATENCY_KEYS, percentiles, strict=True):
        report[key] = _ms(value)
    infer50, infer99 = stats.infer.percentiles_ns((50.0, 99.0))
    report["infer_ms_p50"], report["infer_ms_p99"] = _ms(infer50), _ms(infer99)
    copies = [c for r in result.rounds for c in r.copies]
    report["load_avg_ms"] = _ms(sum(c.load_ns for c in copies) / len(copies))
    warm_n = sum(c.warmup_count for c in copies)
    report["warmup_avg_ms"] = _ms(sum(c.warmup_ns for c in copies) / warm_n) if warm_n else None
    if count:
        report["preprocess_avg_ms"] = _ms(stats.preprocess_ns / count)
        report["infer_avg_ms"] = _ms(stats.infer.mean_ns())
        report["postprocess_avg_ms"] = _ms(stats.postprocess_ns / count)
        report["e2e_avg_ms"] = _ms(stats.e2e.mean_ns())
    report["latency_samples"] = count
    report["latency_exact"] = stats.e2e.complete and sum(t.size for t in stats.e2e.traces) == count
    cdf = stats.e2e.percentiles_ns(fields.CDF_PERCENTILES)
    report[fields.CDF_KEY] = [[p, _ms(v)] for p, v in zip(fields.CDF_PERCENTILES, cdf, strict=True)]
    report[fields.TIMELINE_KEY] = [
        [[round((i + 0.5) * r.bin_ns / 1e9, 4), round(float(t), 3)] for i, t in enumerate(window_throughputs(r, bs))]
        for r in result.rounds
    ]
    summaries = [round_summary(r, bs) for r in result.rounds]
    report["rounds"] = summaries
    report["stable"] = all(s["stable"] for s in summaries)
    report["throughput_cv"] = round(max(s["throughput_cv"] for s in summaries), 4)
    for key in fields.RESOURCE_KEYS:
        values = [r.resources.get(key) for r in result.rounds if r.resources.get(key) is not None]
        if values:
            report[key] = round(max(values) if key.endswith("peak") else sum(values) / len(values), 2)  # type: ignore[type-var, arg-type]
    if result.cost_per_hour is not None and report["throughput_avg"]:
        report["cost_per_1m_inf"] = round(result.cost_per_hour / (report["throughput_avg"] * 3600) * 1e6, 6)
    return report


def get_reports(results: Sequence[ConfigResult]) -> list[dict[str, Any]]:
    """Summarise raw results (from ``benchmark(..., return_timers=True)``) into report dicts."""
    if isinstance(results, dict) or not isinstance(results, Sequence):
        raise TypeError("get_reports: expected the list returned by benchmark(..., return_timers=True)")
    return [build_report(r) for r in results]
