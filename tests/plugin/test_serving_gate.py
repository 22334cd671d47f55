"""Serving workloads through the plugin: the open-loop marker, an overloaded configuration, capacity gating."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("no_leftover_children")

OPEN_LOOP = """
import pytest, torch
from npf_models import Service

@pytest.mark.neuron_benchmark(model=Service, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1,
                              duration=0.6, request_rate=150, seed=7)
def test_served(npf_bench):
    result = npf_bench()
    [report] = result.reports
    assert report["status"] == "finished"
    assert report["request_rate"] == 150 and report["arrival"] == "poisson"
    assert report["achieved_rps"] > 0 and report["offered_rps"] > 0
    # Latency counts from the scheduled arrival, so it is never below the processing time.
    assert report["latency_ms_p50"] >= report["service_ms_p50"]

@pytest.mark.neuron_benchmark(model=Service, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1,
                              duration=0.6, request_rate=4000)
def test_overloaded(npf_bench):
    npf_bench()

@pytest.mark.neuron_benchmark(model=Service, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1,
                              duration=0.6, request_rate=100, slo="p99<=100us")
def test_slo_missed():
    pass
"""

CAPACITY = """
import pytest, torch
from npf_models import Service

@pytest.mark.neuron_benchmark(model=Service, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1,
                              duration=0.3, slo="p90<=4ms")
def test_capacity():
    pass
"""


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_open_loop_marker_and_an_overloaded_configuration(perf_project: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPF_SERVICE_US", "1000")
    perf_project.makepyfile(test_serving=OPEN_LOOP)
    result = run(perf_project, "-o", "npf_rounds=1", "-o", "npf_max_rounds=1", "--npf-json=out.json")
    result.assert_outcomes(passed=1, failed=2)
    text = result.stdout.str()
    # An SLO missed under open-loop load fails its test as an absolute limit does, naming what broke it.
    assert "slo p99<=0.1ms missed at request_rate=100: p99 " in text
    # The overloaded configuration fails with what it achieved, what was offered and what to change.
    assert "overloaded:" in text and "request_rate=4000" in text and "lower request_rate" in text
    data = json.loads((Path(perf_project.path) / "out.json").read_text())
    by_test = {m["test"].rsplit("::", 1)[-1]: m for m in data["measurements"]}
    assert by_test["test_overloaded"]["reports"][0]["status"] == "overloaded"
    assert by_test["test_overloaded"]["outcomes"][0]["verdict"] == "error"
    served = by_test["test_served"]["reports"][0]
    assert served["offered_rps"] > 0 and served["service_ms_p99"] is not None


@pytest.mark.slow
def test_capacity_is_gated_and_a_fall_fails_with_its_figures(perf_project: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            baseline_files: Callable[[], dict[str, Any]]) -> None:
    perf_project.makepyfile(test_cap=CAPACITY)
    quick = ("-o", "npf_rounds=1", "-o", "npf_max_rounds=1")
    monkeypatch.setenv("NPF_SERVICE_US", "1000")
    saved = run(perf_project, *quick, "--npf-save-baseline")
    saved.assert_outcomes(passed=1)
    [entry] = baseline_files()["test_cap.json"]["entries"].values()
    record = entry[0]
    assert record["report"]["slo"] == "p90<=4ms" and record["report"]["capacity_rps"] > 0
    assert record["rounds"][0]["capacity_rps"] > 0 and len(record["rounds"][0]["capacity_ci"]) == 2

    # Twice the service time: the capacity at the same SLO falls far below the baseline's.
    monkeypatch.setenv("NPF_SERVICE_US", "2000")
    monkeypatch.setenv("COLUMNS", "200")  # room for every column of the summary table
    slower = run(perf_project, *quick)
    slower.assert_outcomes(failed=1)
    text = slower.stdout.str()
    assert "performance regression" in text
    capacity_lines = [line for line in text.splitlines() if "capacity" in line and "req/s vs baseline" in line]
    assert capacity_lines, text
    # The summary table has a capacity column where a measurement searched one.
    header = next(line for line in text.splitlines() if line.lstrip().startswith("config ") or " config " in line)
    assert "capacity" in header and "cap_change" in header and "slo_met" in header
    # ... and names the configuration that serves the SLO best.
    assert "slo: test_cap.py::test_capacity: p90<=4ms: best n_models=1 workers=1 batch=1 pipeline=1 (capacity " \
        in text


@pytest.mark.slow
def test_a_baseline_of_another_load_is_not_compared(perf_project: pytest.Pytester,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPF_SERVICE_US", "1000")
    closed = CAPACITY.replace(', slo="p90<=4ms"', "").replace("duration=0.3", "duration=0.6")
    perf_project.makepyfile(test_cap=closed)
    quick = ("-o", "npf_rounds=1", "-o", "npf_max_rounds=1")
    run(perf_project, *quick, "--npf-save-baseline").assert_outcomes(passed=1)
    perf_project.makepyfile(test_cap=closed.replace("duration=0.6", "duration=0.6, request_rate=100"))
    served = run(perf_project, *quick, "-rw", "--npf-require-baseline")
    served.assert_outcomes(failed=1)
    assert "measured under other load (closed loop, no slo, not this run's request_rate=100" in served.stdout.str()
