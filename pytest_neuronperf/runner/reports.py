"""Raw results -> report dicts. ``benchmark`` uses exactly this, so ``get_reports`` reproduces it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pytest_neuronperf.runner.recorder import LatencySummary, StreamStats
from pytest_neuronperf.runner.results import ConfigResult, RoundResult
from pytest_neuronperf.spec import fields

if TYPE_CHECKING:
    from pytest_neuronperf.runner.tokens import TokenStats
    from pytest_neuronperf.spec.slo import Slo

# When a model is slower than its window, the duration suggested is long enough for about this many
# inferences per worker and round: enough to time some, not yet enough for a p99 (that hint comes later).
INFERENCES_TO_SUGGEST = 10


def _ms(ns: float) -> float | None:
    return None if math.isnan(ns) else round(ns / 1e6, 4)


def _summed_bins(r: RoundResult) -> np.ndarray:
    """Completions per time bin of one round, every copy's added up."""
    bins = np.zeros(0, dtype=np.int64)
    for c in r.copies:
        if bins.size < c.stats.bins.size:
            bins = np.pad(bins, (0, c.stats.bins.size - bins.size))
        bins[: c.stats.bins.size] += c.stats.bins
    return bins


def window_throughputs(r: RoundResult, batch_size: int) -> np.ndarray:
    """Throughput of each full sub-window (inferences x batch size per second) of one round."""
    bins = _summed_bins(r)
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


def round_summary(r: RoundResult, batch_size: int, slo: Slo | None = None) -> dict[str, Any]:
    """The run-level figures of one round, for the regression gate and the baseline file."""
    from pytest_neuronperf.stats.rounds import summarize_round

    s = merged_stats([r])
    bins = _summed_bins(r)
    full = r.window_ns // r.bin_ns if r.bin_ns else 0
    # Whole bins only: a partial last bin would read as a dip. A window shorter than one bin (a
    # dataset that ran out at once) has only its partial bin, and so does a window whose few
    # completions all fell in it (a dataset closes the window at its last completion, in that bin).
    counted = bins[:full] if full >= 1 else bins[:1]
    if not counted.sum() and bins.size > counted.size:
        counted = bins[: counted.size + 1]
    # Under open-loop load only completions inside the window count towards the rate.
    completed = (s.completed_in_window if r.load is not None else s.e2e.count) * batch_size
    summary = summarize_round(
        s.e2e, counted * batch_size, r.bin_ns / 1e9, r.window_ns / 1e9,
        completed=completed, to_ms=1e-6,
        capacity=None if r.capacity is None else (r.capacity.capacity_rps, *r.capacity.bracket),
    )
    if r.load is not None:
        from dataclasses import replace

        from pytest_neuronperf.runner.capacity import overloaded

        # Under open-loop load the completions follow the arrivals, whose own spread (Poisson, gamma) is no
        # drift of the model: the round is stable when the copies kept up.
        summary = replace(summary, stable=not overloaded(s, r.window_ns / 1e9))
    if s.tokens is not None and s.tokens.requests:
        from dataclasses import replace

        token = _token_round(s.tokens, r, counted.size, batch_size, slo)
        token_sketches = token.pop("sketches")
        summary = replace(summary, **token, sketches={**summary.sketches, **token_sketches})
    return summary.to_dict()


def good_requests(tokens: TokenStats, slo: Slo | None) -> npt.NDArray[np.bool_] | None:
    """Which recorded requests met every per-request objective of ``slo`` (None: it has none)."""
    if slo is None or not slo.request_limits:
        return None
    table = tokens.requests_table()
    good = np.ones(table.shape[0], dtype=bool)
    column = {"ttft": 1, "tpot": 2, "e2e": 3}
    for lim in slo.request_limits:
        values = table[:, column[lim.metric]]
        # A request of one token has no TPOT: the bound does not apply to it.
        good &= (values <= lim.max_ms * 1e6) | ((values < 0) if lim.metric == "tpot" else False)
    return good


