"""The round summary: what one round of one configuration measured, the one thing the gate compares.

:func:`summarize_round` is its only producer (the runner's reports call it with each round's
latency recorder and completion bins). Throughput is counted in short bins; bins are grouped into
sub-windows whose means are close to independent, and a Student t interval over those gives the
interval of the round's throughput.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, Final, Protocol, TypeGuard, cast

import numpy as np
import numpy.typing as npt

from pytest_neuronperf.stats.distributions import mean_ci
from pytest_neuronperf.stats.quantiles import effective_sample_size, quantile_rank_interval
from pytest_neuronperf.stats.sketch import Sketch

FloatArray = npt.NDArray[np.float64]


def _counts(bin_counts: npt.ArrayLike, bin_s: float) -> FloatArray:
    counts = np.asarray(bin_counts, dtype=np.float64).ravel()
    if bin_s <= 0:
        raise ValueError(f"bin_s must be > 0, got {bin_s}")
    if counts.size == 0 or float(counts.sum()) <= 0.0:
        raise ValueError("no inference completed in the measured window")
    return counts


def window_throughputs(bin_counts: npt.ArrayLike, bin_s: float) -> FloatArray:
    """Throughput (inferences/s) of each sub-window of a round.

    Consecutive bins are grouped into a = max(3, round(sqrt(bins))) sub-windows
    (each bin its own window when there are fewer than 3 bins). Longer windows
    average out the quantisation of short bins and lie far enough apart to be
    nearly independent; the sqrt rule balances that against having enough
    windows. Leftover bins are dropped from the start, nearest to warm-up.
    """
    counts = _counts(bin_counts, bin_s)
    a = min(counts.size, max(3, round(math.sqrt(counts.size))))
    b = counts.size // a
    used = counts[counts.size - a * b :]
    result: FloatArray = used.reshape(a, b).sum(axis=1) / (b * bin_s)
    return result


def throughput_ci(bin_counts: npt.ArrayLike, bin_s: float, confidence: float = 0.95) -> tuple[float, float]:
    """Interval of a round's mean throughput: the sub-window spread around the overall mean."""
    counts = _counts(bin_counts, bin_s)
    windows = window_throughputs(counts, bin_s)
    if windows.size < 2:
        raise ValueError("a throughput interval needs at least 2 bins; run longer or shorten the bins")
    lo, hi = mean_ci(windows, confidence)
    overall = float(counts.sum()) / (counts.size * bin_s)
    half = (hi - lo) / 2.0
    return max(0.0, overall - half), overall + half


