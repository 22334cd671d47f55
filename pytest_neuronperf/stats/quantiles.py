"""Statistics of one measured round: throughput windows, quantiles and their intervals.

Pure numpy and math. Three ideas carry the module:

* Latency samples of one round are time-ordered and autocorrelated (a slow
  stretch makes several consecutive inferences slow), so a quantile interval
  computed as if they were independent is too narrow. The effective sample size
  of the quantile indicator 1[x <= q_hat] (batch means) measures how much
  independent information a round holds, and order-statistic intervals use it.
* Throughput is counted in short bins; bins are grouped into sub-windows whose
  means are close to independent, and a Student t interval over those gives the
  interval of the round's throughput.
* The Student t and binomial distributions come from the regularized incomplete
  beta function, evaluated with a continued fraction, so no scipy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeGuard

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# MLPerf LoadGen states a percentile only when, with one sample above it, the
# chance of seeing at most one exceedance under the true rate 1 - q is <= 1%.
MIN_SAMPLES_CONFIDENCE = 0.99


# ---------------------------------------------------------------- distributions


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of I_x(a, b) (modified Lentz); converges fast for x < (a+1)/(a+b+2)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    # Iterations grow like sqrt(max(a, b)); the cap covers sample counts far beyond a round's.
    for m in range(1, 100_000):
        m2 = 2 * m
        for num in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            return h
    raise ArithmeticError(f"incomplete beta did not converge for a={a}, b={b}, x={x}")


def betainc(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if a <= 0 or b <= 0:
        raise ValueError(f"betainc needs a, b > 0, got a={a}, b={b}")
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(B <= k) for B ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return betainc(n - k, k + 1, 1.0 - p)


def normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def t_cdf(t: float, df: float) -> float:
    """Student t CDF with df > 0 degrees of freedom (df may be fractional, as Welch's is)."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0, got {df}")
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if df > 1e7:
        return normal_cdf(t)
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_ppf(p: float, df: float) -> float:
    """Quantile of the Student t distribution: the t with t_cdf(t, df) == p."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"probability must be in (0, 1), got {p}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_ppf(1.0 - p, df)
    hi = 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    lo = 0.0
    # Bisection: slower than Newton but cannot diverge in the heavy tails of small df.
    while hi - lo > 1e-12 * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# ---------------------------------------------------------------- quantiles


def effective_sample_size(series: npt.ArrayLike, q: float) -> float:
    """How many independent samples the time-ordered ``series`` is worth for its q-quantile.

    Batch means of the indicator 1[x <= q_hat]: with batches of b = floor(sqrt(n))
    consecutive samples (the usual consistent choice, long enough to span the
    correlation of a stationary series and leaving about sqrt(n) batches to
    estimate a variance), n_eff = n * p(1-p) / (b * var(batch means)), where p
    is the observed fraction at or below q_hat. Independent samples give about
    n; an AR(1) series with coefficient phi gives roughly n (1-phi)/(1+phi).
    The result is clipped to [1, n]; a series whose indicator never varies
    (all values tied) is worth n.
    """
    x = np.asarray(series, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        raise ValueError("effective_sample_size needs at least one sample")
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    if n < 4:
        return float(n)
    indicator = (x <= np.quantile(x, q)).astype(np.float64)
    p = float(indicator.mean())
    if p <= 0.0 or p >= 1.0:
        return float(n)
    b = math.isqrt(n)
    a = n // b
    # Drop the remainder from the start: the start is nearest to warm-up.
    batch_means = indicator[n - a * b :].reshape(a, b).mean(axis=1)
    var = float(batch_means.var(ddof=1))
    if var <= 0.0:
        return float(n)
    return float(min(max(n * p * (1.0 - p) / (b * var), 1.0), float(n)))


def _smallest_k(m: int, q: float, target: float) -> int:
    """Smallest k in [0, m] with binom_cdf(k, m, q) >= target."""
    lo, hi = 0, m
    while lo < hi:
        mid = (lo + hi) // 2
        if binom_cdf(mid, m, q) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def quantile_rank_interval(n: int, n_eff: float, q: float, confidence: float = 0.95) -> tuple[int, int] | None:
    """0-based ranks (lo, hi) into the n sorted samples whose values bound the q-quantile.

    Distribution-free: among m = floor(n_eff) independent samples the count B at
    or below the true quantile is Binomial(m, q), so the order statistics of
    1-based ranks l and u cover it with probability >= P(l <= B <= u - 1). l and
    u are equal-tailed at ``confidence``; they are then scaled from m to n
    (lower rank rounded down, upper rounded up, so the scaling only widens).
    None when m samples cannot bound the quantile on both sides: below, when
    (1-q)^m > alpha/2; above, when q^m > alpha/2.
    """
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    if not 0.0 < q < 1.0 or not 0.0 < confidence < 1.0:
        raise ValueError(f"q and confidence must be in (0, 1), got q={q}, confidence={confidence}")
    m = math.floor(min(n_eff, n))
    if m < 1:
        return None
    tail = (1.0 - confidence) / 2.0
    if (1.0 - q) ** m > tail or q**m > tail:
        return None
    # l - 1 is the largest k with P(B <= k) <= tail; u - 1 the smallest with P(B <= k) >= 1 - tail.
    l_rank = _smallest_k(m, q, tail)
    if binom_cdf(l_rank, m, q) > tail:
        l_rank -= 1
    l_rank += 1
    u_rank = _smallest_k(m, q, 1.0 - tail) + 1
    lo = max(0, math.floor(l_rank * n / m) - 1)
    hi = min(n - 1, math.ceil(u_rank * n / m) - 1)
    return lo, hi


def quantile_with_ci(
    series: npt.ArrayLike, q: float, confidence: float = 0.95
) -> tuple[float, tuple[float, float], float]:
    """(estimate, (lo, hi), n_eff) of the q-quantile of a time-ordered series.

    When the series is too short to bound the quantile, the interval is the
    sample range: no narrower claim can be made, and the gate does not judge a
    percentile from so few samples anyway.
    """
    x = np.asarray(series, dtype=np.float64).ravel()
    n_eff = effective_sample_size(x, q)
    ordered = np.sort(x)
    ranks = quantile_rank_interval(x.size, n_eff, q, confidence)
    lo, hi = ranks if ranks is not None else (0, x.size - 1)
    return float(np.quantile(ordered, q)), (float(ordered[lo]), float(ordered[hi])), n_eff


def min_samples_for_quantile(q: float) -> int:
    """The fewest samples from which a q-quantile may be stated (64 for p90, 662 for p99).

    MLPerf LoadGen's early-stopping bound: the smallest n with
    P(Binomial(n, 1 - q) <= 1) <= 1 - 0.99, i.e. even when one of n samples lies
    above the reported value, a true exceedance rate of 1 - q would have
    produced more than one with 99% probability.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    limit = 1.0 - MIN_SAMPLES_CONFIDENCE
    n = max(2, math.ceil(math.log(limit) / math.log(q)))
    while q**n + n * (1.0 - q) * q ** (n - 1) > limit:
        n += 1
    return n


def more_samples_needed(q: float, n_eff: float) -> int:
    """How many more effective samples the q-quantile needs; 0 when it has enough."""
    return max(0, math.ceil(min_samples_for_quantile(q) - n_eff))


# ---------------------------------------------------------------- throughput


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


def mean_ci(values: npt.ArrayLike, confidence: float = 0.95) -> tuple[float, float]:
    """Student t interval of the mean of independent values (at least two)."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError(f"a confidence interval of the mean needs at least 2 values, got {x.size}")
    mean = float(x.mean())
    half = t_ppf(0.5 + confidence / 2.0, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean - half, mean + half


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

    def to_dict(self) -> dict[str, object]:
        """Plain floats, ints, bools and two-element lists: ready for json.dumps."""
        return {
            "throughput": float(self.throughput),
            "throughput_ci": [float(v) for v in self.throughput_ci],
            "p50_ms": float(self.p50_ms),
            "p50_ci": [float(v) for v in self.p50_ci],
            "p99_ms": float(self.p99_ms),
            "p99_ci": [float(v) for v in self.p99_ci],
            "n": int(self.n),
            "n_eff_p50": float(self.n_eff_p50),
            "n_eff_p99": float(self.n_eff_p99),
            "duration_s": float(self.duration_s),
            "stable": bool(self.stable),
            "throughput_cv": float(self.throughput_cv),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> RoundSummary:
        """Inverse of to_dict; unknown keys are ignored so files from newer versions still load."""
        return cls(
            throughput=_float(data, "throughput"),
            throughput_ci=_pair(data, "throughput_ci"),
            p50_ms=_float(data, "p50_ms"),
            p50_ci=_pair(data, "p50_ci"),
            p99_ms=_float(data, "p99_ms"),
            p99_ci=_pair(data, "p99_ci"),
            n=_int(data, "n"),
            n_eff_p50=_float(data, "n_eff_p50"),
            n_eff_p99=_float(data, "n_eff_p99"),
            duration_s=_float(data, "duration_s"),
            stable=_bool(data, "stable"),
            throughput_cv=_float(data, "throughput_cv"),
        )


def summarize_round(
    latencies_ms: npt.ArrayLike,
    bin_counts: npt.ArrayLike,
    bin_s: float,
    duration_s: float | None = None,
    stability_threshold: float = 0.10,
) -> RoundSummary:
    """Build a RoundSummary from a round's time-ordered latencies and completion bins."""
    latencies = np.asarray(latencies_ms, dtype=np.float64).ravel()
    if latencies.size == 0:
        raise ValueError("a round needs at least one latency sample")
    counts = _counts(bin_counts, bin_s)
    p50, p50_ci, n_eff_p50 = quantile_with_ci(latencies, 0.50)
    p99, p99_ci, n_eff_p99 = quantile_with_ci(latencies, 0.99)
    stable, cv = stability(counts, bin_s, stability_threshold)
    span = counts.size * bin_s
    return RoundSummary(
        throughput=float(counts.sum()) / span,
        throughput_ci=throughput_ci(counts, bin_s),
        p50_ms=p50,
        p50_ci=p50_ci,
        p99_ms=p99,
        p99_ci=p99_ci,
        n=int(latencies.size),
        n_eff_p50=n_eff_p50,
        n_eff_p99=n_eff_p99,
        duration_s=float(duration_s if duration_s is not None else span),
        stable=stable,
        throughput_cv=cv,
    )
