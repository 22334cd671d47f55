"""The forkservers a session used start before the next session collects its tests."""

from __future__ import annotations

import json

import pytest

TEST = """
import os
from pathlib import Path

import torch
from npf_models import Tiny


def _forkservers():
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and "forkserver" in cmdline:
            found.append(cmdline)
    return found


# Collection: which forkservers are already running?
Path("servers-at-collection.json").write_text(__import__("json").dumps(_forkservers()))


def test_tiny(npf_bench):
    npf_bench(Tiny, torch.zeros(1, 4), n_models=1, workers_per_model=[1], duration=0.2)
"""


@pytest.mark.slow
def test_a_second_session_starts_the_forkservers_before_collection(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_early=TEST)
    first = perf_project.runpytest_subprocess()
    first.assert_outcomes(passed=1)
    assert json.loads((perf_project.path / "servers-at-collection.json").read_text()) == []
    remembered = json.loads((perf_project.path / ".pytest_cache/v/neuronperf/forkservers").read_text())
    assert remembered and any("npf_models" in modules for modules in remembered), remembered

    second = perf_project.runpytest_subprocess()
    second.assert_outcomes(passed=1)
    assert len(json.loads((perf_project.path / "servers-at-collection.json").read_text())) == 1

    # Without the cache (or under -p no:cacheprovider) nothing starts early, and nothing breaks.
    quiet = perf_project.runpytest_subprocess("-p", "no:cacheprovider")
    quiet.assert_outcomes(passed=1)
    assert json.loads((perf_project.path / "servers-at-collection.json").read_text()) == []


@pytest.mark.slow
def test_a_remembered_module_that_is_gone_costs_nothing(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_early=TEST)
    cache = perf_project.path / ".pytest_cache/v/neuronperf"
    cache.mkdir(parents=True)
    (cache / "forkservers").write_text(json.dumps([["no_such_module_anywhere", "torch"], "not a list"]))
    result = perf_project.runpytest_subprocess()
    result.assert_outcomes(passed=1)
    (cache / "forkservers").write_text(json.dumps([["no_such_module_anywhere", "torch"]]))
    result = perf_project.runpytest_subprocess()
    result.assert_outcomes(passed=1)
