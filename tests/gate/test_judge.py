from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

import numpy as np
import pytest

from pytest_neuronperf.gate import judge as gate
from pytest_neuronperf.gate.judge import Judgement, Verdict
from pytest_neuronperf.stats import quantiles as stats
from pytest_neuronperf.stats.rounds import RoundSummary


def make_round(
    throughput: float = 1000.0,
    p50: float = 10.0,
    p99: float = 20.0,
    *,
    rel_ci: float = 0.01,
    n_eff_p50: float = 5000.0,
    n_eff_p99: float = 3000.0,
    stable: bool = True,
    duration_s: float = 10.0,
) -> RoundSummary:
    """A round as the runner would summarise it; rel_ci is the half-width of its own 95% CIs."""
    return RoundSummary(
        throughput=throughput,
        throughput_ci=(throughput * (1 - rel_ci), throughput * (1 + rel_ci)),
        p50_ms=p50,
        p50_ci=(p50 * (1 - rel_ci), p50 * (1 + rel_ci)),
        p99_ms=p99,
        p99_ci=(p99 * (1 - 2 * rel_ci), p99 * (1 + 2 * rel_ci)),
        n=10_000,
        n_eff_p50=n_eff_p50,
        n_eff_p99=n_eff_p99,
        duration_s=duration_s,
        stable=stable,
        throughput_cv=0.02,
    )


def noisy_rounds(rng: np.random.Generator, count: int, level: float = 1.0, sigma: float = 0.02) -> list[RoundSummary]:
    """Rounds whose metrics all move by `level` (a factor) and lognormal round-to-round noise."""
    rounds = []
    for _ in range(count):
        t, p50, p99 = np.exp(rng.normal(0.0, sigma, size=3))
        rounds.append(make_round(1000.0 * level * t, 10.0 / level * p50, 20.0 / level * p99))
    return rounds


def rounds_of(values: Sequence[float], p99: float = 20.0, stable: bool = True) -> list[RoundSummary]:
    return [make_round(throughput=v, p99=p99, stable=stable) for v in values]


# ---------------------------------------------------------------- multi-round decisions


def test_clear_pass() -> None:
    rng = np.random.default_rng(10)
    base, cur = noisy_rounds(rng, 5, sigma=0.01), noisy_rounds(rng, 5, sigma=0.01)
    for metric in ("throughput", "p50", "p99"):
        j = gate.judge_metric(metric, base, cur, tolerance=0.10)
        assert j.verdict is Verdict.PASS, j.message
        assert not j.improved
        assert "within 10%" in j.message
        assert j.change_ci[0] < j.change < j.change_ci[1]
        assert j.p_value is not None and j.p_value > 0.5


def test_clear_throughput_fail() -> None:
    rng = np.random.default_rng(11)
    base, cur = noisy_rounds(rng, 3), noisy_rounds(rng, 3, level=0.8)
    j = gate.judge_metric("throughput", base, cur, tolerance=0.10)
    assert j.verdict is Verdict.FAIL
    assert j.p_value is not None and j.p_value < 0.01
    assert j.change == pytest.approx(-0.2, abs=0.04)
    assert j.change_ci[1] < -0.10
    assert j.message.startswith("throughput ")
    assert "vs baseline" in j.message and "95% CI" in j.message and j.message.endswith("beyond 10%")


def test_latency_regresses_when_it_rises() -> None:
    base, cur = rounds_of([1000, 1010, 990]), rounds_of([1000, 1010, 990], p99=26.0)
    j = gate.judge_metric("p99", base, cur, tolerance=0.10)
    assert j.verdict is Verdict.FAIL
    assert j.change == pytest.approx(0.3)
    assert "p99 26.0 ms vs baseline 20.0 ms (+30.0%" in j.message


def test_identical_rounds_have_exact_answers() -> None:
    same = rounds_of([1000, 1000])
    assert gate.judge_metric("throughput", same, same, 0.05).verdict is Verdict.PASS
    assert gate.judge_metric("throughput", same, rounds_of([900, 900]), 0.05).verdict is Verdict.FAIL


def test_inconclusive_when_interval_straddles_tolerance() -> None:
    base = rounds_of([1000, 1060, 950])
    cur = rounds_of([950, 1010, 900])
    j = gate.judge_metric("throughput", base, cur, tolerance=0.05)
    assert j.verdict is Verdict.INCONCLUSIVE
    assert j.change_ci[0] < -0.05 < j.change_ci[1]
    assert "cannot tell" in j.message
    assert "more rounds" in j.hint


def test_probable_but_not_significant_regression_is_inconclusive() -> None:
    base = rounds_of([1000, 1020, 980])
    cur = rounds_of([909, 891, 900])
    j = gate.judge_metric("throughput", base, cur, tolerance=0.05)
    assert j.change_ci[1] < -0.05  # the 95% CI is beyond tolerance ...
    assert j.p_value is not None and j.p_value >= 0.01  # ... but not at alpha = 0.01
    assert j.verdict is Verdict.INCONCLUSIVE
    assert "probably beyond 5%" in j.message


