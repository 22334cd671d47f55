"""Pass / fail / inconclusive decisions on performance regressions (pure, no I/O).

A metric is judged from the per-round summaries of a baseline and a current
run. Rounds, not single inferences, are the unit of evidence: inferences within
a round are autocorrelated and share the round's process placement, so only
the spread between rounds shows how much a rerun of identical code moves.

Each metric gets one of three outcomes, as in Chromium Pinpoint: FAIL (the
evidence says worse than the tolerance), PASS (the evidence says not worse
than the tolerance) and INCONCLUSIVE (collect more rounds, then judge all
rounds together again).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from pytest_neuronperf.gate.sequential import ALPHA, Looks
from pytest_neuronperf.gate.verdict import Verdict, combine
from pytest_neuronperf.gate.wording import ci_pct, num, pct, tolerance_text
from pytest_neuronperf.spec.metrics import BY_NAME, METRICS, Metric
from pytest_neuronperf.stats.distributions import mean_ci, t_cdf, t_ppf
from pytest_neuronperf.stats.quantiles import min_samples_for_quantile
from pytest_neuronperf.stats.rounds import RoundSummary
from pytest_neuronperf.stats.sketch import Pooled, Sketch, exceedance_differences, pooled_quantile

__all__ = ["Judgement", "Verdict", "check_limits", "correct_multiple", "decide", "judge_metric", "needs_confirmation"]

# Level of the per-side intervals (each side's rounds, or a single round's own CI).
CI_LEVEL = 0.95
# Extra length asked for on top of the bare ratio: n_eff is itself an estimate.
DURATION_MARGIN = 1.2
# Below this share of the change's variance coming from the current rounds, more of them cannot
# narrow the interval much (infinitely many would take off at most this share): no more are asked for.
MIN_CURRENT_SHARE = 0.2
# Paired percentiles from this level up (p99) are pooled over rounds; lower ones are judged round by round.
POOLED_FROM_QUANTILE = 0.9
# How a hint names the duration to set: the runner's parameter, or the plugin's flag.
DURATION_NAME = "duration"
MAX_ROUNDS_NAME = "--npf-max-rounds"

TABLE_COLUMNS: tuple[str, ...] = (
    "configuration",
    "metric",
    "baseline",
    "current",
    "change",
    "tolerance",
    "limit",
    "verdict",
)


@dataclass(frozen=True)
class Judgement:
    """The verdict on one metric of one configuration, with its evidence."""

    metric: str
    verdict: Verdict
    baseline: float
    baseline_ci: tuple[float, float]
    current: float
    current_ci: tuple[float, float]
    change: float
    change_ci: tuple[float, float]
    p_value: float | None
    tolerance: float
    rule: str
    message: str
    hint: str = ""
    improved: bool = False
    # How many rounds each side had: with several, baseline / current are geometric means of rounds.
    baseline_rounds: int = 1
    current_rounds: int = 1
    # Inconclusive because a round holds too few samples for the percentile: more rounds cannot help.
    needs_longer_rounds: bool = False
    # Whether more current rounds could still narrow the interval much: not when the baseline's own
    # rounds and its sessions' spread make most of the uncertainty.
    more_rounds_help: bool = True
    # A paired percentile taken over all of each side's requests, pooled over its rounds (not a
    # geometric mean of per-round percentiles).
    pooled_percentile: bool = False

    @property
    def pooled_over_rounds(self) -> bool:
        """True when a side's value comes from several rounds (a geometric mean of per-round values, or a
        pooled percentile), not from one round's own value."""
        return max(self.baseline_rounds, self.current_rounds) > 1

    def to_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "verdict": self.verdict.value,
            "baseline": float(self.baseline),
            "baseline_ci": [float(v) for v in self.baseline_ci],
            "current": float(self.current),
            "current_ci": [float(v) for v in self.current_ci],
            "change": float(self.change),
            "change_ci": [float(v) for v in self.change_ci],
            "p_value": None if self.p_value is None else float(self.p_value),
            "tolerance": float(self.tolerance),
            "rule": self.rule,
            "message": self.message,
            "hint": self.hint,
            "improved": self.improved,
            "baseline_rounds": self.baseline_rounds,
            "current_rounds": self.current_rounds,
            "needs_longer_rounds": self.needs_longer_rounds,
            "more_rounds_help": self.more_rounds_help,
            "pooled_percentile": self.pooled_percentile,
        }


# ---------------------------------------------------------------- judging


