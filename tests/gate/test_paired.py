"""Paired (A/B) decisions: rounds measured next to the reference's, judged on per-pair log ratios.

The last part checks the sequential schedule's error rates by simulation: a run that adds one pair at
a time while the judgement asks for more, judged by the real ``judge_metric`` on synthetic rounds.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator

import numpy as np
import numpy.typing as npt
import pytest

from pytest_neuronperf.gate import judge as gate
from pytest_neuronperf.gate.judge import Judgement, Verdict
from pytest_neuronperf.gate.sequential import Looks
from pytest_neuronperf.stats import distributions
from pytest_neuronperf.stats.rounds import RoundSummary
from tests.gate import test_judge as judge_rounds

AGAINST = "at main (abc1234)"


# The rounds of tests/gate/test_judge.py, 2 s long (what the sample-minimum hints scale from).
make_round = functools.partial(judge_rounds.make_round, duration_s=2.0)


def shared_noise_pairs(seed: int, pairs: int, level: float = 1.0, shared_sd: float = 0.20,
                       round_sd: float = 0.01) -> tuple[list[RoundSummary], list[RoundSummary]]:
    """(reference, current) rounds of an A/B run on a noisy machine.

    Each pair is multiplied by one common factor (drift, a noisy neighbour: lognormal, sd
    ``shared_sd``), each round by its own small noise; the current side's metrics move by ``level``
    (throughput x level, latencies / level).
    """
    rng = np.random.default_rng(seed)
    shared = np.exp(rng.normal(0.0, shared_sd, size=pairs))
    own = np.exp(rng.normal(0.0, round_sd, size=(2, pairs)))
    reference = [make_round(1000.0 * s * e, 10.0 / (s * e), 20.0 / (s * e))
                 for s, e in zip(shared, own[0], strict=True)]
    current = [make_round(1000.0 * level * s * e, 10.0 / (level * s * e), 20.0 / (level * s * e))
               for s, e in zip(shared, own[1], strict=True)]
    return reference, current


# ---------------------------------------------------------------- pairing cancels shared noise


def test_shared_offset_cancels_in_paired_mode_but_not_unpaired() -> None:
    reference, current = shared_noise_pairs(seed=1, pairs=5)
    spread = np.std(np.log([r.throughput for r in reference]), ddof=1)
    assert spread > 0.10  # the machine moved both sides by far more than the 5% tolerance
    for metric in ("throughput", "p50", "p99"):
        paired = gate.judge_metric(metric, reference, current, 0.05, paired=True, against=AGAINST)
        assert paired.verdict is Verdict.PASS, paired.message
        assert "paired t on log ratios of 5 round pairs" in paired.rule
        assert paired.change_ci[0] > -0.05 and paired.change_ci[1] < 0.05
        welch = gate.judge_metric(metric, reference, current, 0.05)
        assert welch.verdict is Verdict.INCONCLUSIVE, welch.message
        assert "Welch" in welch.rule
        assert welch.change_ci[1] - welch.change_ci[0] > 5 * (paired.change_ci[1] - paired.change_ci[0])


def test_slowdown_under_shared_noise_fails_in_paired_mode() -> None:
    reference, current = shared_noise_pairs(seed=2, pairs=5, level=0.8)
    j = gate.judge_metric("throughput", reference, current, 0.05, paired=True, against=AGAINST)
    assert j.verdict is Verdict.FAIL, j.message
    assert j.change == pytest.approx(-0.2, abs=0.02)
    assert j.p_value is not None and j.p_value < 0.01
    # The same rounds unpaired cannot see it through the machine's noise.
    assert gate.judge_metric("throughput", reference, current, 0.05).verdict is not Verdict.FAIL
    p99 = gate.judge_metric("p99", reference, current, 0.05, paired=True, against=AGAINST)
    assert p99.verdict is Verdict.FAIL and p99.change == pytest.approx(0.25, abs=0.03)


def test_failure_message_names_the_reference_not_a_baseline() -> None:
    reference, current = shared_noise_pairs(seed=2, pairs=5, level=0.8)
    j = gate.judge_metric("throughput", reference, current, 0.05, paired=True, against=AGAINST)
    assert re.fullmatch(r"throughput \d+/s vs \d+/s at main \(abc1234\) \(-\d+\.\d%, 95% CI -\d+%\.\.-\d+%\), "
                        r"beyond 5%", j.message), j.message
    assert "baseline" not in j.message
    row = gate.table_row("b1-n1-w1-p1", j)
    assert row["verdict"] == "fail"


def test_pass_and_improvement_messages_name_the_reference() -> None:
    reference, current = shared_noise_pairs(seed=3, pairs=4)
    same = gate.judge_metric("throughput", reference, current, 0.05, paired=True, against=AGAINST)
    assert same.verdict is Verdict.PASS
    assert " at main (abc1234) (" in same.message and same.message.endswith("within 5%")
    reference, faster = shared_noise_pairs(seed=3, pairs=4, level=1.3)
    better = gate.judge_metric("throughput", reference, faster, 0.05, paired=True, against=AGAINST)
    assert better.verdict is Verdict.PASS and better.improved
    assert better.message.endswith("better by more than 5%")
    assert "baseline" not in same.message + better.message and "stale" not in better.message


def test_without_a_name_the_reference_is_the_baseline() -> None:
    reference, current = shared_noise_pairs(seed=2, pairs=5, level=0.8)
    j = gate.judge_metric("throughput", reference, current, 0.05, paired=True)
    assert " vs baseline " in j.message


# ---------------------------------------------------------------- round counts


def test_unequal_sides_are_judged_on_their_common_prefix() -> None:
    reference, current = shared_noise_pairs(seed=4, pairs=5)
    # Two reference rounds beyond the current side's three: far slower, so they would decide if used.
    longer = [*reference[:3], make_round(100.0), make_round(120.0)]
    j = gate.judge_metric("throughput", longer, current[:3], 0.05, paired=True, against=AGAINST)
    prefix = gate.judge_metric("throughput", reference[:3], current[:3], 0.05, paired=True, against=AGAINST)
    assert j == prefix
    assert (j.baseline_rounds, j.current_rounds) == (3, 3)
    assert "of 3 round pairs" in j.rule
    # The other way round too: extra current rounds without a partner are left out.
    extra = gate.judge_metric("throughput", reference[:3], [*current[:3], make_round(5000.0)], 0.05, paired=True)
    assert extra.current_rounds == 3
    assert extra == gate.judge_metric("throughput", reference[:3], current[:3], 0.05, paired=True)


def test_a_single_pair_falls_back_to_the_rounds_intervals() -> None:
    slower = gate.judge_metric("throughput", [make_round(1000.0)], [make_round(800.0)], 0.05, paired=True,
                               against=AGAINST)
    assert slower.verdict is Verdict.FAIL
    assert slower.p_value is None
    assert "single-round 95% CIs" in slower.rule
    assert "bounds from both 95% CIs" in slower.message and "at main (abc1234)" in slower.message
    same = gate.judge_metric("throughput", [make_round(1000.0)], [make_round(1000.0)], 0.05, paired=True)
    assert same.verdict is Verdict.PASS
    # A common prefix of one pair is a single pair, however many rounds the longer side has.
    short = gate.judge_metric("throughput", [make_round(1000.0)] * 4, [make_round(800.0)], 0.05, paired=True)
    assert short.verdict is Verdict.FAIL and "single-round" in short.rule and short.baseline_rounds == 1


def test_too_few_samples_is_inconclusive_and_asks_for_longer_rounds() -> None:
    reference = [make_round(n_eff_p99=200.0) for _ in range(3)]
    current = [make_round(p99=30.0, n_eff_p99=250.0) for _ in range(3)]
    j = gate.judge_metric("p99", reference, current, 0.05, paired=True, against=AGAINST,
                          duration_name="--npf-duration")
    assert j.verdict is Verdict.INCONCLUSIVE
    assert j.needs_longer_rounds and j.p_value is None
    assert "too few samples to state p99" in j.message
    assert "the reference has 200 effective samples per round, 662 needed" in j.hint
    assert "re-record" not in j.hint and "baseline" not in j.hint
    # More rounds would not help, so it asks for none; throughput of the same rounds is still judged.
    assert not gate.needs_confirmation([j])
    assert gate.judge_metric("throughput", reference, current, 0.05, paired=True).verdict is Verdict.PASS


# ---------------------------------------------------------------- sequential error rates by simulation

TRIALS = 2000
FIRST, LAST = 3, 10
TOLERANCE = 0.05


@pytest.fixture
def fast_t_ppf(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Memoise the t quantile (a pure function, found by bisection): paired looks ask for the same few
    (level, df) again and again, so the simulations below run in seconds. The answers are unchanged."""
    cached: Callable[[float, float], float] = functools.lru_cache(maxsize=None)(distributions.t_ppf)
    monkeypatch.setattr(distributions, "t_ppf", cached)
    monkeypatch.setattr(gate, "t_ppf", cached)
    yield


