"""Ctrl-C, SIGTERM and SIGKILL to pytest in the middle of a benchmark.

An interrupted run stops its model copies at once, is reported the way pytest
reports Ctrl-C, and saves no baseline; a killed pytest leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.reliability import harness
from tests.reliability.models import STARTED_ENV

# A quick test that measures (so the session has something it could save), then a long one to interrupt.
LONG = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_quick():
    pass


@pytest.mark.neuron_benchmark(model=m.{{model}}, inputs=torch.zeros(1, 4), duration=120, n_models=1,
                              workers_per_model=2, warmup=1, rounds=1)
def test_long():
    pass
"""


def _start_long(pytester: pytest.Pytester, model: str) -> harness.Child:
    """Start the session with the long benchmark."""
    pytester.makepyfile(test_long=LONG.format(model=model))
    return harness.start(pytester, "--npf-save-baseline", env={STARTED_ENV: str(pytester.path / "started")})


def _copies_once_running(pytester: pytest.Pytester, child: harness.Child) -> set[int]:
    harness.wait_for_file(pytester.path / "started", child)
    copies = harness.copies_of(child.pid, child.pid)
    assert copies, "the long benchmark's copies were not found"
    return copies


def _no_baseline_saved(pytester: pytest.Pytester) -> None:
    saved = list((pytester.path / ".neuronperf").rglob("*.json")) if (pytester.path / ".neuronperf").exists() else []
    assert not saved, f"an interrupted run saved {saved}"


@pytest.mark.parametrize(
    ("sig", "whole_group"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGINT to pytest", "Ctrl-C (SIGINT to the process group)", "SIGTERM to pytest"],
)
def test_an_interrupted_benchmark_stops_its_copies_and_saves_nothing(
    pytester: pytest.Pytester, sig: signal.Signals, whole_group: bool
) -> None:
    child = _start_long(pytester, "Slow")
    try:
        copies = _copies_once_running(pytester, child)
        time.sleep(0.3)  # into the timed window
        signalled = time.monotonic()
        if whole_group:
            os.killpg(child.pid, sig)
        else:
            os.kill(child.pid, sig)
        left, took = harness.wait_gone(copies, timeout=10)
        assert not left, f"copies still running {took:.1f}s after {sig.name}: {sorted(left)}"
        assert took < 2.0, f"the copies took {took:.2f}s to stop"
        done = harness.finish(child, timeout=60)
    finally:
        harness.kill_session(child)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED, done.output
    assert time.monotonic() - signalled < 60
    expected = "KeyboardInterrupt: terminated by SIGTERM" if sig == signal.SIGTERM else "KeyboardInterrupt"
    done.result.stdout.fnmatch_lines([f"*!!! {expected} !!!*"])
    # Everything else the session started (forkserver, resource tracker) ends with pytest.
    assert not done.leftovers, done.describe_leftovers()
    _no_baseline_saved(pytester)


def test_a_killed_pytest_leaves_no_copy_behind(pytester: pytest.Pytester) -> None:
    # The model ignores SIGTERM and SIGINT and never returns: only the copy's own watchdog can end it.
    child = _start_long(pytester, "SleepsForever")
    try:
        copies = _copies_once_running(pytester, child)
        os.kill(child.pid, signal.SIGKILL)
        child.proc.wait(10)
        left, took = harness.wait_gone(copies, timeout=15)
        assert not left, f"copies outlived the killed pytest: {[harness.cmdline(p) for p in left]}"
        rest, _ = harness.wait_gone(None, sid=child.pid, timeout=15)
        assert not rest, [harness.cmdline(p) for p in rest]
    finally:
        harness.kill_session(child)
    assert took < 5.0, f"the copies took {took:.2f}s to notice"
    _no_baseline_saved(pytester)
