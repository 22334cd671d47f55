"""Issue 12, defects 8 (the gate part) and 10, and bad limits: the gate never passes what it did not judge,
its duration hint is the total to set, and a limit that bounds nothing is refused. Through the real plugin."""

from __future__ import annotations

import math
import re

import pytest

from tests.reliability import harness

MODELS = '''
import time
import torch

class Sleeps2ms(torch.nn.Module):
    def forward(self, x):
        time.sleep(0.002)
        return x
'''


def _check_clean(done: harness.Run) -> None:
    assert done.seconds < 90.0, f"the session took {done.seconds:.0f}s"
    assert not done.leftovers, f"processes left running: {done.describe_leftovers()}"
    assert "INTERNALERROR" not in done.output, done.output


ALL_SKIPPED = harness.HEADER + """
@pytest.mark.neuron_benchmark(model=m.Fine, inputs=torch.zeros(1, 4), n_models=10**6, workers_per_model=1,
                              duration=0.2, warmup=1, rounds=1)
def test_nothing_runs():
    pass
"""


def test_a_measurement_that_compared_nothing_fails_when_baselines_are_required(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_skipped=ALL_SKIPPED)
    relaxed = harness.run(pytester, "-rs")
    _check_clean(relaxed)
    relaxed.result.assert_outcomes(passed=1)  # without the CI flags, a machine too small is no failure

    required = harness.run(pytester, "--npf-require-baseline", "--npf-strict")
    _check_clean(required)
    required.result.assert_outcomes(failed=1)
    assert "nothing was compared with a baseline: no configuration finished" in required.output
    assert "n_models=1000000" in required.output  # why nothing finished: the skipped configuration's reason
    assert "--npf-require-baseline is set" in required.output


SHORT = """
import pytest
import torch
from npf_gate_models import Sleeps2ms

@pytest.mark.neuron_benchmark(model=Sleeps2ms, inputs=torch.zeros(1, 4), n_models=1, workers_per_model=1,
                              duration=0.6, warmup=1)
def test_short():
    pass
"""
HINT = re.compile(r"(run|re-record the baseline) about ([\d.]+)x longer \(--npf-duration=(\d+)s\) to judge p99")


@pytest.mark.slow
def test_the_duration_hint_is_the_total_to_set(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(npf_gate_models=MODELS, test_short=SHORT)
    # Three rounds of 0.2 s: about 100 inferences a round, far from the 662 a p99 needs.
    pytester.makeini("[pytest]\nnpf_rounds = 3\nnpf_max_rounds = 3\nnpf_tolerance = 50%\n")
    saved = harness.run(pytester, "--npf-save-baseline")
    _check_clean(saved)
    judged = harness.run(pytester, "--npf-strict")
    _check_clean(judged)
    judged.result.assert_outcomes(failed=1)
    hints = HINT.findall(judged.output)
    assert hints, judged.output
    total = 0.6  # the --npf-duration that measured both sides, split over 3 rounds
    for _, factor, seconds in hints:
        # "Nx longer" of the whole run, rounded up; following it gives every round N times its window.
        # (Before the fix it was N times one round's 0.2 s, a third of what the rounds need.)
        assert int(seconds) >= math.floor(total * float(factor) * 0.95), hints
        assert int(seconds) <= math.ceil(total * (float(factor) + 0.05)) + 1, hints


BAD_LIMITS = {
    "test_negative": (f"""
@pytest.mark.neuron_benchmark(model=m.Fine, max_p99_ms=-1, {harness.QUICK})
def test_negative():
    pass
""", r"max_p99_ms\b.*-1"),
    "test_zero": (f"""
@pytest.mark.neuron_benchmark(model=m.Fine, min_throughput=0, {harness.QUICK})
def test_zero():
    pass
""", r"min_throughput\b.*got 0\b"),
    "test_word": ("""
def test_word(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), min_throughput="fast", duration=0.2, n_models=1, workers_per_model=1,
              warmup=1, rounds=1)
""", r"min_throughput\b.*'fast'"),
    "test_infinite": (f"""
@pytest.mark.neuron_benchmark(model=m.Fine, max_p50_ms=float("inf"), {harness.QUICK})
def test_infinite():
    pass
""", r"max_p50_ms\b.*\binf\b"),
}


def test_limits_must_be_positive_finite_numbers(pytester: pytest.Pytester) -> None:
    # One module each: a value refused at collection stops its own module only.
    pytester.makepyfile(**{name: harness.HEADER + body for name, (body, _) in BAD_LIMITS.items()})
    done = harness.run(pytester, "-rfE", "--continue-on-collection-errors")
    _check_clean(done)
    outcomes = done.result.parseoutcomes()
    # Failed where they run, or refused at collection: never passed, never a TypeError after the run.
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) == 4, outcomes
    assert not outcomes.get("passed"), outcomes
    for name, (_, message) in BAD_LIMITS.items():
        assert re.search(message, done.output), (name, done.output)
    assert "TypeError" not in done.output, done.output
    assert "is below the minimum" not in done.output and "is above the maximum" not in done.output
