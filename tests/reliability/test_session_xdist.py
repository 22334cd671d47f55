"""Results under pytest-xdist: each measurement reaches the controller with its test's report, so a
worker that dies loses only the test it was running, and the output says which; a measurement that
raised reaches every result file as an error, with and without xdist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.reliability import harness

QUICK = "duration=0.2, n_models=1, workers_per_model=1, warmup=1, rounds=1"

WORKER_KILLER = harness.HEADER + f"""
import os


def test_first(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), {QUICK})


@pytest.mark.neuron_benchmark(model=m.Fine, inputs=torch.zeros(1, 4), {QUICK})
def test_second():
    pass


def test_kills_its_worker(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), {QUICK})
    os._exit(1)  # the xdist worker itself, mid-test: what it measured never reaches the controller
"""

ELSEWHERE = harness.HEADER + f"""
def test_on_the_other_worker(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), {QUICK})
"""


def _measurements(path: Path) -> dict[str, dict[str, Any]]:
    doc = json.loads(path.read_text())
    return {m["test"]: m for m in doc["measurements"]}


@pytest.mark.slow
def test_a_crashed_worker_keeps_the_results_of_the_tests_that_finished_on_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_killer=WORKER_KILLER, test_elsewhere=ELSEWHERE)
    # loadfile: the three tests of test_killer.py run on one worker, in order; no restart, so the
    # killing test is not run again on a fresh worker.
    done = harness.run(pytester, "-n", "2", "--dist", "loadfile", "--max-worker-restart=0",
                       "--npf-json=results.json", "--npf-save-baseline")
    out = done.output
    assert done.result.ret == pytest.ExitCode.TESTS_FAILED, out
    measured = _measurements(pytester.path / "results.json")
    for nodeid in ("test_killer.py::test_first", "test_killer.py::test_second",
                   "test_elsewhere.py::test_on_the_other_worker"):
        assert measured[nodeid]["reports"][0]["status"] == "finished", out
    lost = measured["test_killer.py::test_kills_its_worker"]
    assert lost["verdict"] == "error" and lost["reports"] == []
    assert lost["error"].startswith("results lost: xdist worker gw"), lost["error"]
    entries = json.loads((pytester.path / ".neuronperf" / "baselines" / "test_killer.json").read_text())["entries"]
    assert sorted(entries) == ["test_first::default::b1-n1-w1-p1", "test_second::default::b1-n1-w1-p1"]
    assert "ERROR: results of test_killer.py::test_kills_its_worker lost: xdist worker gw" in out
    assert "baselines saved: .neuronperf/baselines/test_elsewhere.json, .neuronperf/baselines/test_killer.json" in out
    assert not done.leftovers, done.describe_leftovers()


RAISES = harness.HEADER + f"""
def test_model_raises(npf_bench):
    npf_bench(m.RaisesInForward, torch.zeros(1, 4), {QUICK})


@pytest.mark.neuron_benchmark(model=m.RaisesInInit, inputs=torch.zeros(1, 4), {QUICK})
def test_init_raises():
    pass


def test_fine(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), name="fine", {QUICK})
"""


@pytest.mark.slow
@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["plain", "xdist"])
def test_a_measurement_that_raised_is_an_error_in_the_results(pytester: pytest.Pytester, xdist: list[str]) -> None:
    pytester.makepyfile(test_raises=RAISES)
    done = harness.run(pytester, *xdist, "--npf-json=results.json", "--npf-save-baseline")
    done.result.assert_outcomes(failed=2, passed=1)
    measured = _measurements(pytester.path / "results.json")
    assert sorted(measured) == ["test_raises.py::test_fine", "test_raises.py::test_init_raises",
                                "test_raises.py::test_model_raises"]
    forward = measured["test_raises.py::test_model_raises"]
    assert (forward["verdict"], forward["reports"], forward["outcomes"]) == ("error", [], [])
    assert forward["error"].split(":")[0].endswith("Error"), forward["error"]  # "<ExceptionType>: <message>"
    assert "forward exploded on purpose" in forward["error"]
    init = measured["test_raises.py::test_init_raises"]
    assert init["verdict"] == "error" and "__init__ exploded on purpose" in init["error"]
    assert measured["test_raises.py::test_fine"]["measurement"] == "fine"
    entries = json.loads((pytester.path / ".neuronperf" / "baselines" / "test_raises.json").read_text())["entries"]
    assert sorted(entries) == ["test_fine::fine::b1-n1-w1-p1"]  # nothing of an errored measurement is saved
    assert not done.leftovers, done.describe_leftovers()