def _comparison(metric: str, unit: str, base: float, cur: float, change: float, evidence: _Evidence,
                against: str | None = None) -> str:
    """``throughput 812/s vs baseline 1004/s (...)``, or ``... vs 1004/s at origin/main (3f2a9c1) (...)``."""
    versus = f"vs baseline {num(base)}{unit}" if against is None else f"vs {num(base)}{unit} {against}"
    return f"{metric} {num(cur)}{unit} {versus} ({pct(change)}, {evidence.ci_label} {ci_pct(evidence.change_ci)})"


@dataclass(frozen=True)
class _Evidence:
    """What the data say about the change, in 'badness' units (log ratio signed so worse is positive)."""

    change_ci: tuple[float, float]
    bad_lo: float
    bad_hi: float
    fail: bool
    p_value: float | None
    ci_label: str
    rule: str
    # The bad-side bound a PASS must keep within the tolerance (wider than bad_hi at a sequential look).
    pass_hi: float = math.nan
    # The share of the change's variance that more current rounds would shrink (1: all of it).
    current_share: float = 1.0
    # Even the rounds still allowed could not narrow the interval enough to decide (a non-binding
    # futility stop: it ends the search undecided, so it raises neither error rate).
    futile: bool = False

    @property
    def pass_bound(self) -> float:
        return self.bad_hi if math.isnan(self.pass_hi) else self.pass_hi


def _bounds(tolerance: float, higher_is_better: bool) -> tuple[float, float]:
    """(bad, good): the badness beyond which a change is a regression / an improvement.

    Badness is -log(cur/base) for throughput and +log(cur/base) for latency, so
    a 10% tolerance means throughput below 0.9x or latency above 1.1x.
    """
    below, above = -math.log1p(-tolerance), math.log1p(tolerance)
    return (below, above) if higher_is_better else (above, below)


def _log_ratio(change: float) -> float:
    return math.log1p(change) if change > -1.0 else -math.inf


def _values(rounds: Sequence[RoundSummary], spec: Metric) -> npt.NDArray[np.float64]:
    values = np.array([float(getattr(r, spec.round_value)) for r in rounds], dtype=np.float64)
    if values.size == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError(f"{spec.round_value} must be positive and finite in every round, got {values.tolist()}")
    return values


def measured_in(rounds: Sequence[RoundSummary], spec: Metric) -> bool:
    """Whether every round holds a value of the metric (an optional metric is absent from some)."""
    return bool(rounds) and all(math.isfinite(float(getattr(r, spec.round_value))) for r in rounds)


def _side(rounds: Sequence[RoundSummary], spec: Metric) -> tuple[float, tuple[float, float]]:
    """Point estimate and 95% interval of one side: the round's own CI, or a t-interval over rounds."""
    values = _values(rounds, spec)
    if values.size == 1:
        lo, hi = getattr(rounds[0], spec.round_ci)
        return float(values[0]), (float(lo), float(hi))
    logs = np.log(values)
    lo, hi = mean_ci(logs, CI_LEVEL)
    return float(np.exp(logs.mean())), (math.exp(lo), math.exp(hi))


def _t_evidence(d: float, se: float, df: float, sign: float, bad_bound: float, alpha: float, looks: Looks,
                n: int, rule: str, current_share: float = 1.0) -> _Evidence:
    """The decision on a mean log change ``d`` with standard error ``se`` on ``df`` degrees of freedom.

    FAIL needs the one-sided test of H0 'not worse than the tolerance' to reject: its p-value,
    scaled by the share of alpha this look may spend (:mod:`~pytest_neuronperf.gate.sequential`),
    below ``alpha``. PASS needs the one-sided upper bound at this look's beta within the
    tolerance (with one look: the bad side of the 95% CI). The reported interval is the 95% CI.
    """
    badness = sign * d
    half = t_ppf(0.5 + CI_LEVEL / 2.0, df) * se
    # With zero spread (identical rounds on each side) the change is known exactly.
    exact = 0.0 if badness > bad_bound else 1.0
    raw_p = 1.0 - t_cdf((badness - bad_bound) / se, df) if se > 0 else exact
    look_alpha = looks.alpha_at(n)
    p_value = min(1.0, raw_p * alpha / look_alpha)
    pass_hi = badness + t_ppf(1.0 - looks.beta_at(n), df) * se
    at_look = "" if not looks.sequential else f" (look at {n} of at most {looks.last}: alpha {look_alpha:.2g})"
    return _Evidence(
        change_ci=(math.expm1(d - half), math.expm1(d + half)),
        bad_lo=badness - half,
        bad_hi=badness + half,
        fail=p_value < alpha,
        p_value=p_value,
        ci_label=f"{CI_LEVEL:.0%} CI",
        rule=f"{rule}: fail if one-sided p<{alpha:g}{at_look}",
        pass_hi=pass_hi,
        current_share=current_share,
    )