def test_improvement_passes_with_flag() -> None:
    rng = np.random.default_rng(12)
    base, cur = noisy_rounds(rng, 3, sigma=0.01), noisy_rounds(rng, 3, level=1.3, sigma=0.01)
    for metric in ("throughput", "p50", "p99"):
        j = gate.judge_metric(metric, base, cur, tolerance=0.10)
        assert j.verdict is Verdict.PASS
        assert j.improved, metric
        assert "stale" in j.message
    row = gate.table_row("b1 n1 w1", gate.judge_metric("throughput", base, cur, tolerance=0.10))
    assert row["verdict"] == "pass (improved)"


# ---------------------------------------------------------------- too few samples


def test_percentile_with_too_few_samples_is_inconclusive_with_duration_hint() -> None:
    base = [make_round(n_eff_p99=3000.0)] * 3
    cur = [make_round(p99=40.0, n_eff_p99=n, duration_s=5.0) for n in (300.0, 200.0, 250.0)]
    j = gate.judge_metric("p99", base, cur, tolerance=0.10, duration_name="--npf-duration")
    assert j.verdict is Verdict.INCONCLUSIVE
    assert j.p_value is None
    assert "too few samples" in j.message
    assert "(duration=60s)" in gate.judge_metric("p99", base, cur, tolerance=0.10).hint  # the runner's own name
    # 662 needed / 200 present, with a 20% margin: about 4x the 3 rounds of 5 s, in total.
    assert "run about 4.0x longer (--npf-duration=60s) to judge p99" in j.hint
    assert "662 needed" in j.hint
    # Throughput and p50 of the same rounds are still judged.
    assert gate.judge_metric("p50", base, cur, tolerance=0.10).verdict is Verdict.PASS


@pytest.mark.parametrize(("per_round", "rounds", "n_eff", "expected"), [
    # The case: --npf-duration=6 over 3 rounds is 2 s a round; 1.2 x 662 / 610 = 1.3x, so 7.8 s in all.
    (2.0, 3, 610.0, "run about 1.3x longer (--npf-duration=8s)"),
    (2.0, 1, 610.0, "run about 1.3x longer (--npf-duration=3s)"),
    (10.0, 5, 662.0 * 1.2 / 3.0, "run about 3.0x longer (--npf-duration=150s)"),
])
def test_duration_hint_is_the_total_over_the_rounds_rounded_up(per_round: float, rounds: int, n_eff: float,
                                                                 expected: str) -> None:
    base = [make_round()] * 3
    cur = [make_round(n_eff_p99=n_eff, duration_s=per_round)] * rounds
    hint = gate.judge_metric("p99", base, cur, tolerance=0.10, duration_name="--npf-duration").hint
    assert expected in hint, hint
    # Following the hint gives every round the longer window: per round, total / rounds >= factor x now.
    seconds = float(hint.split("--npf-duration=")[1].split("s)")[0])
    assert seconds / rounds >= per_round * 1.2 * 662.0 / n_eff


def test_short_baseline_asks_to_re_record_it() -> None:
    base = [make_round(n_eff_p50=8.0)] * 2
    j = gate.judge_metric("p50", base, [make_round()] * 2, tolerance=0.10)
    assert j.verdict is Verdict.INCONCLUSIVE
    assert "re-record the baseline" in j.hint and "run about" not in j.hint


# ---------------------------------------------------------------- single-round fallback


def test_single_round_fail_when_intervals_disjoint() -> None:
    j = gate.judge_metric("throughput", [make_round(1000.0)], [make_round(800.0)], tolerance=0.10)
    assert j.verdict is Verdict.FAIL
    assert j.p_value is None
    assert "single-round" in j.rule
    assert j.change == pytest.approx(-0.2)


def test_single_round_pass_when_conservative_bound_within_tolerance() -> None:
    j = gate.judge_metric("throughput", [make_round(1000.0)], [make_round(980.0)], tolerance=0.10)
    assert j.verdict is Verdict.PASS
    assert j.change_ci[0] > -0.10


def test_single_round_inconclusive_when_intervals_are_wide() -> None:
    j = gate.judge_metric(
        "throughput", [make_round(1000.0, rel_ci=0.08)], [make_round(870.0, rel_ci=0.08)], tolerance=0.10
    )
    assert j.verdict is Verdict.INCONCLUSIVE


def test_one_round_against_many_uses_interval_fallback() -> None:
    rng = np.random.default_rng(13)
    j = gate.judge_metric("p50", noisy_rounds(rng, 4, sigma=0.01), [make_round(p50=13.0)], tolerance=0.10)
    assert j.verdict is Verdict.FAIL
    assert j.p_value is None


