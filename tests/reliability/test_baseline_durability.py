"""Baselines are never lost or corrupted: not by kill -9 mid-save, not by concurrent savers."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_neuronperf.baselines.schema import parse_baseline
from pytest_neuronperf.baselines.store import BaselineStore
from tests.reliability import harness, saver

TRIALS = 50
ENTRIES = 60  # about 600 kB of JSON: a save takes long enough for kills to land inside it


def _saver(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.reliability.saver", *args], cwd=harness.REPO,
                            env=harness.child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _versions(path: Path) -> set[object]:
    """The report versions in a baseline file, after checking it is complete, valid JSON."""
    data = path.read_bytes()
    json.loads(data)
    baseline = parse_baseline(data, path)
    assert sorted(baseline.entries) == sorted(saver.entry(i) for i in range(ENTRIES))
    return {records[0].report["version"] for records in baseline.entries.values()}


def _temp_files(folder: Path) -> list[str]:
    try:
        return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
    except FileNotFoundError:
        return []


def _wait_for_temp_file(folder: Path, proc: subprocess.Popen[bytes]) -> None:
    before = set(_temp_files(folder))
    deadline = time.monotonic() + 10
    while set(_temp_files(folder)) <= before and proc.poll() is None and time.monotonic() < deadline:
        pass  # a busy wait: sleeping would miss most of the write


@pytest.mark.slow
def test_kill_9_at_random_points_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    path = BaselineStore(tmp_path).path_for(saver.MODULE)
    landed_mid_save = 0
    last_version = 0
    for trial in range(TRIALS):
        stale = set(_temp_files(path.parent))
        proc = _saver("rewrite", str(tmp_path), str(ENTRIES))
        if trial % 2:
            # Aim at the short write-and-rename step: kill within a few ms of the temp file appearing.
            _wait_for_temp_file(path.parent, proc)
            time.sleep(rng.uniform(0.0, 0.004))
        else:
            # Anywhere from start-up to a few saves in: reading, merging, writing, syncing, renaming.
            time.sleep(rng.uniform(0.06, 0.3))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
        if set(_temp_files(path.parent)) - stale:
            landed_mid_save += 1  # killed between creating its temp file and renaming it
        if not path.exists():
            assert last_version == 0, "the baseline file disappeared"
            continue
        versions = _versions(path)
        assert len(versions) == 1, f"entries from different saves in one file: {versions}"
        (version,) = versions
        printed = [int(v) for v in out.split()]
        confirmed = printed[-1] if printed else last_version
        # The last save this process confirmed, or the next one if the kill fell between
        # the rename and the confirmation; never older than what an earlier trial left.
        assert version in (confirmed, confirmed + 1), (version, printed, last_version)
        assert version >= last_version
        last_version = version
    assert last_version > 0, "no save ever completed; the delays are too short for this machine"
    assert landed_mid_save > 0, "no kill landed during a save; the trials proved nothing"
    # A completed save removes what killed saves left behind.
    proc = _saver("add", str(tmp_path), "final", "1")
    assert proc.wait(30) == 0
    assert not _temp_files(path.parent)


def test_concurrent_savers_keep_every_entry(tmp_path: Path) -> None:
    procs = [_saver("add", str(tmp_path), f"proc{n}", "15") for n in range(4)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    baseline = BaselineStore(tmp_path).load(saver.MODULE)
    expected = {f"proc{n}-{i}::default::b1-n1-w1-p1" for n in range(4) for i in range(15)}
    assert set(baseline.entries) == expected


TWO_TESTS = harness.HEADER + f"""
@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_first(n):
    pass


@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_second(n):
    pass
"""


def _entries(pytester: pytest.Pytester) -> set[str]:
    path = pytester.path / ".neuronperf" / "baselines" / "test_shared.json"
    return set(parse_baseline(path.read_bytes(), path).entries)


ALL_FOUR = {f"test_{which}[{n}]::default::b1-n1-w1-p1" for which in ("first", "second") for n in (0, 1)}


@pytest.mark.slow
def test_xdist_workers_bring_every_entry_home(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shared=TWO_TESTS)
    done = harness.run(pytester, "-n", "2", "--npf-save-baseline")
    assert done.result.ret == 0, done.output
    assert _entries(pytester) == ALL_FOUR
    assert not done.leftovers, done.describe_leftovers()


@pytest.mark.slow
def test_two_sessions_saving_at_once_keep_each_others_entries(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_shared=TWO_TESTS)
    first = harness.start(pytester, "-k", "first", "--npf-save-baseline")
    second = harness.start(pytester, "-k", "second", "--npf-save-baseline")
    try:
        runs = [harness.finish(first), harness.finish(second)]
    finally:
        harness.kill_session(first)
        harness.kill_session(second)
    for done in runs:
        assert done.result.ret == 0, done.output
        assert not done.leftovers, done.describe_leftovers()
    assert _entries(pytester) == ALL_FOUR