def _welch(
    x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], sign: float, bad_bound: float, alpha: float,
    looks: Looks, between: tuple[float, float, float] | None = None,
) -> _Evidence:
    """Rounds on both sides: Welch t on per-round log values.

    ``between`` (variance, its df, weight): the between-session variance of the baseline's
    sessions. The current session is one more draw of the session offset, and the baseline's mean
    carries ``weight`` of one (the sum of squared session shares of its rounds), so the difference
    of the means has ``variance * (1 + weight)`` more variance than the rounds show; its degrees of
    freedom enter by Welch-Satterthwaite.
    """
    va, vb = float(x.var(ddof=1)) / x.size, float(y.var(ddof=1)) / y.size
    parts = [(va, x.size - 1.0), (vb, y.size - 1.0)]
    rule = f"Welch t on log values of {x.size} vs {y.size} rounds"
    if between is not None and between[0] > 0:
        tau2, tau_df, weight = between
        parts.append((tau2 * (1.0 + weight), max(tau_df, 1.0)))
        rule += f" plus between-session variance (sd {math.sqrt(tau2):.1%}, {tau_df + 1:.0f} baseline sessions)"
    total = sum(v for v, _ in parts)
    se = math.sqrt(total)
    df = total**2 / sum(v**2 / f for v, f in parts) if se > 0 else x.size + y.size - 2.0
    # What more current rounds would shrink, judged with the pooled round variance: the two sides'
    # own sample variances, from 3 rounds each, are too rough to compare.
    pooled = (float(x.var(ddof=1)) * (x.size - 1) + float(y.var(ddof=1)) * (y.size - 1)) / (x.size + y.size - 2)
    fixed = pooled / x.size + sum(v for v, _ in parts[2:])
    share = (pooled / y.size) / (pooled / y.size + fixed) if pooled > 0 else 1.0
    return _t_evidence(float(y.mean() - x.mean()), se, df, sign, bad_bound, alpha, looks, y.size, rule, share)


def _paired(
    ref: npt.NDArray[np.float64], cur: npt.NDArray[np.float64], sign: float, bad_bound: float, alpha: float,
    looks: Looks,
) -> _Evidence:
    """Rounds measured in pairs (A B B A ...): a paired t on the per-pair log ratios.

    Drift and noise that hit both rounds of a pair alike cancel in their ratio, so the spread
    the test sees is what is left after them.
    """
    d = np.log(cur) - np.log(ref)
    se = float(d.std(ddof=1)) / math.sqrt(d.size)
    rule = f"paired t on log ratios of {d.size} round pairs"
    return _t_evidence(float(d.mean()), se, d.size - 1.0, sign, bad_bound, alpha, looks, d.size, rule)


def _sketches(rounds: Sequence[RoundSummary], spec: Metric) -> list[Sketch] | None:
    """The rounds' sketches of the metric's distribution, where every round kept one (a tail percentile).

    A round's median rests on half its requests and moves little from round to round, so per-round
    ratios judge it well, and with fewer pairs; a tail percentile rests on a round's slowest few.
    """
    if (spec.quantile is None or spec.quantile < POOLED_FROM_QUANTILE or spec.distribution is None
            or spec.higher_is_better or len(rounds) < 2):
        return None
    sketches = [r.sketches.get(spec.distribution) for r in rounds]
    kept = [s for s in sketches if s is not None and s.total > 0]
    return kept if len(kept) == len(rounds) else None


def _pooled_side(side: Pooled) -> tuple[float, tuple[float, float]]:
    half = t_ppf(0.5 + CI_LEVEL / 2.0, side.influences.size - 1.0) * side.log_se
    return side.value, (side.value * math.exp(-half), side.value * math.exp(half))


# The log ratios a paired percentile's interval is searched over (e^-6 .. e^6), and the search's steps.
_RATIO_RANGE = 6.0
_SEARCH_STEPS = 40


