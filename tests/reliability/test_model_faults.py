"""Faults in the model and in its processes, through the real plugin in a child pytest.

Every case checks the outcome, the message, that the run ends in bounded time
(generous bounds: the machine is shared) and that no process is left behind.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.reliability import harness

BOUND_S = 60.0  # generous: a clean run of each child session takes a few seconds


def _call_durations(output: str) -> dict[str, float]:
    """Test name -> seconds of its call phase, from ``--durations=0 -vv``."""
    return {m.group(2): float(m.group(1)) for m in re.finditer(r"([\d.]+)s call\s+\S+::(\w+)", output)}


def _failure_sections(output: str) -> dict[str, str]:
    """Test name -> the text of its failure section."""
    parts = re.split(r"_{3,} (test_\w+) _{3,}", output)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _check_clean(done: harness.Run) -> None:
    assert done.seconds < BOUND_S, f"the session took {done.seconds:.0f}s"
    assert not done.leftovers, f"processes left running: {done.describe_leftovers()}"


RAISING = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.RaisesInForward, {harness.QUICK})
def test_forward():
    pass


@pytest.mark.neuron_benchmark(model=m.RaisesInInit, {harness.QUICK})
def test_init():
    pass


@pytest.mark.neuron_benchmark(model=m.Fine, preprocess_fn=m.raising_preprocess, {harness.QUICK})
def test_preprocess():
    pass


@pytest.mark.neuron_benchmark(model=m.Fine, postprocess_fn=m.raising_postprocess, {harness.QUICK})
def test_postprocess():
    pass


def test_fixture_form(npf_bench):
    npf_bench(m.RaisesInForward, torch.zeros(2, 4), duration=0.2, n_models=1, workers_per_model=1, warmup=1,
              rounds=1)


@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_later_one_passes():
    pass
"""


def test_exceptions_in_model_code_fail_their_test_with_the_original_traceback(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_raising=RAISING)
    done = harness.run(pytester)
    done.result.assert_outcomes(failed=5, passed=1)
    sections = _failure_sections(done.output)
    expected = {
        "test_forward": ("RuntimeError: forward exploded on purpose", "warm-up",
                         'raise RuntimeError("forward exploded on purpose")'),
        "test_init": ("ValueError: __init__ exploded on purpose", "model load",
                      'raise ValueError("__init__ exploded on purpose")'),
        "test_preprocess": ("KeyError: 'preprocess exploded on purpose'", "warm-up",
                            'raise KeyError("preprocess exploded on purpose")'),
        "test_postprocess": ("ZeroDivisionError: postprocess exploded on purpose", "warm-up",
                             'raise ZeroDivisionError("postprocess exploded on purpose")'),
        "test_fixture_form": ("RuntimeError: forward exploded on purpose", "warm-up",
                              'raise RuntimeError("forward exploded on purpose")'),
    }
    for name, (error, phase, line) in expected.items():
        text = sections[name]
        assert f"raised {error} during {phase}" in text, text
        # The configuration that failed, and the copy's own traceback down to the model's line.
        batch = 2 if name == "test_fixture_form" else 1
        assert f"(configuration: n_models=1, workers_per_model=1, batch_size={batch}, pipeline_size=1" in text
        assert "Traceback from the model copy:" in text
        assert f"tests{os.sep}reliability{os.sep}models.py" in text and line in text, text
    _check_clean(done)


DYING = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.KillsItself, {harness.QUICK})
def test_sigkill():
    pass


@pytest.mark.neuron_benchmark(model=m.ExitsAbruptly, {harness.QUICK})
def test_exit():
    pass


@pytest.mark.neuron_benchmark(model=m.Segfaults, {harness.QUICK})
def test_segfault():
    pass


@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_later_one_passes():
    pass
"""


def test_a_copy_that_dies_fails_its_test_within_seconds(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dying=DYING)
    done = harness.run(pytester, "--durations=0", "-vv")
    done.result.assert_outcomes(failed=3, passed=1)
    sections = _failure_sections(done.output)
    expected = {
        "test_sigkill": "was killed by signal 9 (SIGKILL",
        "test_exit": "exited with code 3",
        "test_segfault": "was killed by signal 11 (SIGSEGV, a crash in native code",
    }
    for name, how in expected.items():
        text = sections[name]
        assert "model copy 0 (copy 0 on cores" in text and how in text, text
        assert "while running the timed window (configuration: n_models=1, workers_per_model=1" in text
        assert "no result was produced" in text
    durations = _call_durations(done.output)
    for name in expected:
        assert durations[name] < 30, durations
    _check_clean(done)


HANGING = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.HangsInForward, timeout=1, {harness.QUICK})
def test_hangs_in_window():
    pass


@pytest.mark.neuron_benchmark(model=m.HangsIgnoringSigterm, timeout=1, {harness.QUICK})
def test_hangs_ignoring_sigterm():
    pass


@pytest.mark.neuron_benchmark(model=m.HangsInInit, timeout=1.5, {harness.QUICK})
def test_hangs_loading():
    pass


@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_later_one_passes():
    pass
"""


@pytest.mark.slow
def test_a_hanging_copy_is_stopped_after_the_marker_timeout(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_hanging=HANGING)
    done = harness.run(pytester, "--durations=0", "-vv")
    done.result.assert_outcomes(failed=3, passed=1)
    sections = _failure_sections(done.output)
    window = "did not finish running the timed window in time (timeout=1s after the 0.2s window closed; config"
    assert window in sections["test_hangs_in_window"]
    assert window in sections["test_hangs_ignoring_sigterm"]
    assert "did not finish loading and warming up in time (timeout=1.5s; config" in sections["test_hangs_loading"]
    for text in sections.values():
        assert "they were stopped. Raise `timeout` if the model legitimately needs longer" in text
    durations = _call_durations(done.output)
    # Duration + timeout + at most the stop grace; far from the model's one-hour sleep.
    assert max(durations[name] for name in sections) < 30, durations
    _check_clean(done)


ONE_HANG = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.HangsInForward, {harness.QUICK})
def test_hangs():
    pass
"""


@pytest.mark.parametrize("source", ["command line", "ini"])
def test_the_timeout_also_comes_from_the_command_line_and_the_ini(pytester: pytest.Pytester, source: str) -> None:
    pytester.makepyfile(test_one_hang=ONE_HANG)
    if source == "ini":
        pytester.makeini("[pytest]\nnpf_timeout = 1s\n")
        done = harness.run(pytester)
    else:
        done = harness.run(pytester, "--npf-timeout=1s")
    done.result.assert_outcomes(failed=1)
    assert "did not finish running the timed window in time (timeout=1s after" in done.output
    _check_clean(done)


FAILS_IN_ONE_COPY = harness.HEADER + """
@pytest.mark.neuron_benchmark(model=m.FailsInSecondCopy, inputs=torch.zeros(1, 4), duration=60, n_models=2,
                              workers_per_model=2, warmup=1, rounds=1)
def test_one_copy_fails():
    pass
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs for two copies")
def test_a_failing_worker_stops_every_copy_not_just_its_own(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one_copy=FAILS_IN_ONE_COPY)
    done = harness.run(pytester, "--durations=0", "-vv")
    done.result.assert_outcomes(failed=1)
    assert "model copy 1 (copy 1 on cores" in done.output
    assert "raised RuntimeError: copy 1 failed on purpose during timed run" in done.output
    # The healthy copy's window was 60 s; stopping it with its sibling ends the test long before.
    assert _call_durations(done.output)["test_one_copy_fails"] < 40
    _check_clean(done)
