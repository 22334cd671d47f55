"""Issue 12, defect 13 (the report part) and the pooled p99: what the reports show.

A measurement that errored is listed with its error in the terminal summary and in every result
file, and counts in the summary; the HTML headline never says "No regression found" over a crash.
The p99 shown for several rounds is the percentile pooled over their samples; where the gate's own
estimate (a geometric mean of per-round values) is shown, it says so.
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import pytest_neuronperf as npf
from tests.reliability import harness
from tests.report.conftest import RESULTS

ROOT = Path(__file__).resolve().parents[2]
COUNTER_ENV = "NPF_ROUND_COUNTER"


class AlternatingRounds(torch.nn.Module):
    """1 ms a call in even rounds, 20 ms in odd ones: each round's copy is built afresh and counts itself."""

    def __init__(self) -> None:
        super().__init__()
        path = os.environ[COUNTER_ENV]
        with open(path, "ab") as fh:
            fh.write(b"x")
        self.s = 0.001 if os.path.getsize(path) % 2 else 0.020

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.s)
        return x


def test_the_p99_of_several_rounds_is_the_pooled_percentile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(COUNTER_ENV, str(tmp_path / "counter"))
    [report] = npf.benchmark(AlternatingRounds, torch.zeros(1, 4), duration=1.2, rounds=2, n_models=1,
                             workers_per_model=1, warmup=1)  # type: ignore[misc]
    per_round = sorted(float(r["p99_ms"]) for r in report["rounds"])
    assert per_round[1] > 4 * per_round[0], per_round  # the rounds really differ (relations only: a busy machine)
    # About 1 in 20 samples is a slow one, more than 1%: the pooled p99 is a slow round's value, not
    # the geometric mean of the two rounds' p99s (about 4.7 ms on a quiet machine), which no inference took.
    geometric = (per_round[0] * per_round[1]) ** 0.5
    assert report["latency_ms_p99"] > 1.5 * geometric, (report["latency_ms_p99"], per_round)
    assert report["latency_ms_p99"] <= per_round[1] * 1.05


MODELS = '''
import os, time
import torch

class AlternatingRounds(torch.nn.Module):
    def __init__(self):
        super().__init__()
        path = os.environ["NPF_ROUND_COUNTER"]
        with open(path, "ab") as fh:
            fh.write(b"x")
        self.s = 0.001 if os.path.getsize(path) % 2 else 0.020
    def forward(self, x):
        time.sleep(self.s)
        return x
'''

ALTERNATING = """
import pytest, torch
from npf_report_models import AlternatingRounds

@pytest.mark.neuron_benchmark(model=AlternatingRounds, inputs=torch.zeros(1, 4), n_models=1, workers_per_model=1,
                              duration=1.2, warmup=1)
def test_alternating():
    pass
"""


@pytest.mark.slow
def test_displays_show_the_gates_own_estimates_and_say_what_they_are(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(npf_report_models=MODELS, test_alternating=ALTERNATING)
    pytester.makeini("[pytest]\nnpf_rounds = 2\nnpf_max_rounds = 2\nnpf_tolerance = 50%\n")
    env = {COUNTER_ENV: str(pytester.path / "counter")}
    saved = harness.run(pytester, "--npf-save-baseline", env=env)
    assert saved.result.ret == 0, saved.output
    # p99 rests on too few samples in both sides' rounds: inconclusive, so --npf-strict fails with the table.
    judged = harness.run(pytester, "--npf-strict", "--npf-json=out.json", "--npf-html=out.html", env=env)
    assert not judged.leftovers
    judged.result.assert_outcomes(failed=1)
    assert "baseline and current are the gate's estimates: geometric means of the per-round values" \
           in judged.output, judged.output

    doc = json.loads((pytester.path / "out.json").read_text(encoding="utf-8"))
    [m] = doc["measurements"]
    [report], [outcome] = m["reports"], m["outcomes"]
    gate_p99 = next(j for j in outcome["judgements"] if j["metric"] == "p99")
    pooled_baseline = outcome["baseline"]["latency_ms_p99"]
    # The baseline's pooled p99 is a slow round's value; the gate's is their geometric mean.
    assert pooled_baseline > 1.5 * gate_p99["baseline"], (pooled_baseline, gate_p99["baseline"])
    assert report["latency_ms_p99"] > 1.5 * gate_p99["current"]
    page = html.unescape(re.sub(r"<svg.*?</svg>", "", (pytester.path / "out.html").read_text(encoding="utf-8"),
                                flags=re.S))
    row = page.split("1 model x 1 worker, batch 1", 1)[1].split("</tr>", 1)[0]
    cells = re.findall(r'<td class="num"[^>]*>([^<]*)', row)
    from pytest_neuronperf.gate.wording import format_number

    # Beside a change, both p99 columns are the values the verdict compared, never the pooled percentiles.
    assert format_number(gate_p99["current"]) in cells and format_number(gate_p99["baseline"]) in cells, cells
    assert format_number(pooled_baseline) not in cells, cells


CRASHING = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.RaisesInForward, {harness.QUICK})
def test_crashes():
    pass


