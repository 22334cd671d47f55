"""A round's latency distribution on a log grid, so that the rounds of a side can be pooled.

A tail percentile of one round rests on its few slowest requests. On a shared machine one round in
several catches a burst of preemption and its p99 jumps several-fold while the next round's does
not, so per-round p99 ratios swing by tens of percent and a test on them cannot decide. The p99 of
*all* the requests of a side's rounds moves only by that round's share of slow requests. To pool,
each round keeps its latencies on a log grid of relative width 1/1024 (the runner's histogram's own)
as sorted (grid index, count) pairs; within a step the latencies are taken as spread evenly (in log),
so a pooled percentile is within a step (0.1%) of the exact one and moves smoothly with the data.

:func:`pooled_quantile` gives the pooled percentile and, per round, its influence: the linear term
of the pooled quantile's error (Bahadur's representation), -(n_i / n_mean) (F_i(Q) - F(Q)) / g, with
F_i the round's share at or below the pooled quantile Q and g the density of log latency at Q. The
rounds are the independent units (requests inside a round are not), so the spread of the per-round
influences is the pooled quantile's standard error, as for a ratio estimator over clusters. g comes
from the pooled quantiles at q +- h, with Hall and Sheather's bandwidth h (the rate that makes such
intervals accurate to second order), floored at one grid step so that ties cannot make it infinite.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Final

import numpy as np
import numpy.typing as npt

from pytest_neuronperf.stats.distributions import t_ppf

RESOLUTION: Final = 1.0 / 1024.0
_LOG_STEP: Final = math.log1p(RESOLUTION)
# Latencies at or below this (ms) are kept as this: a clock that read 0 still took time.
_FLOOR_MS: Final = 1e-6
_NORMAL: Final = NormalDist()
# The level of the interval Hall and Sheather's bandwidth is tuned for, and of Woodruff's window.
_BANDWIDTH_LEVEL: Final = 0.95
# The widest window, as a share of the way to the nearer end of the distribution.
_MAX_H: Final = 0.99


@dataclass(frozen=True)
class Sketch:
    """Counts of one round's latencies (ms) per log-grid step: ``keys`` ascending, ``counts`` positive."""

    keys: tuple[int, ...]
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values_ms: npt.ArrayLike, counts: npt.ArrayLike | None = None) -> Sketch:
        """The sketch of ``values_ms`` (each seen ``counts`` times; once each without)."""
        values = np.asarray(values_ms, dtype=np.float64).ravel()
        weights = np.ones(values.size, dtype=np.int64) if counts is None else np.asarray(counts, np.int64).ravel()
        if weights.size != values.size:
            raise ValueError(f"a sketch needs one count per value, got {weights.size} counts for {values.size} values")
        keep = (weights > 0) & np.isfinite(values)
        keys = np.floor(np.log(np.maximum(values[keep], _FLOOR_MS)) / _LOG_STEP).astype(np.int64)
        unique, inverse = np.unique(keys, return_inverse=True)
        summed = np.bincount(inverse, weights=weights[keep], minlength=unique.size).astype(np.int64)
        return cls(tuple(int(k) for k in unique), tuple(int(c) for c in summed))

    @property
    def total(self) -> int:
        return sum(self.counts)

    def share_at_or_below(self, value_ms: float) -> float:
        """The share of the round's latencies at or below ``value_ms``, spread evenly (in log) over each step."""
        total = self.total
        if total == 0:
            return math.nan
        position = math.log(max(value_ms, _FLOOR_MS)) / _LOG_STEP
        key = math.floor(position)
        keys = np.asarray(self.keys, dtype=np.int64)
        counts = np.asarray(self.counts, dtype=np.int64)
        below = float(counts[keys < key].sum()) + float(counts[keys == key].sum()) * (position - key)
        return below / total

    def to_json(self) -> list[list[int]]:
        return [list(self.keys), list(self.counts)]

    @classmethod
    def from_json(cls, data: object, where: str) -> Sketch:
        """Inverse of :meth:`to_json`; ValueError naming ``where`` for anything else."""
        if (not isinstance(data, list) or len(data) != 2
                or not all(isinstance(part, list) for part in data) or len(data[0]) != len(data[1])):
            raise ValueError(f"{where} must be two lists of equal length (grid steps and counts)")
        keys, counts = data
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in (*keys, *counts)):
            raise ValueError(f"{where} must hold whole numbers only")
        if any(b <= a for a, b in itertools.pairwise(keys)) or any(c <= 0 for c in counts):
            raise ValueError(f"{where} must list ascending grid steps with positive counts")
        return cls(tuple(keys), tuple(counts))


