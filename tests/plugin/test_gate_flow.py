"""The plugin end to end in pytest subprocesses: measure, save, compare, fail on a regression."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("no_leftover_children")

DECLARATIVE = """
import pytest, torch
from npf_models import Service

@pytest.mark.neuron_benchmark(model=Service, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1,
                              duration=0.6)
def test_busy():
    pass
"""

IMPERATIVE = """
import torch
from npf_models import Tiny

def test_tiny(npf_bench):
    result = npf_bench(Tiny, torch.zeros(2, 4), n_models=1, workers_per_model=[1, 2], duration=0.3)
    assert result.best("throughput_avg") > 0
    assert result.config(workers_per_model=2)["batch_size"] == 2
    assert set(result.verdicts) == {"b2-n1-w1-p1", "b2-n1-w2-p1"}
"""


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess("-p", "no:cacheprovider", *args)


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    return lambda us: monkeypatch.setenv("NPF_SERVICE_US", str(us))


def test_save_compare_regress_and_accept(perf_project: pytest.Pytester, service: Callable[[int], None],
                                         baseline_files: Callable[[], dict[str, Any]]) -> None:
    perf_project.makepyfile(test_perf=DECLARATIVE)
    service(1000)
    first = run(perf_project, "--npf-save-baseline")
    first.assert_outcomes(passed=1)
    stored = baseline_files()
    assert list(stored) == ["test_perf.json"]
    entry = stored["test_perf.json"]["entries"]["test_busy::default::b1-n1-w1-p1"][0]
    assert stored["test_perf.json"]["schema_version"] == 2
    assert stored["test_perf.json"]["module"] == "test_perf.py"
    assert len(entry["rounds"]) == 3 and entry["fingerprint"]["device_type"] == "cpu"

    same = run(perf_project, "-rw")
    same.assert_outcomes(passed=1)

    service(2000)  # twice the service time: throughput halves, latency doubles
    slow = run(perf_project)
    slow.assert_outcomes(failed=1)
    assert slow.ret == pytest.ExitCode.TESTS_FAILED
    out = slow.stdout.str()
    assert "performance regression in measurement 'default'" in out
    assert "configuration" in out and "tolerance" in out and "baseline" in out
    assert "n_models=1 workers=1 batch=1 pipeline=1" in out
    assert "beyond 25%" in out  # the ini file's tolerance

    accepted = run(perf_project, "--npf-save-baseline")
    accepted.assert_outcomes(passed=1)  # regressions are reported, not failed, while saving
    run(perf_project).assert_outcomes(passed=1)  # the new normal


def test_imperative_style_and_result_files(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_tiny=IMPERATIVE)
    result = run(perf_project, "--npf-json=out/results.json", "--npf-csv=out/results.csv")
    result.assert_outcomes(passed=1)
    doc = json.loads((perf_project.path / "out" / "results.json").read_text())
    assert doc["schema_version"] == 1
    (m,) = doc["measurements"]
    assert m["test"] == "test_tiny.py::test_tiny" and m["measurement"] == "default"
    assert [r["workers_per_model"] for r in m["reports"]] == [1, 2]
    csv_lines = (perf_project.path / "out" / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("test,measurement,verdict,") and len(csv_lines) == 3
    result.stdout.fnmatch_lines(["*neuronperf*", "*config*throughput*baseline*change*p99_ms*p99_change*verdict",
                                 "*test_tiny.py::test_tiny*", "*b2-n1-w1-p1*no baseline"])


@pytest.mark.slow
def test_missing_baseline_passes_with_a_note_or_fails_when_required(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_tiny=IMPERATIVE)
    relaxed = run(perf_project)
    relaxed.assert_outcomes(passed=1)
    assert "no baseline saved for test_tiny::default::b2-n1-w1-p1" in relaxed.stdout.str()
    strict = run(perf_project, "--npf-require-baseline")
    strict.assert_outcomes(failed=1)
    assert "--npf-require-baseline is set" in strict.stdout.str()


@pytest.mark.slow
def test_baseline_from_another_environment_is_not_compared(perf_project: pytest.Pytester,
                                                             service: Callable[[int], None]) -> None:
    perf_project.makepyfile(test_perf=DECLARATIVE)
    service(1000)
    run(perf_project, "--npf-save-baseline").assert_outcomes(passed=1)
    path = perf_project.path / ".neuronperf" / "baselines" / "test_perf.json"
    doc = json.loads(path.read_text())
    for records in doc["entries"].values():
        records[0]["fingerprint"]["cpu_model"] = "Some Other CPU"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    service(2000)  # slower, but the baseline does not apply here
    result = run(perf_project)
    result.assert_outcomes(passed=1)
    assert "baseline exists for cpu_model=Some Other CPU, not this machine's" in result.stdout.str()
    run(perf_project, "--npf-require-baseline").assert_outcomes(failed=1)
    lenient = run(perf_project, "--npf-fingerprint-keys=device_type")
    lenient.assert_outcomes(failed=1)  # only the device must match now: compared, and slower


@pytest.mark.slow
def test_faster_than_baseline_reports_a_stale_baseline(perf_project: pytest.Pytester,
                                                         service: Callable[[int], None]) -> None:
    perf_project.makepyfile(test_perf=DECLARATIVE)
    service(2000)
    run(perf_project, "--npf-save-baseline").assert_outcomes(passed=1)
    service(1000)
    result = run(perf_project)
    result.assert_outcomes(passed=1)
    assert "the baseline looks stale" in result.stdout.str()


def test_absolute_limits_fail_without_a_baseline(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_lim="""
        import pytest, torch
        from npf_models import Service
        @pytest.mark.neuron_benchmark(model=Service, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1,
                                      duration=0.3, max_p99_ms=0.01, min_throughput=10**9)
        def test_limits():
            pass
    """)
    result = run(perf_project)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "latency_ms_p99" in out and "is above the maximum 0.01 ms" in out
    assert "is below the minimum" in out


@pytest.mark.slow
def test_no_compare_never_fails_on_baselines(perf_project: pytest.Pytester, service: Callable[[int], None]) -> None:
    perf_project.makepyfile(test_perf=DECLARATIVE)
    service(1000)
    run(perf_project, "--npf-save-baseline").assert_outcomes(passed=1)
    service(2000)
    run(perf_project, "--npf-no-compare").assert_outcomes(passed=1)


def test_two_measurements_need_distinct_names(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_two="""
        import torch
        from npf_models import Tiny
        def test_twice(npf_bench):
            npf_bench(Tiny, torch.zeros(1, 4), n_models=1, workers_per_model=1, duration=0.2)
            npf_bench(Tiny, torch.zeros(1, 4), n_models=1, workers_per_model=1, duration=0.2)
        def test_named(npf_bench):
            npf_bench(Tiny, torch.zeros(1, 4), n_models=1, workers_per_model=1, duration=0.2, name="a")
            npf_bench(Tiny, torch.zeros(1, 4), n_models=1, workers_per_model=1, duration=0.2, name="b")
    """)
    result = run(perf_project)
    result.assert_outcomes(failed=1, passed=1)
    assert "this test already measured 'default'; give each measurement in one test its own name" in \
        result.stdout.str()


def test_unavailable_device_is_skipped_with_a_reason(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_dev="""
        import pytest, torch
        from npf_models import Tiny
        @pytest.mark.neuron_benchmark(model=Tiny, inputs=torch.zeros(1, 4), device_type="neuron", duration=0.2)
        def test_on_neuron():
            pass
    """)
    result = run(perf_project, "-rs")
    result.assert_outcomes(skipped=1)
    assert "device_type='neuron' is not available here" in result.stdout.str()


def test_junit_properties(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_tiny=IMPERATIVE)
    run(perf_project, "--junitxml=junit.xml").assert_outcomes(passed=1)
    root = ET.parse(perf_project.path / "junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert float(props["npf:default:b2-n1-w1-p1:throughput_avg"]) > 0
    assert "npf:default:b2-n1-w2-p1:latency_ms_p99" in props
    assert props["npf:default:b2-n1-w1-p1:verdict"] == "no baseline"


@pytest.mark.slow
def test_xdist_saves_every_result_once(perf_project: pytest.Pytester,
                                       baseline_files: Callable[[], dict[str, Any]]) -> None:
    tests = "\n".join(f"""
@pytest.mark.neuron_benchmark(model=Tiny, inputs=torch.zeros(1, 4), n_models=1, workers_per_model=[1, 2],
                              duration=0.2)
def test_m{i}():
    pass
""" for i in range(4))
    perf_project.makepyfile(test_many="import pytest, torch\nfrom npf_models import Tiny\n" + tests,
                            test_plain="def test_a():\n    pass\ndef test_b():\n    pass\n")
    result = run(perf_project, "-n", "2", "--npf-save-baseline")
    result.assert_outcomes(passed=6)
    entries = baseline_files()["test_many.json"]["entries"]
    assert sorted(entries) == sorted(f"test_m{i}::default::b1-n1-w{w}-p1" for i in range(4) for w in (1, 2))
    assert "neuronperf: 4 measurement(s)" in result.stdout.str()
    assert not list(Path(perf_project.path).rglob("*.tmp"))