@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_fine():
    pass
"""
ERROR_TEXT = "forward exploded on purpose"


def test_a_measurement_that_errored_is_in_every_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_crash=CRASHING)
    done = harness.run(pytester, "--npf-json=out.json", "--npf-csv=out.csv", "--npf-md=out.md",
                       "--npf-html=out.html")
    assert not done.leftovers
    done.result.assert_outcomes(failed=1, passed=1)
    summary = done.output.split("neuronperf ---", 1)[1]
    assert re.search(rf"error: test_crash.py::test_crashes: .*{ERROR_TEXT}", summary), summary
    assert "neuronperf: 2 measurement(s) (1 errored)" in summary

    path = Path(pytester.path)
    doc = json.loads((path / "out.json").read_text(encoding="utf-8"))
    [crashed] = [m for m in doc["measurements"] if m["test"].endswith("test_crashes")]
    assert crashed["verdict"] == "error" and ERROR_TEXT in crashed["error"]
    with open(path / "out.csv", encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["test"].endswith("test_crashes")]
    assert len(rows) == 1 and rows[0]["verdict"] == "error" and ERROR_TEXT in rows[0]["reason"]
    markdown = (path / "out.md").read_text(encoding="utf-8")
    assert "1 errored" in markdown and ERROR_TEXT in markdown
    assert re.search(r"\| `test_crash.py::test_crashes` \|.*💥 error \|", markdown), markdown
    page = html.unescape((path / "out.html").read_text(encoding="utf-8"))
    headline = page.split('<section class="summary"', 1)[1].split("</strong>", 1)[0]
    assert "No regression" not in headline and "1 measurement errored" in headline, headline
    assert ERROR_TEXT in page and "errored" in page.split('<div class="tiles">', 1)[1]


def _errored_results(tmp_path: Path) -> Path:
    doc: dict[str, Any] = json.loads(RESULTS.read_text(encoding="utf-8"))
    doc["measurements"] = [m for m in doc["measurements"] if m["verdict"] != "fail"]
    doc["measurements"].append({
        "test": "tests/perf/test_new.py::test_crashed", "measurement": "default", "device_type": "cpu",
        "fingerprint": {}, "verdict": "error", "reports": [], "outcomes": [], "notes": [],
        "module": "tests/perf/test_new.py", "test_name": "test_crashed",
        "error": "BenchmarkError: copy 0 raised RuntimeError\nTraceback from the model copy:\n  ...",
    })
    path = tmp_path / "errored.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_npf_report_and_compare_list_an_errored_measurement(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    results = _errored_results(tmp_path)
    md, page = tmp_path / "r.md", tmp_path / "r.html"
    proc = subprocess.run([sys.executable, "-m", "pytest_neuronperf", "report", str(results), "--md", str(md),
                           "--html", str(page)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = md.read_text(encoding="utf-8")
    assert "4 measurements: 1 errored" in text
    assert "`tests/perf/test_new.py::test_crashed`, the measurement: **error**: BenchmarkError: copy 0 raised " \
           "RuntimeError (...)" in text
    body = html.unescape(page.read_text(encoding="utf-8"))
    assert "1 measurement errored; its results are missing." in body
    assert "Traceback from the model copy:" in body  # the whole error, in its own block

    from tests.report.conftest import BASELINES

    proc = subprocess.run([sys.executable, "-m", "pytest_neuronperf", "compare", str(BASELINES), str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1, (proc.stdout[-3000:], proc.stderr[-3000:])
    assert "FAILED tests/perf/test_new.py::test_crashed: the measurement errored in the run: BenchmarkError" \
           in proc.stdout
    assert "error: tests/perf/test_new.py::test_crashed: BenchmarkError: copy 0 raised RuntimeError (...)" \
           in proc.stdout
