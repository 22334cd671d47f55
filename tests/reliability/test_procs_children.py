"""Processes a model starts, and model copies whose forkserver dies, never outlive the benchmark.

Each model copy leads a process group of its own, so what the model starts is stopped with
it (and named in a warning); a copy ends itself when its forkserver goes away, as it does
when its orchestrator does. Every case runs the real plugin in a child pytest and counts, from
/proc, every process of that child's session after it has ended.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.reliability import harness
from tests.reliability.models import CHILD_PIDS_ENV, STARTED_ENV

BOUND_S = 60.0

CHILDREN = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.StartsAChildProcess, inputs=torch.zeros(1, 4), duration=0.4, n_models=1,
                              workers_per_model=1, warmup=1, rounds=2)
def test_marker_form():
    pass


def test_fixture_form(npf_bench):
    result = npf_bench(m.StartsAChildProcess, torch.zeros(2, 4), duration=0.2, n_models=1, workers_per_model=1,
                       warmup=1, rounds=1)
    assert result.reports


@pytest.mark.neuron_benchmark(model=m.StartsAChildAndRaises, {harness.QUICK})
def test_error_path():
    pass
"""


def _child_pids(path: Path) -> list[int]:
    return [int(line) for line in path.read_text(encoding="ascii").split()] if path.exists() else []


def test_processes_a_model_starts_are_stopped_with_its_copies_and_named(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_children=CHILDREN)
    pids_file = pytester.path / "child-pids.txt"
    done = harness.run(pytester, env={CHILD_PIDS_ENV: str(pids_file)})
    # The helper processes do not change the verdicts: the benchmarks pass, the failing model fails.
    done.result.assert_outcomes(passed=2, failed=1)
    failure = harness.failure_sections(done.output)["test_error_path"]
    assert "forward exploded after starting a helper process" in failure
    started = _child_pids(pids_file)
    assert len(started) == 4, started  # two rounds, the fixture's one, the failing model's one
    assert not done.leftovers, f"processes left running: {done.describe_leftovers()}"
    assert not harness.alive(started), f"the models' helper processes outlived pytest: {sorted(started)}"
    summary = harness.warnings_summary(done.output)
    for pid in started:
        assert f"pid {pid}: sleep 300" in summary, summary
    assert "the model left 1 process(es) running after its copies ended" in summary
    assert "configuration n_models=1, workers_per_model=1, batch_size=1" in summary
    assert "they were stopped (SIGTERM, then SIGKILL)" in summary
    assert done.seconds < BOUND_S


LONG = harness.HEADER + """
@pytest.mark.neuron_benchmark(model=m.{model}, inputs=torch.zeros(1, 4), duration=120, n_models=1,
                              workers_per_model=1, warmup=1, rounds=1)
def test_long():
    pass


@pytest.mark.neuron_benchmark(model=m.Slow, inputs=torch.zeros(1, 4), duration={after_s}, n_models=1,
                              workers_per_model=1, warmup=1, rounds=1)
def test_after():
    pass
"""
# The next test measures this long: long enough to see whether the killed forkserver's copies end before
# pytest does (a copy's watchdog ends it once pytest has exited, which is too late for that test).
AFTER_S = 6


def _start(pytester: pytest.Pytester, model: str, *args: str, env: dict[str, str] | None = None) -> harness.Child:
    pytester.makepyfile(test_long=LONG.format(model=model, after_s=AFTER_S))
    return harness.start(pytester, *args, env={STARTED_ENV: str(pytester.path / "started"), **(env or {})})


@pytest.mark.slow
def test_copies_end_when_their_forkserver_is_killed(pytester: pytest.Pytester) -> None:
    child = _start(pytester, "Slow", "--durations=0", "-vv")
    try:
        harness.wait_for_file(pytester.path / "started", child)
        copies = harness.copies_of(child.pid, child.pid)
        assert copies, "the long benchmark's copies were not found"
        servers = {harness.parent_of(pid) for pid in copies} - {None}
        assert len(servers) == 1, servers
        (forkserver,) = servers
        assert forkserver is not None and harness.parent_of(forkserver) == child.pid
        time.sleep(0.3)  # into the timed window
        os.kill(forkserver, signal.SIGKILL)
        left, _ = harness.wait_gone(copies, timeout=AFTER_S / 2)
        # Before: the copies ran on (their window was 120 s) on the cores the next test measures on.
        assert not left, f"copies outlived their forkserver: {[harness.cmdline(p) for p in left]}"
        assert child.proc.poll() is None, "pytest ended before the copies did"
        done = harness.finish(child, timeout=90)
    finally:
        harness.kill_session(child)
    done.result.assert_outcomes(failed=1, passed=1)
    text = harness.failure_sections(done.output)["test_long"]
    assert "model copy 0 (copy 0 on cores" in text and "lost the forkserver that started it" in text, text
    assert "the next configuration starts a new forkserver" in text
    # The long test fails soon after the kill, not when its window would have closed.
    assert harness.call_durations(done.output)["test_long"] < 60
    assert not done.leftovers, done.describe_leftovers()


def test_a_killed_pytest_leaves_no_process_the_model_started(pytester: pytest.Pytester) -> None:
    pids_file = pytester.path / "child-pids.txt"
    # The copy ignores SIGTERM and SIGINT and never returns; its helper process would run for 300 s.
    child = _start(pytester, "StartsAChildThenSleepsForever", env={CHILD_PIDS_ENV: str(pids_file)})
    try:
        harness.wait_for_file(pytester.path / "started", child)
        helpers = _child_pids(pids_file)
        assert len(helpers) == 1 and harness.alive(helpers), helpers
        os.kill(child.pid, signal.SIGKILL)
        child.proc.wait(10)
        rest, took = harness.wait_gone(None, sid=child.pid, timeout=15)
        assert not rest, [harness.cmdline(p) for p in rest]
    finally:
        harness.kill_session(child)
    assert not harness.alive(helpers)
    assert took < 10, f"the session's processes took {took:.1f}s to end"