# ---------------------------------------------------------------- unstable rounds


def test_all_unstable_current_rounds_turn_moderate_fail_inconclusive() -> None:
    base = rounds_of([1000, 1005, 995])
    moderate = rounds_of([850, 855, 845], stable=False)  # -15%: beyond 10% but not beyond 20%
    j = gate.judge_metric("throughput", base, moderate, tolerance=0.10)
    assert j.verdict is Verdict.INCONCLUSIVE
    assert "unstable" in j.message
    stable_fail = gate.judge_metric("throughput", base, rounds_of([850, 855, 845]), tolerance=0.10)
    assert stable_fail.verdict is Verdict.FAIL


def test_unstable_rounds_still_fail_beyond_twice_the_tolerance() -> None:
    base = rounds_of([1000, 1005, 995])
    j = gate.judge_metric("throughput", base, rounds_of([600, 605, 595], stable=False), tolerance=0.10)
    assert j.verdict is Verdict.FAIL


def test_some_unstable_rounds_change_nothing() -> None:
    base = rounds_of([1000, 1005, 995])
    cur = [make_round(850.0, stable=False), make_round(855.0), make_round(845.0, stable=False)]
    assert gate.judge_metric("throughput", base, cur, tolerance=0.10).verdict is Verdict.FAIL
    same = [make_round(1001.0, stable=False), make_round(999.0, stable=False)]
    assert gate.judge_metric("throughput", base, same, tolerance=0.10).verdict is Verdict.PASS


# ---------------------------------------------------------------- many comparisons


def borderline_fail() -> Judgement:
    j = gate.judge_metric("throughput", rounds_of([1000, 1020, 980]), rounds_of([888, 870, 880]), 0.05)
    assert j.verdict is Verdict.FAIL and j.p_value is not None and 0.001 < j.p_value < 0.01
    return j


def test_holm_downgrades_borderline_fail_among_many() -> None:
    rng = np.random.default_rng(14)
    others = [gate.judge_metric("p50", noisy_rounds(rng, 3), noisy_rounds(rng, 3), 0.10) for _ in range(5)]
    corrected = gate.correct_multiple([borderline_fail(), *others])
    assert corrected[0].verdict is Verdict.INCONCLUSIVE
    assert "6 comparisons" in corrected[0].message
    assert corrected[0].p_value is not None and corrected[0].p_value >= 0.01
    assert [j.verdict for j in corrected[1:]] == [j.verdict for j in others]


def test_holm_keeps_strong_fail_and_lone_comparison() -> None:
    rng = np.random.default_rng(15)
    strong = gate.judge_metric("throughput", noisy_rounds(rng, 5, sigma=0.01), noisy_rounds(rng, 5, 0.7), 0.05)
    others = [gate.judge_metric("p50", noisy_rounds(rng, 3), noisy_rounds(rng, 3), 0.10) for _ in range(5)]
    assert gate.correct_multiple([strong, *others])[0].verdict is Verdict.FAIL
    assert gate.correct_multiple([borderline_fail()])[0].verdict is Verdict.FAIL


def test_holm_adjusted_p_values() -> None:
    template = borderline_fail()
    judgements = [dataclasses.replace(template, p_value=p) for p in (0.01, 0.04, 0.03, 0.005)]
    adjusted = [j.p_value for j in gate.correct_multiple(judgements, alpha=0.05)]
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    bonferroni = [j.p_value for j in gate.correct_multiple(judgements, method="bonferroni")]
    assert bonferroni == pytest.approx([0.04, 0.16, 0.12, 0.02])
    with pytest.raises(ValueError):
        gate.correct_multiple(judgements, method="sidak")


def test_decide_and_confirmation() -> None:
    rng = np.random.default_rng(16)
    passing = gate.judge_metric("throughput", noisy_rounds(rng, 4, sigma=0.01), noisy_rounds(rng, 4, sigma=0.01), 0.1)
    failing = borderline_fail()
    unknown = gate.judge_metric("p99", [make_round(n_eff_p99=10.0)] * 2, [make_round()] * 2, 0.1)
    assert passing.verdict is Verdict.PASS and unknown.verdict is Verdict.INCONCLUSIVE
    assert gate.decide([passing, passing], strict=False) is Verdict.PASS
    assert gate.decide([passing, unknown], strict=False) is Verdict.INCONCLUSIVE
    assert gate.decide([passing, unknown], strict=True) is Verdict.FAIL
    assert gate.decide([unknown, failing], strict=False) is Verdict.FAIL
    assert gate.decide([], strict=True) is Verdict.PASS
    assert not gate.needs_confirmation([passing])
    # Too few samples per round: more rounds of the same length cannot decide it.
    assert unknown.needs_longer_rounds and not gate.needs_confirmation([passing, unknown])
    undecided = gate.judge_metric("throughput", noisy_rounds(rng, 3, sigma=0.05), noisy_rounds(rng, 3, sigma=0.05),
                                  0.05)
    assert undecided.verdict is Verdict.INCONCLUSIVE and not undecided.needs_longer_rounds
    assert gate.needs_confirmation([passing, undecided])
    # A fail at a look is decided: the sequential levels already account for looking again.
    assert not gate.needs_confirmation([failing, undecided])


