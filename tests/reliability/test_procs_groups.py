"""stop_groups: what a copy's process group still holds is found, named and stopped within a bound."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from pytest_neuronperf._util.processes import group_members, stop_groups
from tests.reliability import harness

# A group leader that starts helpers (one ignores SIGTERM, as a stuck server may) and exits without them.
LEADER = """
import os, signal, subprocess, sys
os.setpgid(0, 0)
polite = subprocess.Popen(["sleep", "300"], stdout=subprocess.DEVNULL)
stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                             "signal.SIG_IGN); print('ready', flush=True); time.sleep(300)"], stdout=subprocess.PIPE)
stubborn.stdout.readline()
print(polite.pid, stubborn.pid, flush=True)
"""


def test_what_a_group_leader_left_behind_is_found_named_and_stopped() -> None:
    leader = subprocess.Popen([sys.executable, "-c", LEADER], stdout=subprocess.PIPE)
    try:
        assert leader.stdout is not None
        polite, stubborn = map(int, leader.stdout.readline().split())
        assert leader.wait(10) == 0
        assert group_members(leader.pid) == {polite, stubborn}
        t0 = time.monotonic()
        leftovers = stop_groups([leader.pid], exclude=[leader.pid], grace_s=0.5)
        took = time.monotonic() - t0
        assert sorted(leftovers.found) == sorted([polite, stubborn])
        assert leftovers.found[polite] == "sleep 300"
        assert not leftovers.survivors and leftovers
        assert not harness.alive([polite, stubborn])
        assert group_members(leader.pid) == set()
        # SIGTERM, one grace for all, SIGKILL: bounded, whatever ignores SIGTERM.
        assert 0.4 < took < 10, took
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGKILL)
        leader.kill()
        leader.wait()


def test_an_empty_or_foreign_group_is_no_error_and_reports_nothing() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    t0 = time.monotonic()
    leftovers = stop_groups([gone.pid, 0, 1, os.getpid() + 10**7], grace_s=5.0)
    assert not leftovers and not leftovers.found and not leftovers.survivors
    assert time.monotonic() - t0 < 1.0
