"""A model copy's watchdog ends the copy once the process that started it is gone."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from pytest_neuronperf.runner.replica import ORPHANED_EXIT_CODE
from tests.reliability import harness

WATCHED = """
import os, sys, time
from pytest_neuronperf.runner import replica
if sys.argv[2] == "poll":
    del os.pidfd_open  # as on systems without pidfds
replica.watch_orchestrator(int(sys.argv[1]))
print("watching", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("how", ["pidfd", "poll"])
def test_the_watchdog_ends_the_process_when_its_orchestrator_dies(how: str) -> None:
    orchestrator = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watched = subprocess.Popen([sys.executable, "-c", WATCHED, str(orchestrator.pid), how],
                               env=harness.child_env(), stdout=subprocess.PIPE)
    try:
        assert watched.stdout is not None and watched.stdout.readline() == b"watching\n"
        time.sleep(0.3)
        assert watched.poll() is None, "the watchdog fired while its orchestrator was alive"
        orchestrator.send_signal(signal.SIGKILL)
        # Not reaped yet: a dead orchestrator stays a zombie until its parent waits for it.
        t0 = time.monotonic()
        assert watched.wait(10) == ORPHANED_EXIT_CODE
        assert time.monotonic() - t0 < 5
    finally:
        for proc in (watched, orchestrator):
            proc.kill()
            proc.wait()


def test_a_copy_whose_orchestrator_is_already_gone_exits_at_once() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    watched = subprocess.Popen([sys.executable, "-c", WATCHED, str(gone.pid), "pidfd"], env=harness.child_env(),
                               stdout=subprocess.DEVNULL)
    try:
        assert watched.wait(10) == ORPHANED_EXIT_CODE
    finally:
        watched.kill()
        watched.wait()


WATCHED_IN_ITS_GROUP = """
import os, subprocess, sys, time
from pytest_neuronperf.runner import replica
os.setpgid(0, 0)  # as a model copy does
helper = subprocess.Popen(["sleep", "300"], stdout=subprocess.DEVNULL)  # as a model may
replica.watch_orchestrator(int(sys.argv[1]), int(sys.argv[2]))
print(helper.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("gone", ["forkserver", "orchestrator"])
def test_the_watchdog_watches_the_forkserver_too_and_takes_the_models_processes_along(gone: str) -> None:
    orchestrator = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    forkserver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watched = subprocess.Popen([sys.executable, "-c", WATCHED_IN_ITS_GROUP, str(orchestrator.pid),
                                str(forkserver.pid)], env=harness.child_env(), stdout=subprocess.PIPE)
    helper = 0
    try:
        assert watched.stdout is not None
        line = watched.stdout.readline()
        assert line.strip().isdigit(), f"the watched process did not start: {line!r}"
        helper = int(line)
        time.sleep(0.3)
        assert watched.poll() is None, "the watchdog fired while both processes were alive"
        (forkserver if gone == "forkserver" else orchestrator).send_signal(signal.SIGKILL)
        assert watched.wait(10) == ORPHANED_EXIT_CODE
        left, _ = harness.wait_gone([helper], timeout=5)
        assert not left, "the helper process the model started outlived its copy"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(watched.pid, signal.SIGKILL)  # the helper too, whatever happened
        for proc in (watched, orchestrator, forkserver):
            proc.kill()
            proc.wait()