def _paired_pooled(ref: Sequence[Sketch], cur: Sequence[Sketch], threshold: float, bad_bound: float, alpha: float,
                   looks: Looks) -> _Evidence:
    """Paired rounds, a latency percentile pooled over each side's rounds: a paired t on exceedance shares.

    At a log ratio x, each pair gives the current round's share above e^x times the reference's pooled
    percentile minus the reference round's share above it (:func:`~pytest_neuronperf.stats.sketch.
    exceedance_differences`); their mean is 0 where the current percentile is e^x times the
    reference's and positive where it is higher. FAIL: the t-test at x = the tolerance says positive
    (p scaled by this look's alpha); PASS: it says negative at this look's beta. The interval is the
    set of x the two-sided 95% test does not reject. Shares are bounded means, so the test needs no
    density and holds where a tail percentile jumps between two modes from round to round.
    """
    n = len(ref)
    df = n - 1.0

    def mean_se(x: float) -> tuple[float, float]:
        d = exceedance_differences(ref, cur, threshold, math.exp(x))
        return float(d.mean()), float(d.std(ddof=1)) / math.sqrt(n)

    def crossing(t: float) -> float:
        """The smallest x where mean + t * se <= 0 (both fall as x grows), kept within the range searched
        (a bound beyond it reads as a change of e^6 or more: nothing to tell)."""
        def above(x: float) -> bool:
            m, se = mean_se(x)
            return m + t * se > 0

        lo, hi = -_RATIO_RANGE, _RATIO_RANGE
        if not above(lo):
            return lo
        if above(hi):
            return hi
        for _ in range(_SEARCH_STEPS):
            mid = (lo + hi) / 2.0
            lo, hi = (mid, hi) if above(mid) else (lo, mid)
        return hi

    m, se = mean_se(bad_bound)
    raw_p = 1.0 - t_cdf(m / se, df) if se > 0 else (0.0 if m > 0 else 1.0)
    look_alpha = looks.alpha_at(n)
    p_value = min(1.0, raw_p * alpha / look_alpha)
    t95 = t_ppf(0.5 + CI_LEVEL / 2.0, df)
    lo95, hi95 = crossing(-t95), crossing(t95)
    # Futility: with the standard error shrinking as 1 / sqrt(pairs) and the mean one standard error
    # further towards either side than it is now, would the last pair allowed reach that decision?
    last = max(looks.last, n)
    se_last = se * math.sqrt(n / last)
    reachable = (m + se - t_ppf(1.0 - looks.alpha_at(last), last - 1.0) * se_last > 0
                 or m - se + t_ppf(1.0 - looks.beta_at(last), last - 1.0) * se_last < 0)
    at_look = "" if not looks.sequential else f" (look at {n} of at most {looks.last}: alpha {look_alpha:.2g})"
    return _Evidence(
        change_ci=(math.expm1(lo95), math.expm1(hi95)),
        bad_lo=lo95,
        bad_hi=hi95,
        fail=p_value < alpha,
        p_value=p_value,
        ci_label=f"{CI_LEVEL:.0%} CI",
        rule=(f"paired t on exceedance shares of pooled percentiles over {n} round pairs: "
              f"fail if one-sided p<{alpha:g}{at_look}"),
        pass_hi=crossing(t_ppf(1.0 - looks.beta_at(n), df)),
        futile=n < last and not reachable,
    )


def _too_few_pooled(spec: Metric, base: Sequence[RoundSummary], cur: Sequence[RoundSummary], looks: Looks,
                    duration_name: str, max_rounds_name: str) -> tuple[str, int, bool] | None:
    """(hint, samples needed, whether longer rounds are needed) when a pooled side has too few samples.

    Pooled over rounds, the effective samples of a side's rounds add up, so more round pairs help
    as long as the pairs allowed (``looks.last``) can bring enough; beyond that, longer rounds.
    """
    if spec.quantile is None or spec.round_n_eff is None:
        return None
    need = min_samples_for_quantile(spec.quantile)
    attr = spec.round_n_eff
    hints, longer = [], False
    for label, rounds in (("current run", cur), ("reference", base)):
        have = sum(float(getattr(r, attr)) for r in rounds)
        if have >= need:
            continue
        per_round = max(have / len(rounds), 1e-9)
        pairs = math.ceil(DURATION_MARGIN * need / per_round)
        if pairs <= looks.last:
            hints.append(f"the {label}'s {len(rounds)} rounds hold {have:.0f} effective samples for {spec.name}, "
                         f"{need} needed: about {pairs} round pairs will")
            continue
        longer = True
        factor = DURATION_MARGIN * need / (per_round * looks.last)
        seconds = max(1, math.ceil(rounds[0].duration_s * factor * looks.last - 1e-9))
        hints.append(f"run about {factor:.1f}x longer ({duration_name}={seconds}s with {max_rounds_name}="
                     f"{looks.last}) to judge {spec.name}: the {label} has {per_round:.0f} effective samples "
                     f"per round, {need} needed over its rounds")
    return ("; ".join(hints), need, longer) if hints else None