def _token_round(tokens: TokenStats, r: RoundResult, n_bins: int, batch_size: int, slo: Slo | None) -> dict[str, Any]:
    from pytest_neuronperf.stats.rounds import token_fields

    bins = tokens.token_bins[:n_bins] * batch_size
    good = good_requests(tokens, slo)
    good_bins = good_count = None
    if good is not None:
        ends = tokens.requests_table()[:, 0]
        in_window = good & (ends <= r.window_stop_ns)
        good_count = float(in_window.sum()) * batch_size
        index = np.clip((ends[in_window] - r.window_start_ns) // r.bin_ns, 0, max(0, n_bins - 1))
        good_bins = np.bincount(index, minlength=n_bins)[:n_bins] * batch_size
    window_tokens = float(tokens.token_bins.sum()) * batch_size
    return token_fields(tokens.ttft, tokens.tpot, bins, good_bins, r.bin_ns / 1e9, r.window_ns / 1e9,
                        tokens=window_tokens, good=good_count, to_ms=1e-6)


def _seconds(value: float) -> str:
    return f"{value:.3g} s" if value < 10 else f"{value:.0f} s"


def empty_round_reason(result: ConfigResult, rounds: int | None = None) -> str | None:
    """Why a configuration cannot be reported: a round in which no inference completed (None when every
    round timed some).

    The reason says how long one inference took (from the copies' warm-up) and what duration would
    time some, so a model slower than the window gets an error that says what to change. ``rounds`` is
    how many rounds the configuration was to run (default: the rounds it holds).
    """
    n_rounds = max(1, rounds or 0, len(result.rounds))
    for index, r in enumerate(result.rounds):
        if sum(c.stats.e2e.count for c in r.copies):
            continue
        window_s = max(0, r.window_stop_ns - r.window_start_ns) / 1e9
        which = f" of round {index + 1} of {n_rounds}" if n_rounds > 1 else ""
        failed = sum(c.stats.tokens.failed for c in r.copies if c.stats.tokens is not None)
        if failed:
            return (f"the model yielded no token in any of the {failed} requests of the {_seconds(window_s)} timed "
                    f"window{which}: each request was counted as failed; a streaming model's call must return an "
                    "iterator that yields each new token (does it return before generating, or stop at once on an "
                    "end-of-sequence token?)")
        warm_n = sum(c.warmup_count for c in r.copies)
        warm_ns = sum(c.warmup_ns for c in r.copies)
        head = f"no inference completed in the {_seconds(window_s)} timed window{which}"
        if warm_n and warm_ns > 0:
            one_s = warm_ns / warm_n / 1e9
            took = f"one inference took about {_seconds(one_s)} in warm-up"
            took += (", longer than the window" if one_s >= window_s
                     else ", yet none finished in the window (did the model stall, or slow down after warm-up?)")
            per_round = INFERENCES_TO_SUGGEST * one_s
        else:
            took = (f"no warm-up inference was timed (warmup=0), so one inference takes longer than "
                    f"{_seconds(window_s)}; warm up at least once (warmup=1) to learn how long")
            per_round = INFERENCES_TO_SUGGEST * window_s
        # The duration is split over the rounds, so the total must give each round its share.
        total = max(1, math.ceil(max(per_round, 2 * window_s) * n_rounds))
        return (f"{head}: {took}; run at least {total} s (duration={total}, or --npf-duration={total}s "
                f"in pytest) to time some")
    return None


def _phase_averages(report: dict[str, Any], result: ConfigResult) -> None:
    copies = [c for r in result.rounds for c in r.copies]
    if not copies:
        return
    report["load_avg_ms"] = _ms(sum(c.load_ns for c in copies) / len(copies))
    compiled = [c.compile_ns for c in copies if c.compile_ns]
    report["compile_s"] = round(max(compiled) / 1e9, 4) if compiled else None
    warm_n = sum(c.warmup_count for c in copies)
    report["warmup_avg_ms"] = _ms(sum(c.warmup_ns for c in copies) / warm_n) if warm_n else None


def build_report(result: ConfigResult) -> dict[str, Any]:
    report: dict[str, Any] = {key: None for key in fields.ALL_KEYS}
    report.update({k: v for k, v in result.config.items() if k in fields.CONFIG_KEYS})
    report["status"] = result.status
    report["reason"] = result.reason
    report["intra_op_threads"] = result.config.get("intra_op_threads")
    if result.status == fields.STATUS_OK:
        empty = empty_round_reason(result)
        if empty is not None:
            # Raw results from before this check (or built by hand) say "finished"; the report must not.
            report["status"], report["reason"] = fields.STATUS_ERROR, empty
    if report["status"] == fields.STATUS_ERROR:
        _phase_averages(report, result)
        report["latency_samples"] = sum(c.stats.e2e.count for r in result.rounds for c in r.copies)
        return report
    if report["status"] != fields.STATUS_OK or not result.rounds:
        return report
    bs = int(result.config["batch_size"])
    stats = merged_stats(result.rounds)
    window_s = sum(r.window_ns for r in result.rounds) / 1e9
    count = stats.e2e.count
    open_loop = any(r.load is not None for r in result.rounds)
    # Under open-loop load the rate is that of the completions inside the windows.
    completions = stats.completed_in_window if open_loop else count
    report["total_infs"] = completions * bs
    report["total_s"] = round(window_s, 4)
    report["duration"] = round(window_s, 4)
    report["throughput_avg"] = round(completions * bs / window_s, 3) if window_s > 0 else 0.0
    peaks = [window_throughputs(r, bs) for r in result.rounds]
    peak = max((float(p.max()) for p in peaks if p.size), default=report["throughput_avg"])
    report["throughput_peak"] = round(max(peak, report["throughput_avg"]), 3)
    percentiles = stats.e2e.percentiles(tuple(map(float, fields.PERCENTILES)))
    for key, value in zip(fields.LATENCY_KEYS, percentiles, strict=True):
        report[key] = _ms(value)
    infer50, infer99 = stats.infer.percentiles((50.0, 99.0))
    report["infer_ms_p50"], report["infer_ms_p99"] = _ms(infer50), _ms(infer99)
    if stats.device.count:
        device50, device99 = stats.device.percentiles((50.0, 99.0))
        report["device_ms_p50"], report["device_ms_p99"] = _ms(device50), _ms(device99)
    _phase_averages(report, result)
    if count:
        report["preprocess_avg_ms"] = _ms(stats.preprocess_ns / count)
        report["infer_avg_ms"] = _ms(stats.infer.mean_ns())
        report["postprocess_avg_ms"] = _ms(stats.postprocess_ns / count)
        report["e2e_avg_ms"] = _ms(stats.e2e.mean_ns())
    report["latency_samples"] = count
    report["latency_exact"] = stats.e2e.complete and sum(t.size for t in stats.e2e.traces) == count
    cdf = stats.e2e.percentiles(fields.CDF_PERCENTILES)
    report[fields.CDF_KEY] = [[p, _ms(v)] for p, v in zip(fields.CDF_PERCENTILES, cdf, strict=True)]
    report[fields.TIMELINE_KEY] = [
        [[round((i + 0.5) * r.bin_ns / 1e9, 4), round(float(t), 3)] for i, t in enumerate(window_throughputs(r, bs))]
        for r in result.rounds
    ]
    summaries = [round_summary(r, bs, result.slo) for r in result.rounds]
    report["rounds"] = summaries
    report["stable"] = all(s["stable"] for s in summaries)
    report["throughput_cv"] = round(max(s["throughput_cv"] for s in summaries), 4)
    for key in fields.RESOURCE_KEYS:
        values = [r.resources.get(key) for r in result.rounds if r.resources.get(key) is not None]
        if values:
            report[key] = round(max(values) if key.endswith("peak") else sum(values) / len(values), 2)  # type: ignore[type-var, arg-type]
    if result.cost_per_hour is not None and report["throughput_avg"]:
        report["cost_per_1m_inf"] = round(result.cost_per_hour / (report["throughput_avg"] * 3600) * 1e6, 6)
    if open_loop:
        _serving_fields(report, result, stats, window_s)
    if stats.tokens is not None:
        _generative_fields(report, result, stats.tokens, window_s)
    _telemetry_fields(report, result)
    _slo_fields(report, result, stats)
    return report


def _telemetry_fields(report: dict[str, Any], result: ConfigResult) -> None:
    """The device's figures over the rounds: averages averaged, peaks and latency p99s the highest, counts summed."""
    measured = [r.telemetry for r in result.rounds if r.telemetry]
    for key in fields.TELEMETRY_KEYS:
        values = [t[key] for t in measured if isinstance(t.get(key), (int, float)) and not isinstance(t.get(key), bool)]
        if not values:
            continue
        if key.endswith(("_peak", "_p99", "_mb")):
            report[key] = max(values)
        elif key in ("device_errors", "device_executions", "device_failed_executions", "telemetry_reports",
                     "energy_j"):
            report[key] = sum(values)
        else:
            report[key] = round(sum(values) / len(values), 6)
    if report.get("energy_j") is not None and report.get("total_infs"):
        per_inf = report["energy_j"] / report["total_infs"]
        report["joules_per_inf"] = float(f"{per_inf:.4g}")  # microjoules on a small model: keep the digits
        report["joules_per_1m_inf"] = float(f"{per_inf * 1e6:.4g}")
    if measured:
        from pytest_neuronperf.telemetry.diagnosis import diagnose

        report["diagnosis"] = diagnose(report)
    bad = [(i, r.invalid) for i, r in enumerate(result.rounds) if r.invalid]
    if bad and report["status"] == fields.STATUS_OK:
        which = "" if len(result.rounds) == 1 else f" (round {', '.join(str(i + 1) for i, _ in bad)})"
        report["status"] = fields.STATUS_INVALID
        report["reason"] = (f"invalid: {bad[0][1]}{which}; a window in which the device failed is no measurement, "
                            "so it is neither judged nor saved as a baseline")


def _cdf(summary: LatencySummary) -> list[list[float | None]] | None:
    if not summary.count:
        return None
    values = summary.percentiles(fields.CDF_PERCENTILES)
    return [[p, _ms(v)] for p, v in zip(fields.CDF_PERCENTILES, values, strict=True)]


def _generative_fields(report: dict[str, Any], result: ConfigResult, tokens: TokenStats, window_s: float) -> None:
    bs = int(result.config["batch_size"])
    report["generation"] = result.generation.text() if result.generation is not None else "streaming"
    done = tokens.requests
    report["output_tokens"] = round(tokens.output_tokens / done, 3) if done else None
    report["input_tokens"] = round(tokens.input_tokens / tokens.inputs_counted, 3) if tokens.inputs_counted else None
    window_tokens = float(tokens.token_bins.sum()) * bs
    report["output_tokens_per_s"] = round(window_tokens / window_s, 3) if window_s > 0 else None
    report["requests_per_s"] = report["throughput_avg"]
    qs = tuple(float(q) for q in fields.GEN_PERCENTILES)
    for name, summary in (("ttft", tokens.ttft), ("tpot", tokens.tpot), ("itl", tokens.itl)):
        if summary.count:
            for q, value in zip(fields.GEN_PERCENTILES, summary.percentiles(qs), strict=True):
                report[f"{name}_ms_p{q}"] = _ms(value)
    for q in fields.GEN_PERCENTILES:
        report[f"e2e_ms_p{q}"] = report.get(f"latency_ms_p{q}")
    table = tokens.requests_table()
    if table.size:
        per_request = table[:, 4] / np.maximum(table[:, 3], 1) * 1e9
        report["request_tokens_per_s_p50"] = round(float(np.median(per_request)), 3)
    for name, summary in (("prefill", tokens.prefill), ("decode", tokens.decode)):
        if summary.count:
            p50, p99 = summary.percentiles((50.0, 99.0))
            report[f"{name}_ms_p50"], report[f"{name}_ms_p99"] = _ms(p50), _ms(p99)
    report["failed_requests"] = tokens.failed
    report["short_requests"] = tokens.short
    good = good_requests(tokens, result.slo)
    if good is not None:
        # A request counts towards the rate when it finished inside its own round's window.
        in_window = 0
        for r in result.rounds:
            mine = merged_stats([r]).tokens
            if mine is not None:
                met = good_requests(mine, result.slo)
                assert met is not None
                in_window += int((met & (mine.requests_table()[:, 0] <= r.window_stop_ns)).sum())
        report["goodput"] = round(in_window * bs / window_s, 3) if window_s > 0 else None
        report["goodput_ratio"] = round(float(good.sum()) / (good.size + tokens.failed), 4) if good.size else 0.0
    report[fields.TTFT_CDF_KEY] = _cdf(tokens.ttft)
    report[fields.ITL_CDF_KEY] = _cdf(tokens.itl)
    report[fields.TOKENS_TIMELINE_KEY] = [
        [[round((i + 0.5) * r.bin_ns / 1e9, 4), round(float(t) * bs / (r.bin_ns / 1e9), 3)]
         for i, t in enumerate(_round_tokens(r)[: r.window_ns // r.bin_ns if r.bin_ns else 0])]
        for r in result.rounds
    ]
    notes = []
    if tokens.failed:
        notes.append(f"{tokens.failed} of {tokens.failed + done} requests yielded no token: counted as failed "
                     "(left out of the latencies; goodput counts them as missed)")
    if tokens.short:
        asked = tokens.asked_tokens / done if done else 0
        notes.append(f"{tokens.short} of {done} requests yielded fewer tokens than output_tokens asked "
                     f"({report['output_tokens']:g} on average of {asked:g}): the model cannot honour output_tokens "
                     "(does it stop at an end-of-sequence token?), so its figures are for shorter outputs")
    if notes and report["status"] == fields.STATUS_OK:
        report["reason"] = "; ".join(notes)


def _round_tokens(r: RoundResult) -> np.ndarray:
    bins = np.zeros(0, dtype=np.int64)
    for c in r.copies:
        t = c.stats.tokens
        if t is None:
            continue
        if bins.size < t.token_bins.size:
            bins = np.pad(bins, (0, t.token_bins.size - bins.size))
        bins[: t.token_bins.size] += t.token_bins
    return bins


def _serving_fields(report: dict[str, Any], result: ConfigResult, stats: StreamStats, window_s: float) -> None:
    from pytest_neuronperf.runner.capacity import overloaded

    load = next(r.load for r in result.rounds if r.load is not None)
    report["request_rate"] = load.request_rate
    report["arrival"] = load.arrival
    report["offered_rps"] = round(stats.offered / window_s, 3) if window_s > 0 else None
    report["achieved_rps"] = round(stats.completed_in_window / window_s, 3) if window_s > 0 else None
    s50, s99 = stats.service.percentiles((50.0, 99.0))
    report["service_ms_p50"], report["service_ms_p99"] = _ms(s50), _ms(s99)
    w50, w99 = stats.wait.percentiles((50.0, 99.0))
    report["wait_ms_p50"], report["wait_ms_p99"] = _ms(w50), _ms(w99)
    report["late_requests"] = stats.late
    report["dropped_requests"] = stats.dropped
    report["unfinished_requests"] = stats.unfinished
    behind = [i for i, r in enumerate(result.rounds) if overloaded(merged_stats([r]), r.window_ns / 1e9)]
    report["overloaded"] = bool(behind)
    if behind and report["status"] == fields.STATUS_OK:
        which = "" if len(result.rounds) == 1 else f" (in round {', '.join(str(i + 1) for i in behind)})"
        dropped = f", {stats.dropped} dropped at max_concurrency" if stats.dropped else ""
        unfinished = f", {stats.unfinished} unfinished after the drain" if stats.unfinished else ""
        report["status"] = fields.STATUS_OVERLOADED
        report["reason"] = (
            f"overloaded: {report['achieved_rps']:.4g} req/s completed of {report['offered_rps']:.4g} offered"
            f"{dropped}{unfinished}{which}; the copies cannot keep up with request_rate={load.request_rate:g}, so "
            "its latencies are no measurement (lower request_rate, or add copies or workers)")


def _slo_fields(report: dict[str, Any], result: ConfigResult, stats: StreamStats) -> None:
    slo = result.slo
    if slo is None:
        return
    report["slo"] = slo.text()
    if not slo.constraints:
        return  # per-request objectives only: goodput is their answer
    missed = slo.violations(lambda q: stats.e2e.percentiles((q,))[0] / 1e6)
    if report["status"] == fields.STATUS_OVERLOADED:
        missed = ["overloaded", *missed]
    report["slo_met"] = not missed and report["status"] == fields.STATUS_OK
    report["slo_missed"] = "; ".join(missed) or None
    searched = [r.capacity for r in result.rounds if r.capacity is not None]
    if not searched:
        return
    from statistics import geometric_mean

    bs = int(result.config["batch_size"])
    capacities = [c.capacity_rps for c in searched]
    # As every per-round figure pools: the geometric mean over rounds (0 if any round found none).
    if len(capacities) == 1:
        pooled = capacities[0]
    else:
        pooled = geometric_mean(capacities) if all(c > 0 for c in capacities) else 0.0
    report["capacity_rps"] = round(pooled, 3)
    # The details are one round's, the round whose capacity is the median, so that its bracket, its steps
    # and the latency at its capacity belong together.
    first = sorted(searched, key=lambda c: c.capacity_rps)[(len(searched) - 1) // 2]
    report["capacity_low_rps"], report["capacity_high_rps"] = (round(v, 3) for v in first.bracket)
    at = first.at_capacity()
    if at is not None:
        report["capacity_ms_p50"] = round(at.percentiles_ms.get("p50_ms", math.nan), 4)
        report["capacity_ms_p99"] = round(at.percentiles_ms.get("p99_ms", math.nan), 4)
    if result.cost_per_hour is not None and pooled > 0:
        report["cost_per_1m_inf_at_capacity"] = round(result.cost_per_hour / (pooled * bs * 3600) * 1e6, 6)
    report[fields.CAPACITY_STEPS_KEY] = [s.to_dict() for s in first.steps]
    if pooled == 0 and first.reason:
        report["reason"] = first.reason


def get_reports(results: Sequence[ConfigResult]) -> list[dict[str, Any]]:
    """Summarise raw results (from ``benchmark(..., return_timers=True)``) into report dicts."""
    if isinstance(results, dict) or not isinstance(results, Sequence):
        raise TypeError("get_reports: expected the list returned by benchmark(..., return_timers=True)")
    return [build_report(r) for r in results]