def _round(throughput: float) -> RoundSummary:
    return RoundSummary(throughput, (throughput * 0.99, throughput * 1.01), 10.0, (9.9, 10.1), 20.0, (19.6, 20.4),
                        10_000, 5000.0, 3000.0, 2.0, True, 0.02)


def sequential_run(reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64], looks: Looks) -> Judgement:
    """Judge FIRST pairs, then one more pair at a time while the judgement asks for more (as the plugin does)."""
    ref, cur = [_round(v) for v in reference], [_round(v) for v in current]
    n = looks.first
    while True:
        j = gate.judge_metric("throughput", ref[:n], cur[:n], TOLERANCE, looks=looks, paired=True)
        if not gate.needs_confirmation([j]) or not looks.more_allowed(n):
            return j
        n += 1


def simulate(seed: int, change: float, pair_sd: float) -> dict[Verdict, int]:
    """Verdicts of TRIALS sequential A/B runs whose per-pair log ratio is log(1 + change) + N(0, pair_sd),
    under shared drift that hits both rounds of a pair alike."""
    rng = np.random.default_rng(seed)
    looks = Looks(first=FIRST, last=LAST)
    reference = 1000.0 * np.exp(rng.normal(0.0, 0.10, size=(TRIALS, LAST)))
    current = reference * np.exp(rng.normal(math.log1p(change), pair_sd, size=(TRIALS, LAST)))
    counts = dict.fromkeys(Verdict, 0)
    for i in range(TRIALS):
        counts[sequential_run(reference[i], current[i], looks).verdict] += 1
    return counts