def _single(
    base_ci: tuple[float, float], cur_ci: tuple[float, float], change: float, sign: float, bad_bound: float
) -> _Evidence:
    """One round on a side: no spread between rounds to test against, so compare the 95% intervals.

    The change's interval is interval arithmetic on the ratio (the widest change
    both intervals allow); PASS needs its bad-side bound within the tolerance.
    """
    change_ci = (
        cur_ci[0] / base_ci[1] - 1.0 if base_ci[1] > 0 else -1.0,
        cur_ci[1] / base_ci[0] - 1.0 if base_ci[0] > 0 else math.inf,
    )
    bad_lo, bad_hi = sorted(sign * _log_ratio(c) for c in change_ci)
    disjoint = cur_ci[0] > base_ci[1] or cur_ci[1] < base_ci[0]
    return _Evidence(
        change_ci=change_ci,
        bad_lo=bad_lo,
        bad_hi=bad_hi,
        fail=disjoint and sign * _log_ratio(change) > bad_bound,
        p_value=None,
        ci_label="bounds from both 95% CIs",
        rule="single-round 95% CIs: fail if disjoint",
    )


def _too_few_samples(
    spec: Metric, base: Sequence[RoundSummary], cur: Sequence[RoundSummary], duration_name: str,
    same_run: bool = False,
) -> tuple[str, int] | None:
    """(hint, samples needed) when either side's percentile rests on too few effective samples.

    The smallest n_eff among a side's rounds counts: each round's percentile
    enters the comparison on its own. n_eff grows about in proportion to the
    measured duration, so the hint asks for that factor (plus a margin).

    The duration to set is the total, split over the rounds (``--npf-duration`` and ``duration`` are
    per configuration, not per round), so the per-round duration times the factor is multiplied by the
    rounds of the run that would follow the hint: the current run's (a baseline is re-recorded with the
    same rounds; its own count can hold rounds accumulated over many saves).
    """
    if spec.quantile is None or spec.round_n_eff is None:
        return None
    metric = spec.name
    need = min_samples_for_quantile(spec.quantile)
    attr = spec.round_n_eff
    rounds_to_run = max(1, len(cur))
    hints = []
    sides = (("current run", cur), ("reference", base)) if same_run else (("current run", cur), ("baseline", base))
    for label, rounds in sides:
        worst = min(rounds, key=lambda r: float(getattr(r, attr)))
        have = float(getattr(worst, attr))
        if have >= need:
            continue
        factor = DURATION_MARGIN * need / max(have, 1.0)
        # The tiny slack keeps a product that floating point lands just above a whole number from
        # asking for one more second.
        seconds = max(1, math.ceil(worst.duration_s * factor * rounds_to_run - 1e-9))
        verb = "re-record the baseline" if label == "baseline" else "run"
        hints.append(
            f"{verb} about {factor:.1f}x longer ({duration_name}={seconds}s) to judge {metric}: "
            f"the {label} has {have:.0f} effective samples per round, {need} needed"
        )
    return ("; ".join(hints), need) if hints else None


def _between_sessions(rounds: Sequence[RoundSummary], spec: Metric,
                      sessions: Sequence[str | None] | None) -> tuple[float, float, float] | None:
    """(between-session variance, its df, the baseline mean's share of it) of the baseline's rounds."""
    if sessions is None or len(sessions) != len(rounds) or len(set(sessions)) < 2:
        return None
    from pytest_neuronperf.stats.sessions import between_session_variance, session_groups

    groups = session_groups(np.log(_values(rounds, spec)).tolist(), list(sessions))
    if len(groups) < 2:
        return None
    found = between_session_variance(groups)
    sizes = np.array([g.size for g in groups], dtype=np.float64)
    weight = float((sizes**2).sum() / sizes.sum() ** 2)
    return found.tau2, found.df, weight


def _all_unstable_side(baseline: Sequence[RoundSummary], current: Sequence[RoundSummary]) -> str | None:
    for label, rounds in (("current", current), ("baseline", baseline)):
        if not any(r.stable for r in rounds):
            return label
    return None


