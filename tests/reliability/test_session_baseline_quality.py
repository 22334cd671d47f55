"""Unusable baselines are not saved silently: a save says which test and configuration has unstable
rounds or too few effective samples for the gated percentiles, and what to do; ``--npf-strict``
refuses those entries (the others are saved) and fails the run; a round without any inference is
never saved."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from pytest_neuronperf.stats.quantiles import min_samples_for_quantile
from tests.reliability import harness

# Whether a real round is stable depends on the machine's load at that moment, so the tests that need a
# stable, an unstable or an empty round doctor the runner's real reports (chosen by model_name); the
# plugin, its session and the baseline store run unchanged. Too few samples for p99 is real: models.Slow
# takes 1 ms a call, so a 0.3 s round has a few hundred inferences, below the 662 p99 needs.
DOCTOR = """
import pytest_neuronperf.runner.reports as reports_module

_real = reports_module.get_reports


# Every report the plugin judges and saves is built here, after the first rounds and after added ones.
def _doctored(results):
    reports = _real(results)
    for report in reports:
        for r in report.get("rounds") or []:
            if report.get("model_name") in ("solid", "unstable"):
                r["n_eff_p50"] = r["n_eff_p99"] = 1e6
                r["stable"] = report["model_name"] == "solid"
            elif report.get("model_name") == "empty":
                r.update(n=0, throughput=0.0)
    return reports


reports_module.get_reports = _doctored
"""

ONE_ROUND = "n_models=1, workers_per_model=1, warmup=1, rounds=1"
PROJECT = harness.HEADER + f"""
def test_short(npf_bench):
    npf_bench(m.Slow, torch.zeros(1, 4), duration=0.3, {ONE_ROUND})


def test_unstable(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), duration=0.2, model_name="unstable", {ONE_ROUND})


def test_solid(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), duration=0.2, model_name="solid", {ONE_ROUND})
"""

EMPTY = harness.HEADER + f"""
def test_empty(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), duration=0.2, model_name="empty", {ONE_ROUND})
"""

CONFIG = "(n_models=1 workers=1 batch=1 pipeline=1)"
ADVICE = "run longer (--npf-duration) on a quieter machine, then save again"
P99 = re.compile(r"p99 rests on \d+ effective samples in its smallest round, the gate needs (\d+) to judge it")
UNSTABLE = "1 of 1 round(s) unstable (throughput drifted within the window by more than 10%)"


def _entries(pytester: pytest.Pytester, module: str) -> dict[str, Any]:
    path = pytester.path / ".neuronperf" / "baselines" / f"{module}.json"
    return json.loads(path.read_text())["entries"] if path.exists() else {}


def _line(out: str, start: str) -> str:
    found = [line for line in out.splitlines() if line.startswith(start)]
    assert len(found) == 1, f"expected one line starting {start!r} in:\n{out}"
    return found[0]


def test_a_weak_baseline_is_saved_with_a_warning_naming_test_configuration_and_fix(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(DOCTOR)
    pytester.makepyfile(test_quality=PROJECT)
    done = harness.run(pytester, "--npf-save-baseline")
    out = done.output
    assert done.result.ret == pytest.ExitCode.OK, out
    short = _line(out, f"WARNING: weak baseline saved for test_quality.py::test_short {CONFIG}: ")
    match = P99.search(short)
    assert match and int(match.group(1)) == min_samples_for_quantile(0.99), short
    assert short.endswith(f"{ADVICE} (--npf-strict refuses such baselines)")
    unstable = _line(out, f"WARNING: weak baseline saved for test_quality.py::test_unstable {CONFIG}: ")
    assert UNSTABLE in unstable and ADVICE in unstable
    assert "test_solid" not in "\n".join(line for line in out.splitlines() if line.startswith("WARNING:"))
    assert sorted(_entries(pytester, "test_quality")) == [
        "test_short::default::b1-n1-w1-p1", "test_solid::default::b1-n1-w1-p1", "test_unstable::default::b1-n1-w1-p1"]
    assert not done.leftovers, done.describe_leftovers()


def test_strict_refuses_weak_baselines_saves_the_others_and_fails_the_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(DOCTOR)
    pytester.makepyfile(test_quality=PROJECT)
    done = harness.run(pytester, "--npf-save-baseline", "--npf-strict")
    out = done.output
    done.result.assert_outcomes(passed=3)
    assert done.result.ret == pytest.ExitCode.TESTS_FAILED, out
    short = _line(out, f"ERROR: baseline not saved for test_quality.py::test_short {CONFIG} (--npf-strict): ")
    assert P99.search(short) and short.endswith(ADVICE), short
    unstable = _line(out, f"ERROR: baseline not saved for test_quality.py::test_unstable {CONFIG} (--npf-strict): ")
    assert UNSTABLE in unstable
    assert sorted(_entries(pytester, "test_quality")) == ["test_solid::default::b1-n1-w1-p1"]
    assert "baselines saved: .neuronperf/baselines/test_quality.json" in out
    assert not done.leftovers, done.describe_leftovers()


def test_a_round_without_inferences_is_never_saved_and_costs_no_other_entry(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(DOCTOR)
    pytester.makepyfile(test_quality=PROJECT, test_empty=EMPTY)
    done = harness.run(pytester, "--npf-save-baseline", "--npf-json=results.json")
    out = done.output
    assert done.result.ret == pytest.ExitCode.TESTS_FAILED, out
    assert "INTERNALERROR" not in out
    _line(out, f"ERROR: baseline not saved for test_empty.py::test_empty {CONFIG}: ")
    assert not _entries(pytester, "test_empty")
    assert len(_entries(pytester, "test_quality")) == 3
    doc = json.loads((pytester.path / "results.json").read_text())
    assert len(doc["measurements"]) == 4  # the results file keeps every measurement, the empty one too
    assert not done.leftovers, done.describe_leftovers()


GOOD_ROUND = {"n": 5000, "throughput": 1000.0, "stable": True, "n_eff_p50": 4000.0, "n_eff_p99": 3000.0}


@pytest.mark.parametrize(("change", "unusable", "weak"), [
    ({}, False, []),
    ({"stable": False}, False, ["1 of 2 round(s) unstable"]),
    ({"n_eff_p99": 100.0}, False, ["p99 rests on 100 effective samples"]),
    ({"n_eff_p50": float("nan")}, False, ["p50 rests on no effective samples"]),
    ({"n": 0, "throughput": 0.0}, True, []),
    ({"n": None}, True, []),
])
def test_the_save_time_rule_for_one_configuration(change: dict[str, Any], unusable: bool, weak: list[str]) -> None:
    from pytest_neuronperf.session.session import baseline_quality

    quality = baseline_quality([GOOD_ROUND, {**GOOD_ROUND, **change}])
    assert bool(quality.unusable) is unusable
    assert len(quality.weak) == len(weak)
    for found, start in zip(quality.weak, weak, strict=True):
        assert found.startswith(start), found
