"""Quantiles of one round's latencies and their distribution-free intervals (pure numpy and math).

Latency samples of one round are time-ordered and autocorrelated (a slow
stretch makes several consecutive inferences slow), so a quantile interval
computed as if they were independent is too narrow. The effective sample size
of the quantile indicator 1[x <= q_hat] (batch means) measures how much
independent information a round holds, and order-statistic intervals use it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from pytest_neuronperf.stats.distributions import binom_cdf

# MLPerf LoadGen states a percentile only when, with one sample above it, the
# chance of seeing at most one exceedance under the true rate 1 - q is <= 1%.
MIN_SAMPLES_CONFIDENCE = 0.99


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