def judge_metric(
    metric: str,
    baseline: Sequence[RoundSummary],
    current: Sequence[RoundSummary],
    tolerance: float,
    alpha: float = ALPHA,
    duration_name: str = DURATION_NAME,
    *,
    max_rounds_name: str = MAX_ROUNDS_NAME,
    looks: Looks | None = None,
    paired: bool = False,
    against: str | None = None,
    baseline_sessions: Sequence[str | None] | None = None,
) -> Judgement:
    """Judge one metric (a name in :data:`~pytest_neuronperf.spec.metrics.METRICS`) of current rounds
    against baseline rounds.

    Throughput regresses when it falls, latency percentiles when they rise.
    In order: a percentile with too few effective samples on either side is
    INCONCLUSIVE; FAIL when the evidence (Welch with >= 2 rounds a side, else
    the rounds' own intervals) puts the change beyond the tolerance; PASS when
    the change's interval stays on the good side of the tolerance (``improved``
    when it lies beyond the tolerance on the good side); INCONCLUSIVE
    otherwise. A FAIL where every round of one side was unstable becomes
    INCONCLUSIVE unless even the interval's near bound exceeds twice the
    tolerance.

    ``looks``: the sequential schedule this judgement is one look of (its
    round count is the current side's); ``paired``: round i of each side was
    measured next to the other's (an A/B run), judged by a paired t on their
    ratios; ``against`` names the reference in messages (``at origin/main
    (3f2a9c1)``) in place of "baseline"; ``baseline_sessions`` labels each
    baseline round with the session that measured it, so between-session
    variance widens the comparison (:mod:`~pytest_neuronperf.stats.sessions`).
    """
    if metric not in BY_NAME:
        raise ValueError(f"metric must be one of {sorted(BY_NAME)}, got {metric!r}")
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must be a fraction in (0, 1), got {tolerance}")
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    if not baseline or not current:
        raise ValueError("judging needs at least one baseline round and one current round")
    if paired:
        n = min(len(baseline), len(current))
        baseline, current = baseline[:n], current[:n]
    looks = looks or Looks(first=len(current), last=len(current), alpha=alpha)
    spec = BY_NAME[metric]
    sign = -1.0 if spec.higher_is_better else 1.0
    bad_bound, good_bound = _bounds(tolerance, spec.higher_is_better)
    if spec.optional and any(float(getattr(r, spec.round_value)) <= 0 for r in (*baseline, *current)):
        return _none_found(spec, baseline, current, tolerance, against)
    ref_sketches, cur_sketches = (_sketches(baseline, spec), _sketches(current, spec)) if paired else (None, None)
    pooled = ref_sketches is not None and cur_sketches is not None
    if ref_sketches is not None and cur_sketches is not None and spec.quantile is not None:
        ref_pool, cur_pool = pooled_quantile(ref_sketches, spec.quantile), pooled_quantile(cur_sketches, spec.quantile)
        (base, base_ci), (cur, cur_ci) = _pooled_side(ref_pool), _pooled_side(cur_pool)
    else:
        base, base_ci = _side(baseline, spec)
        cur, cur_ci = _side(current, spec)
    change = cur / base - 1.0
    if ref_sketches is not None and cur_sketches is not None:
        ev = _paired_pooled(ref_sketches, cur_sketches, base, bad_bound, alpha, looks)
    elif paired and len(current) >= 2:
        ev = _paired(_values(baseline, spec), _values(current, spec), sign, bad_bound, alpha, looks)
    elif len(baseline) >= 2 and len(current) >= 2:
        between = _between_sessions(baseline, spec, baseline_sessions)
        ev = _welch(np.log(_values(baseline, spec)), np.log(_values(current, spec)), sign, bad_bound, alpha,
                    looks, between)
    else:
        ev = _single(base_ci, cur_ci, change, sign, bad_bound)

    compared = _comparison(metric, spec.unit, base, cur, change, ev, against)
    tol = tolerance_text(tolerance)
    rule = f"{ev.rule} beyond {tol}; pass if the {CI_LEVEL:.0%} CI is within {tol}"
    hint = ""
    p_value = ev.p_value
    improved = ev.bad_hi < -good_bound
    few: tuple[str, int, bool] | None
    if pooled:
        few = _too_few_pooled(spec, baseline, current, looks, duration_name, max_rounds_name)
    else:
        per_round = _too_few_samples(spec, baseline, current, duration_name, same_run=paired)
        few = None if per_round is None else (*per_round, True)
    if few is not None:
        # Not judged at all, so it takes no part in a multiple-comparison correction either.
        verdict, improved, p_value = Verdict.INCONCLUSIVE, False, None
        message = f"{compared}: too few samples to state {metric}"
        hint = few[0]
        rule = (f"{metric} needs >= {few[1]} effective samples over a side's rounds" if pooled
                else f"{metric} needs >= {few[1]} effective samples per round")
    elif ev.fail:
        verdict, message = Verdict.FAIL, f"{compared}, beyond {tol}"
        unstable = _all_unstable_side(baseline, current)
        double_bound, _ = _bounds(min(2.0 * tolerance, 0.99), spec.higher_is_better)
        if unstable is not None and ev.bad_lo <= double_bound:
            verdict = Verdict.INCONCLUSIVE
            message = f"{compared}, beyond {tol} but every {unstable} round was unstable"
            hint = "throughput drifted within the rounds; warm up longer or use a quieter machine"
            rule += f"; an all-unstable side fails only beyond {tolerance_text(2 * tolerance)}"
    elif ev.pass_bound < bad_bound:
        verdict = Verdict.PASS
        if improved and against is None:
            message = f"{compared}, better than baseline by more than {tol}: the baseline looks stale"
        elif improved:
            message = f"{compared}, better by more than {tol}"
        else:
            message = f"{compared}, within {tol}"
    else:
        verdict, hint = Verdict.INCONCLUSIVE, "collect more rounds to narrow the interval"
        if ev.futile:
            hint = (f"{metric} moves too much from round to round here for the pairs allowed (at most "
                    f"{looks.last}: {max_rounds_name}) to decide within {tol}; a quieter machine, longer rounds or "
                    f"a wider tolerance for it (--npf-tolerance={metric}=...) can")
        elif ev.current_share < MIN_CURRENT_SHARE:
            hint = ("the baseline's own spread (its rounds, and the spread between the sessions that recorded "
                    "it) is most of the uncertainty, so more rounds now cannot decide; compare against a "
                    "revision in the same job (--npf-against) or re-record the baseline on this machine")
        elif looks.sequential and not looks.more_allowed(len(current)):
            hint = f"the rounds ran out (at most {looks.last}: {max_rounds_name}) before the evidence decided"
        if ev.bad_lo > bad_bound and ev.p_value is not None:
            message = f"{compared}, probably beyond {tol} but not significant (p={ev.p_value:.2g} >= {alpha:g})"
        elif ev.bad_hi < bad_bound:
            message = f"{compared}, within {tol} at 95% but not yet at the level this look needs"
        else:
            message = f"{compared}, cannot tell whether within {tol}"

    return Judgement(
        metric=metric,
        verdict=verdict,
        baseline=base,
        baseline_ci=base_ci,
        current=cur,
        current_ci=cur_ci,
        change=change,
        change_ci=ev.change_ci,
        p_value=p_value,
        tolerance=tolerance,
        rule=rule,
        message=message,
        hint=hint,
        improved=improved,
        baseline_rounds=len(baseline),
        current_rounds=len(current),
        needs_longer_rounds=few is not None and few[2],
        # Too few samples: the pairs that bring them come first, whatever the test on them says.
        more_rounds_help=ev.current_share >= MIN_CURRENT_SHARE and (few is not None or not ev.futile),
        pooled_percentile=pooled,
    )


