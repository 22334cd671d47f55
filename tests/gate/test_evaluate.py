"""Judging a whole measurement without pytest: the service the fixture and ``npf compare`` share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from pytest_neuronperf.gate.evaluate import STALE_NOTE, GateRules, Limits, judge_measurement
from pytest_neuronperf.gate.tolerance import Tolerance
from pytest_neuronperf.gate.verdict import Verdict, combine
from tests.gate.test_judge import make_round


@dataclass(frozen=True)
class Record:
    rounds: Sequence[Mapping[str, object]]
    report: Mapping[str, object] = field(default_factory=dict)
    saved_at: str = "2026-11-30T10:00:00Z"


@dataclass(frozen=True)
class Found:
    record: Record | None
    why: str = "no baseline saved for it"

    def explain(self) -> str:
        return self.why


def report(n_models: int = 1, *, throughput: float = 1000.0, p99: float = 20.0, status: str = "finished",
           rounds: int = 3) -> dict[str, Any]:
    return {
        "n_models": n_models, "workers_per_model": 1, "batch_size": 1, "pipeline_size": 1, "status": status,
        "reason": None if status == "finished" else "needs 10 cores",
        "throughput_avg": throughput, "latency_ms_p50": 10.0, "latency_ms_p99": p99,
        "rounds": [make_round(throughput * f, p99=p99 * f).to_dict() for f in (0.99, 1.0, 1.01)[:rounds]],
    }


def baseline(throughput: float = 1000.0, p99: float = 20.0) -> Found:
    return Found(Record([make_round(throughput * f, p99=p99 * f).to_dict() for f in (0.99, 1.0, 1.01)],
                        {"throughput_avg": throughput}))


def test_unchanged_performance_passes_every_metric() -> None:
    judged = judge_measurement("default", [report()], {"b1-n1-w1-p1": baseline()}, GateRules())
    assert judged.verdict is Verdict.PASS
    [outcome] = judged.outcomes
    assert outcome.verdict is Verdict.PASS
    assert [j.metric for j in outcome.judgements] == ["throughput", "p50", "p99"]
    assert outcome.to_dict()["verdict"] == "pass"
    assert outcome.to_dict()["baseline_saved_at"] == "2026-11-30T10:00:00Z"


def test_a_slowdown_fails_with_a_table_and_reasons() -> None:
    judged = judge_measurement("bs8", [report(throughput=700.0, p99=30.0)], {"b1-n1-w1-p1": baseline()},
                               GateRules(tolerance=Tolerance(0.05, 0.05, 0.05)))
    assert judged.verdict is Verdict.FAIL
    message = judged.failure_message()
    assert "measurement 'bs8'" in message
    assert "n_models=1 workers=1 batch=1 pipeline=1: throughput 700/s vs baseline 1000/s" in message
    assert "beyond 5%" in message
    assert judged.needing_confirmation() == []  # a fail is decided: no more rounds


def test_no_reference_is_reported_and_fails_only_when_required() -> None:
    lookups = {"b1-n1-w1-p1": Found(None, "baseline exists for instance_type=c5.xlarge, not this machine's m5")}
    relaxed = judge_measurement("default", [report()], lookups, GateRules())
    assert relaxed.verdict is Verdict.PASS
    assert relaxed.outcomes[0].verdict is Verdict.NO_BASELINE
    assert relaxed.notes == ["n_models=1 workers=1 batch=1 pipeline=1: baseline exists for instance_type=c5.xlarge, "
                             "not this machine's m5"]
    required = judge_measurement("default", [report()], lookups, GateRules(require_baseline=True))
    assert required.verdict is Verdict.FAIL
    assert "--npf-require-baseline is set" in required.failure_message()


def test_without_comparison_only_limits_judge() -> None:
    rules = GateRules(compare=False, limits=Limits(min_throughput=2000.0))
    judged = judge_measurement("default", [report()], {"b1-n1-w1-p1": baseline()}, rules)
    [outcome] = judged.outcomes
    assert outcome.judgements == []
    assert outcome.limit_failures == ["throughput_avg 1000/s is below the minimum 2000/s"]
    assert judged.verdict is Verdict.FAIL
    assert Limits(max_p99_ms=5.0).describe("p99") == "<= 5 ms"
    assert Limits(min_throughput=500.0).describe("throughput") == ">= 500/s"


def test_a_skipped_configuration_is_kept_with_its_reason() -> None:
    judged = judge_measurement("default", [report(), report(8, status="skipped")], {"b1-n1-w1-p1": baseline()},
                               GateRules())
    assert [o.verdict for o in judged.outcomes] == [Verdict.PASS, Verdict.SKIPPED]
    assert judged.outcomes[1].note == "needs 10 cores"


def test_a_much_faster_run_says_the_baseline_is_stale() -> None:
    judged = judge_measurement("default", [report(throughput=2000.0, p99=10.0)], {"b1-n1-w1-p1": baseline()},
                               GateRules())
    assert judged.verdict is Verdict.PASS
    assert judged.outcomes[0].note == STALE_NOTE


def test_strict_makes_an_inconclusive_measurement_fail() -> None:
    few = {"b1-n1-w1-p1": baseline()}
    one_round = [report(throughput=960.0, rounds=1)]
    assert judge_measurement("default", one_round, few, GateRules()).verdict is Verdict.INCONCLUSIVE
    assert judge_measurement("default", one_round, few, GateRules(strict=True)).verdict is Verdict.FAIL


def test_limits_take_only_their_keywords() -> None:
    params = {"min_throughput": 5.0, "max_p99_ms": 2.0, "duration": 1.0}
    limits = Limits.take(params)
    assert limits.values == {"min_throughput": 5.0, "max_p99_ms": 2.0}
    assert params == {"duration": 1.0}
    with pytest.raises(TypeError, match="unknown limit"):
        Limits(max_p90_ms=1.0)


@pytest.mark.parametrize(
    ("verdicts", "strict", "require", "expected"),
    [
        ([], False, False, Verdict.PASS),
        (["pass", "measured", "skipped"], False, False, Verdict.PASS),
        (["pass", "inconclusive"], False, False, Verdict.INCONCLUSIVE),
        (["pass", "inconclusive"], True, False, Verdict.FAIL),
        (["no baseline"], False, False, Verdict.PASS),
        (["no baseline"], False, True, Verdict.FAIL),
        (["inconclusive", "fail"], False, False, Verdict.FAIL),
        (["error"], False, False, Verdict.FAIL),
    ],
)
def test_one_rule_combines_verdicts(verdicts: list[str], strict: bool, require: bool, expected: Verdict) -> None:
    assert combine(verdicts, strict=strict, require_baseline=require) is expected


def test_verdicts_are_their_strings() -> None:
    assert Verdict.NO_BASELINE == "no baseline"
    assert f"{Verdict.FAIL}" == "fail"
    assert {Verdict.PASS: 1}.get("pass") == 1


# --- issue 12: what the gate must not pass, and limits that bound nothing --------------------------------


MIN_THROUGHPUT = "min_throughput must be a positive finite number such as 500 (inferences/s)"


@pytest.mark.parametrize(("keyword", "value", "message"), [
    ("max_p99_ms", -1, "max_p99_ms must be a positive finite number such as 5.0 (ms), got -1"),
    ("max_p50_ms", 0.0, "max_p50_ms must be a positive finite number such as 5.0 (ms), got 0.0"),
    ("max_p99_ms", float("nan"), "max_p99_ms must be a positive finite number such as 5.0 (ms), got nan"),
    ("min_throughput", float("inf"), f"{MIN_THROUGHPUT}, got inf"),
    ("min_throughput", "fast", f"{MIN_THROUGHPUT}, got 'fast'"),
    ("min_throughput", True, f"{MIN_THROUGHPUT}, got True"),
])
def test_limits_are_positive_finite_numbers(keyword: str, value: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        Limits(**{keyword: value})  # type: ignore[arg-type]
    assert str(info.value) == message
    assert Limits(min_throughput=500, max_p99_ms=2.5).values == {"min_throughput": 500.0, "max_p99_ms": 2.5}


def test_an_errored_configuration_fails_with_its_reason_and_the_others_are_judged() -> None:
    slow = report(8, status="error")
    slow["reason"] = "no inference completed in the 0.5 s timed window: one inference took about 3 s"
    judged = judge_measurement("default", [report(), slow], {"b1-n1-w1-p1": baseline()}, GateRules())
    assert [o.verdict for o in judged.outcomes] == [Verdict.PASS, Verdict.ERROR]
    assert judged.verdict is Verdict.FAIL
    message = judged.failure_message()
    assert message.startswith("measurement 'default' was not judged:")
    assert "n_models=8 workers=1 batch=1 pipeline=1: error: no inference completed in the 0.5 s timed window" in message
    assert judged.errors == ["n_models=8 workers=1 batch=1 pipeline=1: error: " + slow["reason"]]
    assert judged.notes == []  # an error is not a note


def test_under_require_baseline_a_measurement_that_compared_nothing_fails() -> None:
    skipped = [report(10**6, status="skipped")]
    assert judge_measurement("default", skipped, {}, GateRules(strict=True)).verdict is Verdict.PASS
    required = judge_measurement("default", skipped, {}, GateRules(require_baseline=True, strict=True))
    assert required.compared_nothing and required.verdict is Verdict.FAIL
    assert "nothing was compared with a baseline: no configuration finished (needs 10 cores)" \
        in required.failure_message()
    # Only measuring (--npf-no-compare) compares nothing on purpose.
    assert judge_measurement("default", skipped, {}, GateRules(require_baseline=True, compare=False)).verdict \
        is Verdict.PASS


def test_a_baseline_entry_without_rounds_is_no_reference() -> None:
    empty = {"b1-n1-w1-p1": Found(Record([], {"throughput_avg": 1000.0}))}
    relaxed = judge_measurement("default", [report()], empty, GateRules())
    assert relaxed.outcomes[0].verdict is Verdict.NO_BASELINE
    assert "holds no rounds" in relaxed.outcomes[0].note
    required = judge_measurement("default", [report()], empty, GateRules(require_baseline=True, strict=True))
    assert required.verdict is Verdict.FAIL
    assert "holds no rounds" in required.failure_message()


def test_the_failure_table_says_its_values_are_the_gates_estimates() -> None:
    judged = judge_measurement("default", [report(throughput=700.0, p99=30.0)], {"b1-n1-w1-p1": baseline()},
                               GateRules())
    assert "geometric means of the per-round values" in judged.failure_message()
    assert all(j.baseline_rounds == 3 and j.current_rounds == 3 for j in judged.outcomes[0].judgements)


def test_a_failure_is_headed_a_regression_only_where_the_data_showed_one() -> None:
    slower = judge_measurement("default", [report(throughput=700.0)], {"b1-n1-w1-p1": baseline()}, GateRules())
    assert slower.failure_message().startswith("performance regression in measurement 'default':")
    missing = judge_measurement("default", [report()], {"b1-n1-w1-p1": Found(None)},
                                GateRules(require_baseline=True))
    assert missing.verdict is Verdict.FAIL
    head = missing.failure_message().splitlines()[0]
    assert head == "measurement 'default' has no baseline to compare with (--npf-require-baseline is set):"
    undecided = judge_measurement("default", [report(throughput=960.0, rounds=1)], {"b1-n1-w1-p1": baseline()},
                                  GateRules(strict=True))
    assert undecided.verdict is Verdict.FAIL
    assert "regression" not in undecided.failure_message().splitlines()[0]
    assert "--npf-strict" in undecided.failure_message().splitlines()[0]


def test_the_inconclusive_summary_names_each_change_and_each_hint_once() -> None:
    few = {"b1-n1-w1-p1": baseline(), "b1-n2-w1-p1": baseline(2000.0)}
    one_round = [report(throughput=960.0, p99=21.0, rounds=1), report(2, throughput=1920.0, p99=21.0, rounds=1)]
    judged = judge_measurement("default", one_round, few, GateRules())
    assert judged.verdict is Verdict.INCONCLUSIVE
    undecided = [j for o in judged.outcomes for j in o.judgements if j.verdict is Verdict.INCONCLUSIVE]
    assert len(undecided) >= 2
    text = judged.inconclusive_summary()
    assert "\n" not in text
    assert text.startswith("cannot tell whether within 5%: n_models=1 workers=1 batch=1 pipeline=1: throughput -5.0% "
                           "(CI -8.2%..-1.6%)")
    assert "; n_models=2 workers=1 batch=1 pipeline=1: throughput -5.0%" in text
    hints = {j.hint for j in undecided if j.hint}
    assert hints and all(text.count(hint) == 1 for hint in hints)
