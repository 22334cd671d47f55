"""``reference=`` end to end: a second model, named on the marker or the fixture, measured in alternating
rounds beside the model in the same run and judged pair by pair (no stored baseline, no git)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.usefixtures("no_leftover_children")

QUICK = ("--npf-duration=0.6", "--npf-rounds=2", "--npf-max-rounds=3")
UNUSED_PLUGINS = ("-p", "no:randomly", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", "-p", "no:benchmark")

# Busy-wait models: Slow takes 1.5x the ~300 us of the others.
MODELS = '''
import time

import torch


def spin(us):
    end = time.perf_counter_ns() + int(us * 1000)
    while time.perf_counter_ns() < end:
        pass


class Slow(torch.nn.Module):
    def forward(self, x):
        spin(450)
        return x


class Fast(torch.nn.Module):
    def forward(self, x):
        spin(300)
        return x


class Same(torch.nn.Module):
    def forward(self, x):
        spin(300)
        return x
'''

TESTS = '''
import pytest, torch

from models import Fast, Same, Slow


@pytest.mark.neuron_benchmark(model=Slow, inputs=torch.zeros(1, 1), reference=Fast, n_models=1, workers_per_model=1)
def test_marker_slower_than_reference():
    pass


def test_fixture_slower_than_reference(npf_bench):
    npf_bench(model=Slow, inputs=torch.zeros(1, 1), reference=Fast, n_models=1, workers_per_model=1)


def test_fixture_same_as_reference(npf_bench):
    result = npf_bench(model=Fast, inputs=torch.zeros(1, 1), reference=Same, n_models=1, workers_per_model=1)
    assert result.passed
'''


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess(*UNUSED_PLUGINS, *args, timeout=180)


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    pytester.makepyfile(models=MODELS)
    return pytester


def test_a_slower_model_fails_against_its_reference_and_an_equal_one_passes(project: pytest.Pytester) -> None:
    project.makepyfile(test_ref=TESTS)

    result = run(project, *QUICK, "--npf-json=results.json", "-rA")

    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines_random([
        "FAILED test_ref.py::test_marker_slower_than_reference*",
        "FAILED test_ref.py::test_fixture_slower_than_reference*",
        "PASSED test_ref.py::test_fixture_same_as_reference*",
    ])
    out = result.stdout.str()
    assert "performance regression in measurement 'default'" in out
    assert "of reference models:Fast" in out and "beyond 5%" in out
    assert "no baseline" not in out  # the reference is the comparison: no stored baseline is looked for

    doc = json.loads((project.path / "results.json").read_text())
    measured = {m["test"].partition("::")[2]: m for m in doc["measurements"]}
    for test, model, reference, verdicts in [
        ("test_marker_slower_than_reference", "models:Slow", "models:Fast", {"fail"}),
        ("test_fixture_slower_than_reference", "models:Slow", "models:Fast", {"fail"}),
        ("test_fixture_same_as_reference", "models:Fast", "models:Same", {"pass", "inconclusive"}),
    ]:
        m = measured[test]
        assert m["verdict"] in verdicts, test
        (report,) = m["reports"]
        (outcome,) = m["outcomes"]
        assert report["model_filename"] == model
        # The reference's own report, measured in this run, is the outcome's baseline.
        baseline = outcome["baseline"]
        assert baseline["model_filename"] == reference and baseline["status"] == "finished"
        assert len(baseline["rounds"]) == len(report["rounds"]) >= 2  # one reference round per current round
        assert all(f"of reference {reference}" in j["message"] for j in outcome["judgements"])
    assert not (project.path / ".neuronperf" / "baselines").exists()


def test_reference_with_an_unknown_keyword_is_still_rejected(project: pytest.Pytester) -> None:
    # Keywords are checked before anything is loaded: file names that do not exist, and no torch, do here.
    project.makepyfile(
        test_marker='''
import pytest

@pytest.mark.neuron_benchmark(model="slow.pt", inputs=None, reference="fast.pt", n_modles=1)
def test_typo():
    pass
''',
        test_fixture='''
def test_typo(npf_bench):
    npf_bench("slow.pt", None, reference="fast.pt", wokers_per_model=1)
''',
    )

    result = run(project, "--continue-on-collection-errors", "-rA")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1, errors=1)
    out = result.stdout.str()
    assert "unknown keyword(s) n_modles" in out and "unknown keyword(s) wokers_per_model" in out
    gate_keywords = out.partition("and the gate's (")[2].partition(")")[0]
    assert "reference" in gate_keywords.split(", ")