def stability(bin_counts: npt.ArrayLike, bin_s: float, threshold: float = 0.10) -> tuple[bool, float]:
    """(stable, cv) of a round's throughput over its sub-windows.

    cv is the coefficient of variation of the sub-window throughputs. A round is
    unstable when any of these holds:
    * fewer than 3 sub-windows (stability cannot be shown);
    * drift: the mean of the last third of the sub-windows differs from the mean
      of the first third by more than ``threshold`` of the overall mean;
    * Triton's rule fails: one of the last three sub-windows lies more than
      ``threshold`` away from their average.
    """
    windows = window_throughputs(bin_counts, bin_s)
    mean = float(windows.mean())
    if mean <= 0.0:
        return False, 0.0  # every completion fell in bins dropped from the start: nothing to show
    cv = float(windows.std(ddof=1)) / mean if windows.size >= 2 else 0.0
    if windows.size < 3:
        return False, cv
    k = max(1, windows.size // 3)
    drift = abs(float(windows[-k:].mean()) - float(windows[:k].mean())) / mean
    last = windows[-3:]
    last_mean = float(last.mean())
    spread = float(np.max(np.abs(last - last_mean))) / last_mean if last_mean > 0 else math.inf
    return drift <= threshold and spread <= threshold, cv


# ---------------------------------------------------------------- round summary


def _field(data: Mapping[str, object], name: str) -> object:
    if name not in data:
        raise ValueError(f"round summary is missing {name!r}")
    return data[name]


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass, but true/false in a numeric field is a corrupt file.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _float(data: Mapping[str, object], name: str) -> float:
    value = _field(data, name)
    if not _is_number(value):
        raise ValueError(f"round summary field {name!r} must be a number, got {value!r}")
    return float(value)


def _int(data: Mapping[str, object], name: str) -> int:
    value = _field(data, name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"round summary field {name!r} must be an integer, got {value!r}")
    return value


def _bool(data: Mapping[str, object], name: str) -> bool:
    value = _field(data, name)
    if not isinstance(value, bool):
        raise ValueError(f"round summary field {name!r} must be true or false, got {value!r}")
    return value


def _pair(data: Mapping[str, object], name: str) -> tuple[float, float]:
    value = _field(data, name)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        # JSON has no NaN: an interval that could not be bounded is stored as [null, null].
        if value[0] is None and value[1] is None:
            return math.nan, math.nan
        lo, hi = value
        if _is_number(lo) and _is_number(hi):
            return float(lo), float(hi)
    raise ValueError(f"round summary field {name!r} must be a pair of numbers or [null, null], got {value!r}")


def _sketches(data: Mapping[str, object], name: str) -> dict[str, Sketch]:
    value = _field(data, name)
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ValueError(f"round summary field {name!r} must map distribution names to sketches, got {value!r}")
    return {k: Sketch.from_json(v, f"round summary field {name}.{k}") for k, v in value.items()}


@dataclass(frozen=True)
class RoundSummary:
    """What one round (a fresh process set) of one configuration measured.

    Intervals are 95%. A percentile interval that could not be bounded (too
    few effective samples) is the sample range, or NaN where the producer had
    none; the gate does not judge such a percentile.
    """

    throughput: float
    throughput_ci: tuple[float, float]
    p50_ms: float
    p50_ci: tuple[float, float]
    p99_ms: float
    p99_ci: tuple[float, float]
    n: int
    n_eff_p50: float
    n_eff_p99: float
    duration_s: float
    stable: bool
    throughput_cv: float
    # A capacity search's answer (requests/s at the SLO) and its bracket; NaN in rounds without one.
    capacity_rps: float = math.nan
    capacity_ci: tuple[float, float] = (math.nan, math.nan)
    # A generative model's: TTFT and TPOT percentiles (ms) with their intervals and effective sample sizes,
    # output tokens/s and goodput (requests/s meeting every per-request objective); NaN in other rounds.
    ttft_p50_ms: float = math.nan
    ttft_p50_ci: tuple[float, float] = (math.nan, math.nan)
    n_eff_ttft_p50: float = math.nan
    ttft_p99_ms: float = math.nan
    ttft_p99_ci: tuple[float, float] = (math.nan, math.nan)
    n_eff_ttft_p99: float = math.nan
    tpot_p50_ms: float = math.nan
    tpot_p50_ci: tuple[float, float] = (math.nan, math.nan)
    n_eff_tpot_p50: float = math.nan
    tpot_p99_ms: float = math.nan
    tpot_p99_ci: tuple[float, float] = (math.nan, math.nan)
    n_eff_tpot_p99: float = math.nan
    tokens_per_s: float = math.nan
    tokens_per_s_ci: tuple[float, float] = (math.nan, math.nan)
    goodput: float = math.nan
    goodput_ci: tuple[float, float] = (math.nan, math.nan)
    # The round's distributions on a log grid ("latency", and "ttft"/"tpot" for a generative model), from
    # which a paired comparison pools the percentiles of a side's rounds (stats/sketch.py).
    sketches: Mapping[str, Sketch] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, object]:
        """Plain floats, ints, bools and lists: ready for json.dumps.

        A field with a default (measured by some rounds only) is left out where the round has none.
        """
        return {f.name: _WRITERS[f.type](getattr(self, f.name)) for f in fields(self)
                if _required(f) or _present(getattr(self, f.name))}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RoundSummary:
        """Inverse of to_dict; unknown keys are ignored so files from newer versions still load."""
        return cls(**{f.name: _READERS[f.type](data, f.name) for f in fields(cls)  # type: ignore[arg-type]
                      if _required(f) or data.get(f.name) is not None})


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _present(value: object) -> bool:
    if isinstance(value, Mapping):
        return bool(value)
    if isinstance(value, tuple):
        return any(_present(v) for v in value)
    return not (isinstance(value, float) and math.isnan(value))