# ---------------------------------------------------------------- error rates on seeded simulations


def simulate(seed: int, level: float, sigma: float, rounds: int, tolerance: float, trials: int = 200) -> int:
    """How many of `trials` comparisons of `rounds` vs `rounds` rounds FAIL on throughput."""
    rng = np.random.default_rng(seed)
    fails = 0
    for _ in range(trials):
        base = noisy_rounds(rng, rounds, sigma=sigma)
        cur = noisy_rounds(rng, rounds, level=level, sigma=sigma)
        fails += gate.judge_metric("throughput", base, cur, tolerance).verdict is Verdict.FAIL
    return fails


def test_identical_code_rarely_fails() -> None:
    # A/A: 3 rounds a side, 2% round-to-round noise, 5% tolerance.
    assert simulate(seed=100, level=1.0, sigma=0.02, rounds=3, tolerance=0.05) <= 2


def test_real_regression_almost_always_fails() -> None:
    # A/B: a 10% throughput drop, 5% tolerance, 1% round-to-round noise, 5 rounds a side.
    assert simulate(seed=101, level=0.9, sigma=0.01, rounds=5, tolerance=0.05) >= 190


def test_large_regression_fails_with_three_noisy_rounds() -> None:
    # With only 3 rounds a side at 2% noise the change must clear the tolerance by a wider margin.
    assert simulate(seed=102, level=0.8, sigma=0.02, rounds=3, tolerance=0.05) >= 190


# ---------------------------------------------------------------- limits, tables, serialisation


def test_check_limits() -> None:
    report = {"throughput_avg": 812.0, "latency_ms_p50": 4.0, "latency_ms_p99": 12.5}
    assert gate.check_limits(report, min_throughput=800, max_p50_ms=5, max_p99_ms=13) == []
    messages = gate.check_limits(report, min_throughput=1000, max_p50_ms=5, max_p99_ms=10)
    assert messages == [
        "throughput_avg 812/s is below the minimum 1000/s",
        "latency_ms_p99 12.5 ms is above the maximum 10.0 ms",
    ]
    missing = gate.check_limits({"throughput_avg": None}, min_throughput=10)
    assert len(missing) == 1 and "missing" in missing[0]
    assert gate.check_limits({}) == []


def test_format_table_aligns_columns() -> None:
    rows = [
        gate.table_row("bs1 models1 workers2", borderline_fail()),
        {"configuration": "bs8", "metric": "p99", "verdict": "inconclusive"},
    ]
    lines = gate.format_table(rows).splitlines()
    assert lines[0].split() == list(gate.TABLE_COLUMNS)
    assert set(lines[1]) == {"-", " "}
    assert len(lines) == 4
    starts = [lines[0].index(c) for c in gate.TABLE_COLUMNS]
    assert lines[2][starts[1] :].startswith("throughput")
    assert lines[3][starts[1] :].startswith("p99")
    assert "-12.1%" in lines[2] and "5%" in lines[2] and "fail" in lines[2]


def test_judgement_to_dict_is_json_safe() -> None:
    data = json.loads(json.dumps(borderline_fail().to_dict()))
    assert data["verdict"] == "fail"
    assert data["metric"] == "throughput"
    assert len(data["change_ci"]) == 2 and isinstance(data["p_value"], float)


def test_rejects_bad_arguments() -> None:
    rounds = [make_round()]
    with pytest.raises(ValueError, match="metric"):
        gate.judge_metric("p90", rounds, rounds, 0.1)
    with pytest.raises(ValueError, match="tolerance"):
        gate.judge_metric("throughput", rounds, rounds, 10.0)
    with pytest.raises(ValueError):
        gate.judge_metric("throughput", [], rounds, 0.1)
    with pytest.raises(ValueError, match="positive"):
        gate.judge_metric("throughput", [make_round(0.0)] * 2, rounds * 2, 0.1)


def test_min_samples_is_the_gate_threshold() -> None:
    need = stats.min_samples_for_quantile(0.99)
    base = [make_round()] * 2
    at = gate.judge_metric("p99", base, [make_round(n_eff_p99=float(need))] * 2, 0.1)
    below = gate.judge_metric("p99", base, [make_round(n_eff_p99=need - 1.0)] * 2, 0.1)
    assert at.verdict is Verdict.PASS
    assert below.verdict is Verdict.INCONCLUSIVE
