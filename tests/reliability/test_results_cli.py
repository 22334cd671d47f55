"""Issue 12, defect 9 (the CLI part) and the CLI's smaller defects, through the real ``npf`` command.

Bad input exits 2 with the file and the problem, never a traceback (exit 1 reads as "regression");
a compare that compared nothing exits 3 unless ``--allow-missing``; messages say what they mean.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.report.conftest import BASELINES, RESULTS

ROOT = Path(__file__).resolve().parents[2]


def npf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest_neuronperf", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def results() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
    return doc


@pytest.fixture
def baselines(tmp_path: Path) -> Path:
    target = tmp_path / "project" / ".neuronperf" / "baselines"
    shutil.copytree(BASELINES, target)
    return target


def _breakers() -> dict[str, Any]:
    """How a results file can be malformed, and the words the error must use."""

    def set_path(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return doc

    first = ("measurements", 0)
    report = (*first, "reports", 0)
    return {
        "fingerprint is a number": (lambda d: set_path(d, (*first, "fingerprint"), 5),
                                    "measurements[0].fingerprint must be an object of strings"),
        "reports is not a list": (lambda d: set_path(d, (*first, "reports"), {"a": 1}),
                                  "reports and outcomes must be lists"),
        "test is not a string": (lambda d: set_path(d, (*first, "test"), ["x"]), "measurements[0].test must be"),
        "a report without its matrix point": (lambda d: set_path(d, (*report, "n_models"), None),
                                              "measurements[0].reports[0].n_models must be a whole number"),
        "a round that is NaN": (lambda d: set_path(d, (*report, "rounds", 0, "p99_ms"), float("nan")),
                                "measurements[0].reports[0].rounds[0].p99_ms must be a positive, finite number"),
        "a round missing a field": (lambda d: set_path(d, (*report, "rounds", 0),
                                                       {"throughput": 1.0}),
                                    "measurements[0].reports[0].rounds[0]: round summary is missing"),
        "rounds is a string": (lambda d: set_path(d, (*report, "rounds"), "3"),
                               "measurements[0].reports[0].rounds must be a list"),
        "a latency CDF of words": (lambda d: set_path(d, (*report, "latency_cdf_ms"), ["p50"]),
                                   "measurements[0].reports[0].latency_cdf_ms[0] must be a pair of numbers"),
        "an outcome that is a list": (lambda d: set_path(d, (*first, "outcomes", 0, "judgements"), [1, 2]),
                                      "measurements[0].outcomes[0].judgements[0] must be an object"),
        "a judgement's change is text": (
            lambda d: set_path(d, (*first, "outcomes", 0, "judgements", 0, "change"), "+5%"),
            "measurements[0].outcomes[0].judgements[0].change must be a number"),
        "environment is a list": (lambda d: set_path(d, ("environment",), []), "environment must be an object"),
    }


BREAKERS = _breakers()


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize("case", sorted(BREAKERS))
@pytest.mark.parametrize("command", ["compare", "report"])
def test_a_malformed_results_file_exits_2_naming_the_file_and_the_problem(
        case: str, command: str, tmp_path: Path, results: dict[str, Any], baselines: Path) -> None:
    breaker, problem = BREAKERS[case]
    bad = tmp_path / "bad.json"
    # json.dumps writes NaN as the bare word NaN and json.load reads it back: what a hand edit could leave.
    bad.write_text(json.dumps(breaker(results)), encoding="utf-8")
    args = [str(baselines), str(bad)] if command == "compare" else [str(bad), "--md", str(tmp_path / "out.md")]
    proc = npf(command, *args)
    _no_traceback(proc)
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert str(bad) in proc.stderr and problem in proc.stderr, proc.stderr
    assert not (tmp_path / "out.md").exists()


@pytest.mark.parametrize("command", ["compare", "report"])
def test_deep_nesting_exits_2(command: str, tmp_path: Path, baselines: Path) -> None:
    bad = tmp_path / "deep.json"
    bad.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    args = [str(baselines), str(bad)] if command == "compare" else [str(bad), "--md", str(tmp_path / "out.md")]
    proc = npf(command, *args)
    _no_traceback(proc)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"results file {bad} nests lists or objects too deeply" in proc.stderr


def test_compare_against_a_folder_without_any_baseline_for_the_results_exits_3(
        tmp_path: Path, results: dict[str, Any], baselines: Path) -> None:
    good = tmp_path / "good.json"
    # Without the regression, so that only the missing baselines decide the exit status.
    results["measurements"] = [m for m in results["measurements"] if m["verdict"] != "fail"]
    good.write_text(json.dumps(results), encoding="utf-8")
    wrong = baselines.parent  # .neuronperf instead of .neuronperf/baselines
    proc = npf("compare", str(wrong), str(good))
    _no_traceback(proc)
    assert proc.returncode == 3, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert "nothing was compared" in proc.stderr and "--allow-missing" in proc.stderr
    assert str(wrong) in proc.stderr and ".neuronperf/baselines" in proc.stderr
    # A first run with no baselines yet can say that this is expected.
    allowed = npf("compare", "--allow-missing", str(wrong), str(good))
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    # The right folder compares, and the exit status is the gate's.
    assert npf("compare", str(baselines), str(good)).returncode == 0
    helped = npf("compare", "--help")
    assert "--allow-missing" in helped.stdout and "3  nothing was compared" in helped.stdout


def test_compare_help_states_the_real_default_tolerance() -> None:
    text = " ".join(npf("compare", "--help").stdout.split())
    assert "(default: npf_tolerance of the ini file, else 5%)" in text and "10% or 0.1" not in text


def test_report_error_names_the_command_once(tmp_path: Path) -> None:
    proc = npf("report", str(RESULTS))
    assert proc.returncode == 2
    assert proc.stderr.count("npf report:") == 1, proc.stderr
    assert "npf report: error: nothing to write; give --html FILE and/or --md FILE" in proc.stderr


@pytest.mark.parametrize("rounds", ["-1", "0", "two"])
def test_run_rounds_must_be_at_least_one(rounds: str) -> None:
    proc = npf("run", "tests.models:TinyMLP", "--inputs", "1x4", "--duration", "0.1", "--rounds", rounds)
    assert proc.returncode == 2
    assert f"--rounds: expected a whole number of at least 1, got '{rounds}'" in proc.stderr, proc.stderr
    assert ">= 0" not in proc.stderr