# How each field type of RoundSummary is written and checked on reading (its annotation, as text).
_WRITERS: Final[Mapping[object, Callable[[Any], object]]] = {
    "float": float,
    "int": int,
    "bool": bool,
    "tuple[float, float]": lambda pair: [float(v) for v in pair],
    "Mapping[str, Sketch]": lambda sketches: {name: s.to_json() for name, s in sketches.items()},
}
_READERS: Final[Mapping[object, Callable[[Mapping[str, object], str], object]]] = {
    "float": _float,
    "int": _int,
    "bool": _bool,
    "tuple[float, float]": _pair,
    "Mapping[str, Sketch]": _sketches,
}


class LatencyDistribution(Protocol):
    """The latencies of one round, however they are kept.

    ``traces`` are time-ordered series (one per worker thread, each possibly only a prefix of what it
    timed), from which the effective sample size is estimated; ``percentiles`` answers for all
    ``count`` samples (nearest rank), q in [0, 100]. The runner's latency recorder is one; so is
    :class:`LatencySamples`, for a plain array.
    """

    @property
    def count(self) -> int: ...

    @property
    def traces(self) -> Sequence[npt.NDArray[np.int64] | FloatArray]: ...

    def percentiles(self, qs: tuple[float, ...]) -> list[float]: ...

    def value_counts(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Every distinct value held (within the keeper's resolution), with how often it was seen."""
        ...


class LatencySamples:
    """Every latency of a round in one time-ordered array."""

    def __init__(self, values: npt.ArrayLike) -> None:
        self.values = np.asarray(values, dtype=np.float64).ravel()

    @property
    def count(self) -> int:
        return int(self.values.size)

    @property
    def traces(self) -> Sequence[FloatArray]:
        return [self.values]

    def percentiles(self, qs: tuple[float, ...]) -> list[float]:
        if self.values.size == 0:
            return [math.nan] * len(qs)
        return [float(v) for v in np.percentile(self.values, qs, method="inverted_cdf")]

    def value_counts(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        values, counts = np.unique(self.values, return_counts=True)
        return values, counts.astype(np.int64)


def pooled_effective_size(latency: LatencyDistribution, q: float) -> float:
    """The effective sample size of all the round's samples for the q-quantile.

    Each worker's trace is its own time series, so their effective sizes add up; where the traces
    hold only part of the samples, the ratio they show is applied to the whole count.
    """
    traced = sum(int(t.size) for t in latency.traces)
    if traced == 0 or latency.count == 0:
        return 0.0
    ess = sum(effective_sample_size(t, q) for t in latency.traces if t.size >= 2)
    return float(min(latency.count, ess * latency.count / traced))


def _quantile_ci(latency: LatencyDistribution, q: float, n_eff: float,
                 to_ms: float) -> tuple[float, float]:
    n = latency.count
    ranks = quantile_rank_interval(n, n_eff, q) if n else None
    if ranks is None:
        return (math.nan, math.nan)
    lo, hi = latency.percentiles((100.0 * (ranks[0] + 1) / n, 100.0 * (ranks[1] + 1) / n))
    return (lo * to_ms, hi * to_ms)


def summarize_round(
    latency: LatencyDistribution | npt.ArrayLike,
    bin_counts: npt.ArrayLike,
    bin_s: float,
    duration_s: float | None = None,
    stability_threshold: float = 0.10,
    *,
    completed: float | None = None,
    to_ms: float = 1.0,
    capacity: tuple[float, float, float] | None = None,
) -> RoundSummary:
    """Build the RoundSummary of a round from its latencies and its completions per time bin.

    ``latency`` is a :class:`LatencyDistribution` or a time-ordered array of latencies;
    ``to_ms`` turns its unit into milliseconds (1e-6 for nanoseconds). ``bin_counts`` are the
    completions in each whole bin of ``bin_s`` seconds. The throughput is ``completed`` (default:
    the bins' sum) over ``duration_s`` (default: the bins' span); its interval is the sub-window
    spread of the bins, centred on it. ``capacity``: a capacity search's (capacity, low, high) in
    requests/s.
    """
    dist = cast(LatencyDistribution, latency) if _is_distribution(latency) else LatencySamples(latency)  # type: ignore[arg-type]
    if dist.count == 0:
        raise ValueError("a round needs at least one latency sample")
    counts = _counts(bin_counts, bin_s)
    span = counts.size * bin_s
    window_s = float(duration_s if duration_s is not None else span)
    throughput = float(completed if completed is not None else counts.sum()) / window_s
    if counts.size >= 2:
        lo, hi = throughput_ci(counts, bin_s)
        # Centre the bins' interval on the round's own throughput (the bins leave out a partial tail).
        scale = throughput / (float(counts.sum()) / span)
        tci = (lo * scale, hi * scale)
    else:
        tci = (throughput, throughput)
    stable, cv = stability(counts, bin_s, stability_threshold)
    p50, p99 = (v * to_ms for v in dist.percentiles((50.0, 99.0)))
    n_eff_p50, n_eff_p99 = pooled_effective_size(dist, 0.50), pooled_effective_size(dist, 0.99)
    return RoundSummary(
        throughput=throughput,
        throughput_ci=tci,
        p50_ms=p50,
        p50_ci=_quantile_ci(dist, 0.50, n_eff_p50, to_ms),
        p99_ms=p99,
        p99_ci=_quantile_ci(dist, 0.99, n_eff_p99, to_ms),
        n=dist.count,
        n_eff_p50=n_eff_p50,
        n_eff_p99=n_eff_p99,
        duration_s=window_s,
        stable=stable,
        throughput_cv=cv,
        capacity_rps=math.nan if capacity is None else capacity[0],
        capacity_ci=(math.nan, math.nan) if capacity is None else (capacity[1], capacity[2]),
        sketches={"latency": sketch_of(dist, to_ms)},
    )


def sketch_of(latency: LatencyDistribution, to_ms: float = 1.0) -> Sketch:
    """The round's latencies on the sketch's log grid, in milliseconds."""
    values, counts = latency.value_counts()
    return Sketch.of(values * to_ms, counts)


def _is_distribution(obj: object) -> bool:
    return hasattr(obj, "traces") and callable(getattr(obj, "percentiles", None)) and hasattr(obj, "count")


def _rate_ci(bin_counts: FloatArray, bin_s: float, window_s: float, total: float) -> tuple[float, tuple[float, float]]:
    """A rate (``total`` over ``window_s``) and its interval from the spread of its per-bin counts."""
    rate = total / window_s
    if bin_counts.size < 2 or float(bin_counts.sum()) <= 0:
        return rate, (rate, rate)
    lo, hi = throughput_ci(bin_counts, bin_s)
    scale = rate / (float(bin_counts.sum()) / (bin_counts.size * bin_s))
    return rate, (lo * scale, hi * scale)


def token_fields(ttft: LatencyDistribution, tpot: LatencyDistribution, token_bins: npt.ArrayLike,
                 good_bins: npt.ArrayLike | None, bin_s: float, window_s: float, *, tokens: float,
                 good: float | None, to_ms: float = 1.0) -> dict[str, Any]:
    """A generative round's fields of :class:`RoundSummary` (to ``dataclasses.replace`` into it).

    ``ttft``/``tpot``: the round's per-request latencies; ``token_bins``: output tokens per whole bin,
    ``tokens`` all of the window's; ``good_bins``/``good``: the same for requests that met every
    per-request objective (None without such an SLO). ``sketches`` holds only the token distributions:
    merge it into the round's own.
    """
    out: dict[str, Any] = {}
    sketches: dict[str, Sketch] = {}
    for name, dist in (("ttft", ttft), ("tpot", tpot)):
        if dist.count == 0:
            continue
        sketches[name] = sketch_of(dist, to_ms)
        for q in (50, 99):
            n_eff = pooled_effective_size(dist, q / 100)
            out[f"{name}_p{q}_ms"] = dist.percentiles((float(q),))[0] * to_ms
            out[f"{name}_p{q}_ci"] = _quantile_ci(dist, q / 100, n_eff, to_ms)
            out[f"n_eff_{name}_p{q}"] = n_eff
    bins = np.asarray(token_bins, dtype=np.float64).ravel()
    out["tokens_per_s"], out["tokens_per_s_ci"] = _rate_ci(bins, bin_s, window_s, tokens)
    if good is not None and good_bins is not None:
        out["goodput"], out["goodput_ci"] = _rate_ci(np.asarray(good_bins, dtype=np.float64).ravel(), bin_s,
                                                     window_s, good)
    out["sketches"] = sketches
    return out
