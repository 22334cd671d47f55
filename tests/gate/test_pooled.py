"""Paired tail percentiles pooled over rounds: judged on exceedance shares, not on per-round percentiles.

Rounds come from :func:`tests.stats.test_sketch.preempted_round` (bursts of preemption stall runs of
consecutive requests), summarised by the real ``summarize_round``, so each keeps its sketch.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from pytest_neuronperf.baselines.schema import BaselineRecord
from pytest_neuronperf.gate import judge as gate
from pytest_neuronperf.gate.judge import Verdict
from pytest_neuronperf.gate.sequential import Looks
from pytest_neuronperf.stats.rounds import RoundSummary, summarize_round
from tests.stats.test_sketch import preempted_round

AGAINST = "at main (abc1234)"


def summary(latencies: np.ndarray) -> RoundSummary:
    return summarize_round(latencies, np.full(10, latencies.size / 10), 0.1, 1.0)


def sides(seed: int, pairs: int, factor: float = 1.0, bursts: float = 0.3) -> tuple[list[RoundSummary],
                                                                                   list[RoundSummary]]:
    rng = np.random.default_rng(seed)
    reference = [summary(preempted_round(rng, bursts=bursts)) for _ in range(pairs)]
    current = [summary(preempted_round(rng, bursts=bursts) * factor) for _ in range(pairs)]
    return reference, current


def stripped(rounds: list[RoundSummary]) -> list[RoundSummary]:
    """The same rounds as an older results file holds them: no sketches."""
    return [replace(r, sketches={}) for r in rounds]


def test_a_round_whose_tail_a_burst_lengthened_no_longer_hides_an_equal_p99() -> None:
    reference, current = sides(seed=1, pairs=8, bursts=0.0)
    stall = preempted_round(np.random.default_rng(9), bursts=0.0)
    stall[1000:1045] += 3.0  # 1.5% of one round stalled by 3 ms: that round's own p99 is 7x the others'
    current[2] = summary(stall)
    assert current[2].p99_ms > 5 * reference[2].p99_ms

    per_round = gate.judge_metric("p99", stripped(reference), stripped(current), 0.05, paired=True, against=AGAINST)
    # Judged round by round, the stalled round leaves no verdict.
    assert per_round.verdict is Verdict.INCONCLUSIVE and not per_round.pooled_percentile

    pooled = gate.judge_metric("p99", reference, current, 0.05, paired=True, against=AGAINST)
    assert pooled.verdict is Verdict.PASS, pooled.message
    assert pooled.pooled_percentile and pooled.to_dict()["pooled_percentile"] is True
    assert "exceedance shares of pooled percentiles over 8 round pairs" in pooled.rule
    assert abs(pooled.change) < 0.01 and pooled.change_ci[1] < 0.05
    assert pooled.message.startswith("p99 ") and AGAINST in pooled.message


def test_a_slower_model_fails_on_its_pooled_p99_and_its_per_round_p50() -> None:
    reference, current = sides(seed=2, pairs=4, factor=1.2)
    for metric, pooled in (("p50", False), ("p99", True)):
        j = gate.judge_metric(metric, reference, current, 0.05, paired=True, against=AGAINST)
        assert j.verdict is Verdict.FAIL, j.message
        assert j.pooled_percentile is pooled
        assert j.change == pytest.approx(0.2, abs=0.02)
        assert j.change_ci[0] < j.change < j.change_ci[1] and j.change_ci[0] > 0.05
        assert j.p_value is not None and j.p_value < 0.01 and "beyond 5%" in j.message


def test_stored_baselines_and_older_results_keep_the_per_round_rule() -> None:
    reference, current = sides(seed=3, pairs=4)
    welch = gate.judge_metric("p50", reference, current, 0.05)
    assert "Welch" in welch.rule and not welch.pooled_percentile
    old = gate.judge_metric("p50", stripped(reference), stripped(current), 0.05, paired=True)
    assert "paired t on log ratios" in old.rule and not old.pooled_percentile
    # Per round, p99 asks for samples per round; pooled, it counts them over the rounds.
    assert "per round" in gate.judge_metric("p99", stripped(reference), stripped(current), 0.05, paired=True).rule
    assert gate.judge_metric("p99", reference, current, 0.05, paired=True).pooled_percentile
    # Throughput has no distribution to pool.
    assert "log ratios" in gate.judge_metric("throughput", reference, current, 0.05, paired=True).rule


def test_a_saved_baseline_keeps_no_sketches() -> None:
    reference, _ = sides(seed=4, pairs=2)
    report = {"rounds": [r.to_dict() for r in reference]}
    assert all("sketches" in r for r in report["rounds"])
    record = BaselineRecord.from_report(report, {})
    assert record.rounds and not any("sketches" in r for r in record.rounds)


def test_pooled_samples_add_up_over_rounds_so_more_pairs_are_asked_for_first() -> None:
    # (whatever the test on too few samples says: a futility stop waits for the samples)
    rng = np.random.default_rng(5)
    short = [summary(preempted_round(rng, n=400, bursts=0.0)) for _ in range(6)]  # 400 samples a round
    looks = Looks(first=2, last=10)
    two = gate.judge_metric("p99", short[:2], short[2:4], 0.05, paired=True, looks=looks)
    assert two.verdict is Verdict.INCONCLUSIVE and "too few samples" in two.message
    assert not two.needs_longer_rounds and gate.needs_confirmation([two])
    assert "round pairs will" in two.hint
    # Beyond what the pairs allowed could bring: longer rounds.
    one_look = Looks(first=2, last=2)
    capped = gate.judge_metric("p99", short[:2], short[2:4], 0.05, paired=True, looks=one_look)
    assert capped.needs_longer_rounds and "longer" in capped.hint and "--npf-max-rounds=2" in capped.hint


@pytest.mark.parametrize(("bursts", "seed"), [pytest.param(0.3, 10, marks=pytest.mark.slow), (1.0, 11)])
def test_false_fails_at_the_tolerance_stay_within_alpha_even_where_p99_jumps_between_modes(bursts: float,
                                                                                         seed: int) -> None:
    """A current side exactly 5% slower, judged sequentially (3..10 pairs) at a 5% tolerance: FAIL at
    most alpha = 1% of the time and PASS at most beta = 2.5% (plus 3 binomial sd over 80 runs),
    also when each round's slow share sits around 1% and p99 jumps several-fold between rounds."""
    rng = np.random.default_rng(seed)
    looks, counts = Looks(first=3, last=10), Counter[Verdict]()
    for _ in range(80):
        reference = [summary(preempted_round(rng, bursts=bursts)) for _ in range(10)]
        current = [summary(preempted_round(rng, bursts=bursts) * 1.05) for _ in range(10)]
        n = looks.first
        while True:
            j = gate.judge_metric("p99", reference[:n], current[:n], 0.05, paired=True, looks=looks)
            if not gate.needs_confirmation([j]) or not looks.more_allowed(n):
                break
            n += 1
        counts[j.verdict] += 1
    assert counts[Verdict.FAIL] <= 3 and counts[Verdict.PASS] <= 6, counts


