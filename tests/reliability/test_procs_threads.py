"""A model that leaves a non-daemon thread running costs no time and is named in a warning.

A copy that has sent its results exits without waiting for the model's own threads (it
used to wait for them, and the orchestrator gave each copy 5 s in turn before stopping it),
and the copies of a configuration are given one shared deadline to exit.
"""

from __future__ import annotations

import pytest

from tests.reliability import harness

# Three configurations, two rounds each: six sets of copies that each used to add 5 s.
THREADS = harness.HEADER + """
@pytest.mark.neuron_benchmark(model=m.LeavesAThreadRunning, inputs=torch.zeros(1, 4), duration=0.4, n_models=1,
                              workers_per_model=[1, 2, 3], warmup=1, rounds=2)
def test_thread_left_running():
    pass
"""


def test_a_thread_the_model_leaves_running_neither_delays_the_matrix_nor_goes_unsaid(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_threads=THREADS)
    done = harness.run(pytester, "--durations=0", "-vv")
    done.result.assert_outcomes(passed=1)
    # Generous: the matrix itself takes about 2 s here; before, at least 6 x 5 s of waiting came on top.
    assert harness.call_durations(done.output)["test_thread_left_running"] < 20, done.output
    summary = harness.warnings_summary(done.output)
    for workers in (1, 2, 3):
        assert (f"configuration n_models=1, workers_per_model={workers}, batch_size=1, pipeline_size=1, "
                "model_filename=tests.reliability.models:LeavesAThreadRunning: the model left non-daemon "
                "thread(s) running after the timed window (copy 0: 'npf-rel-poller')") in summary, summary
    assert "the copies ended without waiting for them" in summary
    assert not done.leftovers, done.describe_leftovers()
