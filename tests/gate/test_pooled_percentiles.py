"""Percentiles of paired rounds judged on each side's samples pooled over its rounds."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_neuronperf.gate import judge
from pytest_neuronperf.gate.sequential import Looks
from pytest_neuronperf.gate.verdict import Verdict
from pytest_neuronperf.stats.rounds import SKETCH_LEVELS, RoundSummary, pooled_quantile, summarize_round


def rounds(seed: int, n_rounds: int, samples: int, scale: float = 1.0, neighbour_seed: int = 0) -> list[RoundSummary]:
    """Rounds of 1 ms + exponential latencies whose tail weight a noisy neighbour moves from round to round.

    The neighbour's load at round i comes from ``neighbour_seed``: the two rounds of a pair, measured side
    by side, share it; each round's own samples come from ``seed``.
    """
    rng = np.random.default_rng(seed)
    load = np.exp(np.random.default_rng(neighbour_seed).normal(0.0, 0.5, n_rounds))
    out = []
    for i in range(n_rounds):
        latency = scale * (1.0 + rng.exponential(0.2 * float(load[i]), samples))
        out.append(summarize_round(latency, np.full(10, samples / 10), 0.1))
    return out


def test_the_pooled_quantile_of_the_sketches_is_the_quantile_of_all_samples() -> None:
    rng = np.random.default_rng(3)
    parts = [rng.exponential(s, n) for s, n in ((1.0, 4000), (3.0, 1000), (0.5, 9000))]
    summaries = [summarize_round(p, np.full(4, p.size / 4), 0.1) for p in parts]
    assert all(len(s.sketch_ms) == len(SKETCH_LEVELS) for s in summaries)
    everything = np.concatenate(parts)
    for q in (0.5, 0.9, 0.99):
        got = pooled_quantile([s.sketch_ms for s in summaries], [s.n for s in summaries], q)
        assert got == pytest.approx(float(np.quantile(everything, q)), rel=0.03)


def test_a_round_summary_keeps_its_sketch_through_a_file_and_old_rounds_load_without_one() -> None:
    [r] = rounds(1, 1, 2000)
    assert RoundSummary.from_dict(r.to_dict()) == r
    old = {k: v for k, v in r.to_dict().items() if k != "sketch_ms"}
    assert RoundSummary.from_dict(old).sketch_ms == ()


def test_unchanged_code_passes_on_the_pooled_p99_where_short_rounds_cannot_state_one() -> None:
    # 400 samples a round: each round's own p99 is short of the 662 effective samples it needs.
    ref, cur = rounds(10, 6, 400), rounds(11, 6, 400)
    per_round = judge.judge_metric("p99", ref, cur, 0.25, paired=False)
    assert per_round.verdict is Verdict.INCONCLUSIVE and per_round.needs_longer_rounds
    pooled = judge.judge_metric("p99", ref, cur, 0.25, paired=True, against="at HEAD")
    assert pooled.pooled_samples and "pooled p99 of 6 round pairs" in pooled.rule
    assert pooled.verdict is Verdict.PASS, pooled.message
    assert pooled.current == pytest.approx(pooled_quantile([r.sketch_ms for r in cur], [r.n for r in cur], 0.99))


def test_a_slower_tail_fails_on_the_pooled_p99() -> None:
    ref, cur = rounds(20, 6, 500), rounds(21, 6, 500, scale=1.5)
    j = judge.judge_metric("p99", ref, cur, 0.05, paired=True, against="at HEAD")
    assert j.pooled_samples and j.verdict is Verdict.FAIL and j.change > 0.3
    assert j.message.startswith("p99 ") and "at HEAD" in j.message


def test_rounds_long_enough_for_their_own_p99_are_judged_on_the_ratios_of_the_pairs() -> None:
    # Each pair shares its neighbour's load, which its ratio cancels; pooling would let the loudest pairs' tails
    # dominate both sides.
    ref, cur = rounds(50, 4, 3000), rounds(51, 4, 3000)
    j = judge.judge_metric("p99", ref, cur, 0.25, paired=True)
    assert not j.pooled_samples and j.rule.startswith("paired t on log ratios")


def test_too_few_samples_over_all_the_rounds_asks_for_more_pairs_not_longer_rounds() -> None:
    ref, cur = rounds(30, 2, 150), rounds(31, 2, 150)
    j = judge.judge_metric("p99", ref, cur, 0.1, paired=True, looks=Looks(first=2, last=10))
    assert j.verdict is Verdict.INCONCLUSIVE and not j.needs_longer_rounds
    assert "more round pair(s) to judge p99" in j.hint and "over its rounds" in j.hint
    assert judge.needs_confirmation([j])


def test_rounds_without_sketches_are_judged_on_their_ratios_as_before() -> None:
    ref = [RoundSummary.from_dict({k: v for k, v in r.to_dict().items() if k != "sketch_ms"})
           for r in rounds(40, 4, 300)]
    cur = rounds(41, 4, 300)
    j = judge.judge_metric("p99", ref, cur, 0.25, paired=True)
    # Short rounds without sketches (a reference from before them) can only ask for longer rounds.
    assert not j.pooled_samples and j.needs_longer_rounds