def _none_found(spec: Metric, baseline: Sequence[RoundSummary], current: Sequence[RoundSummary], tolerance: float,
                against: str | None) -> Judgement:
    """A side with a round that found none of the metric (a capacity of 0: no rate met the SLO).

    No ratio exists to test; the rounds say it plainly: every current round found none where the
    reference found some is a FAIL, the reverse an improvement, and a mix on either side is undecided.
    """
    base_values = [float(getattr(r, spec.round_value)) for r in baseline]
    cur_values = [float(getattr(r, spec.round_value)) for r in current]
    base, cur = float(np.mean(base_values)), float(np.mean(cur_values))
    versus = "vs baseline" if against is None else "vs"
    where = "" if against is None else f" {against}"
    compared = f"{spec.name} {num(cur)}{spec.unit} {versus} {num(base)}{spec.unit}{where}"
    if all(v <= 0 for v in cur_values) and all(v > 0 for v in base_values):
        verdict, change, message = Verdict.FAIL, -1.0, f"{compared}: {spec.none_found} in any round"
        improved = False
    elif all(v <= 0 for v in base_values) and all(v > 0 for v in cur_values):
        verdict, change, message = Verdict.PASS, math.inf, f"{compared}: in the reference, {spec.none_found}"
        improved = True
    elif all(v <= 0 for v in (*base_values, *cur_values)):
        verdict, change, message = Verdict.PASS, 0.0, f"{compared}: on both sides, {spec.none_found}"
        improved = False
    else:
        verdict, change = Verdict.INCONCLUSIVE, cur / base - 1.0 if base > 0 else math.nan
        message, improved = f"{compared}: in some rounds, {spec.none_found}", False
    return Judgement(
        metric=spec.name, verdict=verdict, baseline=base, baseline_ci=(min(base_values), max(base_values)),
        current=cur, current_ci=(min(cur_values), max(cur_values)), change=change, change_ci=(change, change),
        p_value=None, tolerance=tolerance, rule=f"a side with rounds where {spec.none_found}",
        message=message, hint="" if verdict is not Verdict.INCONCLUSIVE else "collect more rounds",
        improved=improved, baseline_rounds=len(baseline), current_rounds=len(current),
    )


# ---------------------------------------------------------------- many judgements


