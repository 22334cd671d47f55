"""Output that fits where it is read: a terminal's width, a CI log, a save run, the warnings summary."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import pytest

TEST = """
import torch
from npf_models import Tiny

def test_a_test_with_a_rather_long_name_that_fills_a_terminal_line_by_itself(npf_bench):
    npf_bench(Tiny, torch.zeros(1, 4), n_models=1, workers_per_model=[1, 2], duration=0.4)
"""

# Every second model build is three times slower: rounds scatter so much that no verdict can be reached.
SCATTERED = """
import os, time
import torch

class Scattered(torch.nn.Module):
    def __init__(self):
        super().__init__()
        path = os.environ["NPF_COUNTER"]
        count = int(open(path).read() or 0) if os.path.exists(path) else 0
        open(path, "w").write(str(count + 1))
        self.s = 0.0015 if count % 2 else 0.0005
    def forward(self, x):
        time.sleep(self.s)
        return x
"""

SCATTERED_TEST = """
import torch
from scattered import Scattered

def test_scattered(npf_bench):
    npf_bench(Scattered, torch.zeros(1, 4), n_models=1, workers_per_model=[1, 2], duration=0.3)
"""


def _run_on_a_terminal(pytester: pytest.Pytester, columns: int, *args: str) -> tuple[int, str]:
    """Run pytest with its output on a pseudo-terminal ``columns`` wide (a TTY, as in a person's shell)."""
    primary, secondary = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "24", "TERM": "xterm"}
    process = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                               cwd=pytester.path, stdin=subprocess.DEVNULL, stdout=secondary, stderr=secondary,
                               env=env)
    os.close(secondary)
    chunks = []
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # EIO: the terminal's other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(primary)
    return process.wait(timeout=120), b"".join(chunks).decode(errors="replace")


def test_the_live_line_on_a_terminal_is_no_wider_than_the_terminal(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_p=TEST)
    code, out = _run_on_a_terminal(perf_project, 80, "--color=no")
    assert code == 0, out
    # The live line is rewritten in place: each state of it lies between carriage returns.
    states = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", part) for part in re.split(r"[\r\n]", out)]
    live = [s.strip() for s in states if s.strip().startswith(("neuronperf test_p.py", "npf "))]
    assert live, out
    assert all(len(s) < 80 for s in live), [s for s in live if len(s) >= 80]
    assert any("running" in s for s in live)


def test_a_save_run_does_not_note_each_missing_baseline(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_p=TEST)
    result = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "--npf-save-baseline")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "no baseline saved for" not in out
    assert "baselines saved: .neuronperf/baselines/test_p.json" in out


def test_a_missing_baseline_under_require_is_not_called_a_regression(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_p=TEST)
    result = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "--npf-require-baseline")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "performance regression" not in out
    assert "has no baseline to compare with (--npf-require-baseline is set)" in out
    assert "record one with --npf-save-baseline" in out


@pytest.mark.slow
def test_an_inconclusive_test_warns_in_one_line_at_the_test(perf_project: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    perf_project.makepyfile(scattered=SCATTERED, test_s=SCATTERED_TEST)
    counter = perf_project.path / "builds"
    perf_project.makeini("[pytest]\nnpf_rounds = 3\nnpf_max_rounds = 4\nnpf_tolerance = 5%\n")
    monkeypatch.setenv("NPF_COUNTER", str(counter))
    saved = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "--npf-save-baseline",
                                              "-W", "ignore::UserWarning")
    saved.assert_outcomes(passed=1)
    result = perf_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, warnings=1)
    out = result.stdout.str()
    lines = [line for line in result.stdout.lines if "NeuronPerfWarning" in line]
    assert len(lines) == 1, out
    [line] = lines
    # Placed at the test (file and line), not at the plugin's own code.
    assert re.match(r"test_s.py:\d+: NeuronPerfWarning: \[default\] inconclusive after 4 round\(s\), ", line.strip())
    assert "pytest_neuronperf" not in line
    # Each hint once, however many metrics share it.
    hint = line.split(" -- ", 1)[1]
    for part in hint.split("; "):
        assert line.count(part) == 1
    # Too few samples per round: one duration to set for all the percentiles that need it.
    assert len(re.findall(r"\brun about [0-9.]+x longer", hint)) <= 1
    assert "workers=1" in line and "workers=2" in line


@pytest.mark.slow
def test_the_added_rounds_are_in_every_figure_of_the_report(perf_project: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    perf_project.makepyfile(scattered=SCATTERED, test_s=SCATTERED_TEST)
    perf_project.makeini("[pytest]\nnpf_rounds = 3\nnpf_max_rounds = 5\nnpf_tolerance = 5%\n")
    monkeypatch.setenv("NPF_COUNTER", str(perf_project.path / "builds"))
    saved = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "--npf-save-baseline",
                                              "-W", "ignore::UserWarning")
    saved.assert_outcomes(passed=1)
    result = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "--npf-json=out.json")
    result.assert_outcomes(passed=1, warnings=1)
    [m] = json.loads((perf_project.path / "out.json").read_text())["measurements"]
    for report in m["reports"]:
        rounds = report["rounds"]
        assert len(rounds) == 5, report
        # The report's own fields pool every round the verdict used, not only the first look's.
        assert report["total_infs"] == sum(r["n"] for r in rounds)
        assert report["duration"] == pytest.approx(sum(r["duration_s"] for r in rounds), rel=1e-3)
        assert report["throughput_avg"] == pytest.approx(report["total_infs"] / report["duration"], rel=1e-3)
        assert len(report["throughput_timeline"]) == 5
