"""Bad measurement names and gate values fail their own test (or its collection) before anything is
measured; nothing at the end of the session discards the other tests' results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_neuronperf.spec.metrics import METRIC_NAMES
from tests.reliability import harness

METRICS_LISTED = ", ".join(METRIC_NAMES)

QUICK = "duration=0.2, n_models=1, workers_per_model=1, warmup=1, rounds=1"
STARTED = "started.txt"  # models.Slow creates it when a copy runs: it must not, for a rejected call

BAD_CALLS = harness.HEADER + f"""
def test_bad_name(npf_bench):
    npf_bench(m.Slow, torch.zeros(1, 4), name="a::b", {QUICK})


def test_throughput_in_words(npf_bench):
    npf_bench(m.Slow, torch.zeros(1, 4), min_throughput="fast", {QUICK})


def test_negative_p99(npf_bench):
    npf_bench(m.Slow, torch.zeros(1, 4), max_p99_ms=-1, {QUICK})


def test_infinite_p50(npf_bench):
    npf_bench(m.Slow, torch.zeros(1, 4), max_p50_ms=float("inf"), {QUICK})


def test_unparsable_tolerance(npf_bench):
    npf_bench(m.Slow, torch.zeros(1, 4), tolerance="lots", {QUICK})
"""

GOOD = harness.HEADER + f"""
def test_good(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), name="good", {QUICK})


@pytest.mark.neuron_benchmark(model=m.Fine, inputs=torch.zeros(1, 4), {QUICK})
def test_declared():
    pass
"""

CALL_MESSAGES = [
    "ValueError: npf_bench: name='a::b' cannot name a measurement: measurement must not contain '::', "
    "got 'a::b' (baseline entries are keyed <test>::<name>::<configuration>)",
    "ValueError: npf_bench: min_throughput must be a positive finite number such as 500 (inferences/s), "
    "got 'fast'",
    "ValueError: npf_bench: max_p99_ms must be a positive finite number such as 5.0 (ms), got -1",
    "ValueError: npf_bench: max_p50_ms must be a positive finite number such as 5.0 (ms), got inf",
    "ValueError: npf_bench: tolerance: expected a percentage such as 10% or a fraction such as 0.1, got 'lots'",
]


@pytest.mark.parametrize("compare", [[], ["--npf-no-compare"]], ids=["compare", "no-compare"])
def test_bad_fixture_values_fail_their_test_before_measuring_and_the_rest_is_saved(
        pytester: pytest.Pytester, compare: list[str]) -> None:
    pytester.makepyfile(test_bad_calls=BAD_CALLS, test_good=GOOD)
    started = pytester.path / STARTED
    done = harness.run(pytester, *compare, "--npf-save-baseline", "--npf-json=results.json",
                       env={"NPF_REL_STARTED": str(started)})
    out = done.output
    assert done.result.ret == pytest.ExitCode.TESTS_FAILED, out  # not INTERNALERROR (3)
    done.result.assert_outcomes(failed=5, passed=2)
    assert "INTERNALERROR" not in out
    for message in CALL_MESSAGES:
        assert message in out
    assert not started.exists(), "a rejected call started a benchmark"
    doc = json.loads((pytester.path / "results.json").read_text())
    assert sorted((m["test"], m["measurement"]) for m in doc["measurements"]) == [
        ("test_good.py::test_declared", "default"), ("test_good.py::test_good", "good")]
    entries = json.loads((pytester.path / ".neuronperf" / "baselines" / "test_good.json").read_text())["entries"]
    assert sorted(entries) == ["test_declared::default::b1-n1-w1-p1", "test_good::good::b1-n1-w1-p1"]
    assert not done.leftovers, done.describe_leftovers()


MARKER_VALUES = {
    "test_marker_name": ('name="a::b"', "name='a::b' cannot name a measurement: measurement must not contain "
                                        "'::', got 'a::b' (baseline entries are keyed "
                                        "<test>::<name>::<configuration>)"),
    "test_marker_throughput": ('min_throughput="fast"', "min_throughput must be a positive finite number such as "
                                                        "500 (inferences/s), got 'fast'"),
    "test_marker_p99": ("max_p99_ms=-1", "max_p99_ms must be a positive finite number such as 5.0 (ms), got -1"),
    "test_marker_bool": ("max_p50_ms=True", "max_p50_ms must be a positive finite number such as 5.0 (ms), "
                                            "got True"),
    "test_marker_tolerance": ('tolerance="latency=5%"',
                              f"tolerance: expected metric=tolerance pairs with metrics {METRICS_LISTED} "
                              "(such as throughput=5%,p99=10%), got 'latency=5%'"),
}


def test_bad_marker_values_are_collection_errors_naming_the_keyword(pytester: pytest.Pytester) -> None:
    for module, (keyword, _) in MARKER_VALUES.items():
        pytester.makepyfile(**{module: harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Slow, inputs=torch.zeros(1, 4), {keyword}, {QUICK})
def test_it():
    pass
"""})
    started = Path(pytester.path) / STARTED
    done = harness.run(pytester, env={"NPF_REL_STARTED": str(started)})
    assert done.result.ret == pytest.ExitCode.INTERRUPTED, done.output
    done.result.assert_outcomes(errors=len(MARKER_VALUES))
    for module, (_, message) in MARKER_VALUES.items():
        assert f"{module}.py::test_it: @pytest.mark.neuron_benchmark: {message}" in done.output
    assert not started.exists()
    assert not done.leftovers, done.describe_leftovers()
