"""What a failing copy's message says when the usual clues are missing or misleading.

An exception whose ``__str__`` raises still reaches the test with its type and the copy's
traceback (it used to be reported as "exited with code 1"), and a copy that a stop signal
paused is named as stopped, not only as too slow.
"""

from __future__ import annotations

import pytest

from tests.reliability import harness

UNPRINTABLE = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.RaisesUnprintable, {harness.QUICK})
def test_unprintable():
    pass
"""


def test_an_exception_whose_str_raises_is_reported_with_its_type_and_traceback(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unprintable=UNPRINTABLE)
    done = harness.run(pytester)
    done.result.assert_outcomes(failed=1)
    text = harness.failure_sections(done.output)["test_unprintable"]
    assert "exited with code" not in text, text
    assert ("raised Unprintable: <str() of the exception raised RuntimeError> during warm-up "
            "(configuration: n_models=1, workers_per_model=1") in text, text
    assert "Traceback from the model copy:" in text and 'raise Unprintable("the real problem")' in text, text
    assert not done.leftovers, done.describe_leftovers()


STOPPED = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.StopsItself, timeout=1, {harness.QUICK})
def test_stopped():
    pass


@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_later_one_passes():
    pass
"""


def test_a_copy_paused_by_sigstop_is_named_as_stopped(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_stopped=STOPPED)
    done = harness.run(pytester, "--durations=0", "-vv")
    done.result.assert_outcomes(failed=1, passed=1)
    text = harness.failure_sections(done.output)["test_stopped"]
    assert "did not finish running the timed window in time (timeout=1s after the 0.2s window closed; config" in text
    assert "; copy 0 (pid " in text and ") is stopped (SIGSTOP?): paused by a stop signal" in text, text
    assert "they were stopped. Raise `timeout` if the model legitimately needs longer" in text
    # A stopped process ignores SIGTERM until it is continued: the SIGKILL after the grace ends it.
    assert harness.call_durations(done.output)["test_stopped"] < 30
    assert not done.leftovers, done.describe_leftovers()