def correct_multiple(judgements: Sequence[Judgement], method: str = "holm", alpha: float = 0.01) -> list[Judgement]:
    """Adjust p-values across the comparisons of one test; a FAIL no longer significant becomes INCONCLUSIVE.

    Holm-Bonferroni keeps the chance of any false FAIL among m comparisons at
    ``alpha``: the i-th smallest p is multiplied by (m - i + 1), and adjusted
    values are made monotone. Only judgements with a p-value take part; their
    p_value is replaced by the adjusted one. Single-round judgements (no
    p-value) are left as they are.
    """
    if method not in ("holm", "bonferroni", "none"):
        raise ValueError(f"method must be 'holm', 'bonferroni' or 'none', got {method!r}")
    indexed = sorted(((j.p_value, i) for i, j in enumerate(judgements) if j.p_value is not None))
    m = len(indexed)
    adjusted: dict[int, float] = {}
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        if method == "holm":
            # Monotone: a larger raw p never gets a smaller adjusted p than a smaller one did.
            running = max(running, min(1.0, p * (m - rank)))
            adjusted[i] = running
        elif method == "bonferroni":
            adjusted[i] = min(1.0, p * m)
        else:
            adjusted[i] = p
    result = []
    for i, j in enumerate(judgements):
        if i not in adjusted:
            result.append(j)
            continue
        p_adj = adjusted[i]
        if j.verdict is Verdict.FAIL and p_adj >= alpha:
            j = replace(
                j,
                verdict=Verdict.INCONCLUSIVE,
                message=f"{j.message}, but not significant after correcting for {m} comparisons "
                f"(adjusted p={p_adj:.3g})",
                hint="collect more rounds to confirm",
                rule=f"{j.rule}; {method} over {m} comparisons",
            )
        result.append(replace(j, p_value=p_adj))
    return result


def decide(judgements: Sequence[Judgement], strict: bool = False) -> Verdict:
    """A configuration's verdict from its metrics' judgements (:func:`~pytest_neuronperf.gate.verdict.combine`).

    No judgements at all is a PASS: nothing was compared.
    """
    return combine((j.verdict for j in judgements), strict=strict)


def needs_confirmation(judgements: Sequence[Judgement]) -> bool:
    """True when more rounds could still decide: no metric failed, and one is inconclusive for want of rounds.

    A percentile with too few samples per round stays so however many rounds follow (it needs
    longer rounds), so it asks for none; a FAIL is decided already.
    """
    if any(j.verdict is Verdict.FAIL for j in judgements):
        return False
    return any(j.verdict is Verdict.INCONCLUSIVE and not j.needs_longer_rounds and j.more_rounds_help
               for j in judgements)


# ---------------------------------------------------------------- absolute limits and tables


def check_limits(report: Mapping[str, object], **limits: float | None) -> list[str]:
    """Plain-words messages for each absolute limit the report breaks (empty when none).

    ``limits`` are the metrics' limit keywords (``min_throughput=500``, ``max_p99_ms=5``, ...).
    """
    unknown = sorted(set(limits) - {m.limit_keyword for m in METRICS})
    if unknown:
        raise TypeError(f"check_limits: unknown limit(s) {', '.join(unknown)}")
    messages = []
    for spec in METRICS:
        limit = limits.get(spec.limit_keyword)
        if limit is None:
            continue
        key, unit = spec.report_field, spec.unit
        value = report.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            needs = f" ({spec.needs})" if spec.needs else ""
            messages.append(f"{key} is missing from the report{needs}, so the limit {num(limit)}{unit} cannot be "
                            "checked")
        elif spec.limit_is_minimum and value < limit:
            messages.append(f"{key} {num(value)}{unit} is below the minimum {num(limit)}{unit}")
        elif not spec.limit_is_minimum and value > limit:
            messages.append(f"{key} {num(value)}{unit} is above the maximum {num(limit)}{unit}")
    return messages


def table_row(configuration: str, judgement: Judgement) -> dict[str, str]:
    """One row of format_table for a judgement."""
    unit = BY_NAME[judgement.metric].unit
    return {
        "configuration": configuration,
        "metric": judgement.metric,
        "baseline": f"{num(judgement.baseline)}{unit}",
        "current": f"{num(judgement.current)}{unit}",
        "change": pct(judgement.change),
        "tolerance": tolerance_text(judgement.tolerance),
        "verdict": judgement.verdict.value + (" (improved)" if judgement.improved else ""),
    }


def format_table(rows: Sequence[Mapping[str, str]]) -> str:
    """A left-aligned text table of the columns in TABLE_COLUMNS (missing cells are blank)."""
    cells = [list(TABLE_COLUMNS)] + [[str(row.get(c, "")) for c in TABLE_COLUMNS] for row in rows]
    widths = [max(len(line[k]) for line in cells) for k in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