def test_an_interval_the_data_cannot_bound_still_ends_at_a_number() -> None:
    import json

    reference, current = sides(seed=6, pairs=3, bursts=0.0)
    wild = preempted_round(np.random.default_rng(7), bursts=0.0)
    wild[::2] *= 2000.0  # half of one round's requests a thousand times slower
    current[0] = summary(wild)
    j = gate.judge_metric("p99", reference, current, 0.05, paired=True)
    assert j.verdict is Verdict.INCONCLUSIVE and j.pooled_percentile
    assert np.isfinite(j.change_ci).all() and j.change_ci[1] > 100
    json.dumps(j.to_dict(), allow_nan=False)


def test_a_percentile_no_number_of_pairs_could_decide_stops_asking_for_more() -> None:
    # Each round's slow share around 1% (bursts of 1% of its requests, 2 per round on average): the p99
    # of identical code jumps between modes, and four pairs show how far it is from deciding.
    reference, current = sides(seed=9, pairs=4, bursts=2.0)
    looks = Looks(first=4, last=10)
    j = gate.judge_metric("p99", reference, current, 0.05, paired=True, looks=looks)
    assert j.verdict is Verdict.INCONCLUSIVE and j.pooled_percentile
    assert not j.more_rounds_help and not gate.needs_confirmation([j])
    assert "moves too much from round to round" in j.hint and "--npf-tolerance=p99=" in j.hint
    # A steady p99 at the same look asks for more pairs, or decides.
    steady_ref, steady_cur = sides(seed=9, pairs=4, bursts=0.0)
    steady = gate.judge_metric("p99", steady_ref, steady_cur, 0.05, paired=True, looks=looks)
    assert steady.verdict is Verdict.PASS or gate.needs_confirmation([steady]), steady.message