def upper_margin(rate: float) -> float:
    """rate plus 3 binomial standard errors over TRIALS trials."""
    return rate + 3.0 * math.sqrt(rate * (1.0 - rate) / TRIALS)


@pytest.mark.usefixtures("fast_t_ppf")
def test_sequential_false_fail_rate_of_identical_code_stays_within_alpha() -> None:
    counts = simulate(seed=20, change=0.0, pair_sd=0.03)
    assert sum(counts.values()) == TRIALS
    assert counts[Verdict.FAIL] / TRIALS <= upper_margin(Looks().alpha), counts
    assert counts[Verdict.PASS] / TRIALS > 0.8, counts  # and it mostly decides


@pytest.mark.usefixtures("fast_t_ppf")
def test_sequential_false_pass_rate_at_the_tolerance_stays_within_beta() -> None:
    counts = simulate(seed=21, change=-TOLERANCE, pair_sd=0.03)
    assert counts[Verdict.PASS] / TRIALS <= upper_margin(Looks().beta), counts


@pytest.mark.usefixtures("fast_t_ppf")
def test_sequential_run_detects_a_clear_slowdown() -> None:
    counts = simulate(seed=22, change=-0.10, pair_sd=0.02)
    assert counts[Verdict.FAIL] / TRIALS >= 0.95, counts
    assert counts[Verdict.PASS] == 0, counts


def test_memoised_quantile_is_the_same_function(fast_t_ppf: None) -> None:
    cached = getattr(gate, "t_ppf")  # noqa: B009
    bisection: Callable[[float, float], float] = cached.__wrapped__
    assert cached is distributions.t_ppf
    for p, df in ((0.975, 2.0), (0.9975, 9.0), (0.5 + 0.95 / 2, 4.0), (0.01, 3.0)):
        assert cached(p, df) == bisection(p, df)