def _merged(sketches: Sequence[Sketch]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    keys = np.concatenate([np.asarray(s.keys, dtype=np.int64) for s in sketches])
    counts = np.concatenate([np.asarray(s.counts, dtype=np.int64) for s in sketches])
    unique, inverse = np.unique(keys, return_inverse=True)
    return unique, np.cumsum(np.bincount(inverse, weights=counts, minlength=unique.size)).astype(np.int64)


def _quantile(keys: npt.NDArray[np.int64], cumulative: npt.NDArray[np.int64], q: float) -> float:
    """The q-quantile (ms), the latencies of a grid step spread evenly over it (in log), so that the
    pooled quantile moves smoothly with the data instead of by whole steps."""
    total = float(cumulative[-1])
    rank = min(max(q * total, 0.0), total)
    i = min(int(np.searchsorted(cumulative, rank)), keys.size - 1)
    before = float(cumulative[i - 1]) if i else 0.0
    inside = (rank - before) / max(float(cumulative[i]) - before, 1.0)
    return math.exp((float(keys[i]) + min(max(inside, 0.0), 1.0)) * _LOG_STEP)


def bandwidth(n: int, q: float) -> float:
    """Hall and Sheather's bandwidth for the density at the q-quantile of n samples, kept inside (0, 1)."""
    z, z_level = _NORMAL.inv_cdf(q), _NORMAL.inv_cdf(0.5 + _BANDWIDTH_LEVEL / 2.0)
    shape = math.cbrt(1.5 * _NORMAL.pdf(z) ** 2 / (2.0 * z * z + 1.0))
    h = math.cbrt(z_level * z_level / n) * shape
    return min(h, (1.0 - q) / 2.0, q / 2.0)


@dataclass(frozen=True)
class Pooled:
    """The pooled q-quantile (ms) of a side's rounds and each round's influence on its log."""

    value: float
    influences: npt.NDArray[np.float64]

    @property
    def log_se(self) -> float:
        """The standard error of the pooled quantile's log, from the spread of the rounds' influences."""
        n = self.influences.size
        return float(self.influences.std(ddof=1)) / math.sqrt(n) if n >= 2 else math.inf


def pooled_quantile(sketches: Sequence[Sketch], q: float) -> Pooled:
    """The q-quantile of every latency of ``sketches`` together, with the rounds' influences on its log."""
    if not sketches or any(s.total == 0 for s in sketches):
        raise ValueError("pooling needs at least one round, each with at least one latency")
    if not 0.0 < q < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {q}")
    keys, cumulative = _merged(sketches)
    value = _quantile(keys, cumulative, q)
    sizes = np.array([s.total for s in sketches], dtype=np.float64)
    shares = np.array([s.share_at_or_below(value) for s in sketches], dtype=np.float64)
    pooled_share = float((sizes * shares).sum() / sizes.sum())
    weighted = (sizes / sizes.mean()) * (shares - pooled_share)
    # Woodruff: the window the share's own uncertainty spans, so that a quantile between two modes
    # (the slow share of the rounds moving across 1 - q) gets the gap's low density, not a mode's.
    h = bandwidth(int(cumulative[-1]), q)
    if sizes.size >= 2:
        spread = float(weighted.std(ddof=1)) / math.sqrt(sizes.size)
        h = max(h, min(t_ppf(0.5 + _BANDWIDTH_LEVEL / 2.0, sizes.size - 1.0) * spread, _MAX_H * min(q, 1.0 - q)))
    lo, hi = _quantile(keys, cumulative, q - h), _quantile(keys, cumulative, q + h)
    density = 2.0 * h / max(math.log(hi / lo), _LOG_STEP)
    # A round with more of its latencies at or below Q pulls the pooled quantile down.
    return Pooled(value, -weighted / density)


def exceedance_differences(reference: Sequence[Sketch], current: Sequence[Sketch], threshold_ms: float,
                           ratio: float) -> npt.NDArray[np.float64]:
    """Per round pair: the current round's share above ``ratio`` x ``threshold_ms`` minus the reference
    round's share above ``threshold_ms``.

    With ``threshold_ms`` the reference's pooled q-quantile, a current side whose q-quantile is
    ``ratio`` times the reference's has differences of mean 0; a higher quantile, a positive mean.
    Shares are means of bounded values, so a t-test on these differences needs no density and holds
    where the quantile itself jumps (a quantile at the edge between two modes).
    """
    if len(reference) != len(current) or not reference:
        raise ValueError(f"exceedance needs round pairs, got {len(reference)} reference and "
                         f"{len(current)} current rounds")
    above_ref = np.array([1.0 - s.share_at_or_below(threshold_ms) for s in reference], dtype=np.float64)
    above_cur = np.array([1.0 - s.share_at_or_below(threshold_ms * ratio) for s in current], dtype=np.float64)
    return above_cur - above_ref
