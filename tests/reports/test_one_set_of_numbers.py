"""Every report of one real run shows the same figures, and ``npf compare`` judges its results file as the plugin did.

A model whose service time is drawn afresh in every round (each round's copy is a new process) makes the
first look undecided, so the sequential gate adds rounds: the figures must cover them, the timeline must
plot them, and every report must agree with the results file about what they are.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.report.figures import shown_change, shown_value

MODELS = '''
import os, random, time
import torch

class NoisyService(torch.nn.Module):
    """Sleeps about 1 ms a call, times a factor drawn per process: rounds differ by tens of percent."""
    def __init__(self):
        super().__init__()
        self.s = 0.001 * random.Random(os.getpid() * 7919 + time.time_ns()).uniform(0.6, 1.4)
    def forward(self, x):
        time.sleep(self.s)
        return x
'''

TESTS = '''
import pytest, torch
from npf_agree_models import NoisyService

@pytest.mark.neuron_benchmark(model=NoisyService, inputs=torch.zeros(1, 4), n_models=1, workers_per_model=1,
                              warmup=1, tolerance="throughput=6%,p50=30%,p99=40%", max_p99_ms=1000.0)
def test_own_tolerance():
    pass

def test_session_tolerance(npf_bench):
    npf_bench(NoisyService, torch.zeros(1, 4), n_models=1, workers_per_model=1, warmup=1, name="fixture")
'''

INI = """[pytest]
npf_duration = 0.6
npf_rounds = 2
npf_max_rounds = 4
npf_tolerance = 8%
npf_baseline_dir = perf/baselines
"""
CONFIG = "b1-n1-w1-p1"
METRICS = ("throughput", "p50", "p99")
VALUE = {"throughput": "throughput", "p50": "p50_ms", "p99": "p99_ms"}


def _npf(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "pytest_neuronperf", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _table(lines: list[str], label: str) -> dict[str, str]:
    """The terminal table's row of one measurement's configuration, by column name (either layout)."""
    header = next(line for line in lines if line.split()[:2] in (["test", "config"], ["config", "model"])
                  or (line.startswith("  config") and "throughput" in line))
    names = header.split()
    at = lines.index(label) if label in lines else None
    if at is not None:  # grouped under the measurement's name
        row = next(line for line in lines[at + 1:] if line.startswith("  " + CONFIG))
    else:
        row = next(line for line in lines if line.startswith(label + " ") and CONFIG in line)
    return dict(zip(names, row.split(), strict=True))


def _html_row(page: str, index: int) -> dict[str, str]:
    rows = re.findall(rf'<tr data-config="{CONFIG}">(.*?)</tr>', page, flags=re.S)
    cells = re.findall(r'data-figure="([a-z0-9_]+)">(?:<span[^>]*>)?([^<]*)', rows[index])
    return {k: html.unescape(v) for k, v in cells}


def _plots(page: str) -> list[dict[str, Any]]:
    return [json.loads(html.unescape(d)) for d in re.findall(r'<figure data-plot="([^"]*)"', page)]


@pytest.mark.slow
def test_every_report_shows_the_gates_figures_and_compare_agrees(pytester: pytest.Pytester,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    pytester.makepyfile(npf_agree_models=MODELS, test_agree=TESTS)
    pytester.makeini(INI)
    monkeypatch.setenv("COLUMNS", "80")
    saved = pytester.runpytest_subprocess("--npf-save-baseline", "--npf-json=main.json", "-p", "no:cacheprovider")
    assert saved.ret == 0, saved.stdout.str()
    run = pytester.runpytest_subprocess("--npf-json=out.json", "--npf-md=out.md", "--npf-html=out.html",
                                        "-p", "no:cacheprovider")
    out = run.stdout.str()
    assert run.ret in (0, 1), out
    path = Path(pytester.path)
    doc = json.loads((path / "out.json").read_text(encoding="utf-8"))
    measurements = {m["test_name"]: m for m in doc["measurements"]}
    assert set(measurements) == {"test_own_tolerance", "test_session_tolerance"}
    # What the plugin judged with is in the results file.
    own, session = measurements["test_own_tolerance"], measurements["test_session_tolerance"]
    assert own["judged_with"]["tolerance"] == {"throughput": 0.06, "p50": 0.3, "p99": 0.4, "capacity": 0.05}
    assert own["judged_with"]["tolerance_from"] == "test" and own["judged_with"]["limits"] == {"max_p99_ms": 1000.0}
    assert session["judged_with"]["tolerance"] == {"throughput": 0.08, "p50": 0.08, "p99": 0.08, "capacity": 0.08}
    assert (own["judged_with"]["rounds"], own["judged_with"]["max_rounds"]) == (2, 4)

    terminal = out.split("neuronperf ---", 1)[1].splitlines()
    assert all(len(line) <= 80 for line in terminal if line.startswith("  ")), terminal
    markdown = (path / "out.md").read_text(encoding="utf-8").splitlines()
    page = (path / "out.html").read_text(encoding="utf-8")
    plots = _plots(page)
    bars = [p for p in plots if p["plot"] == "throughput by configuration"]
    timelines = [p for p in plots if p["plot"] == "throughput over time"]
    shows = _npf(path, "show")
    assert shows.returncode == 0, shows.stderr
    extra_seen = False
    for index, m in enumerate(doc["measurements"]):
        [report], [outcome], [fig] = m["reports"], m["outcomes"], m["figures"]
        judgements = {j["metric"]: j for j in outcome["judgements"]}
        # The figures are the gate's own estimates, over every round it judged.
        for metric in METRICS:
            assert fig[VALUE[metric]] == judgements[metric]["current"]
            assert fig[f"baseline_{VALUE[metric]}"] == judgements[metric]["baseline"]
            assert fig[f"{metric}_change"] == judgements[metric]["change"]
        assert fig["judged_rounds"] == len(report["rounds"]) == judgements["throughput"]["current_rounds"]
        assert fig["added_rounds"] == fig["judged_rounds"] - 2
        extra_seen = extra_seen or fig["added_rounds"] > 0
        # Every round the verdict used is plotted; the added ones are marked from the first look on.
        assert len(report["throughput_timeline"]) == fig["judged_rounds"]
        assert timelines[index]["first_rounds"] == 2
        assert [len(s["rounds"]) for s in timelines[index]["series"]] == [fig["judged_rounds"]]
        assert bars[index]["throughput"] == [fig["throughput"]]
        assert bars[index]["baseline_throughput"] == [fig["baseline_throughput"]]

        label = m["test"] if m["measurement"] == "default" else f"{m['test']}[{m['measurement']}]"
        expected = {"throughput": shown_value(fig["throughput"]), "baseline": shown_value(fig["baseline_throughput"]),
                    "change": shown_change(fig["throughput_change"]), "p99_ms": shown_value(fig["p99_ms"]),
                    "p99_change": shown_change(fig["p99_change"]), "verdict": outcome["verdict"]}
        row = _table(terminal, label)
        assert {k: row[k] for k in expected} == expected, (row, expected)
        cells = _html_row(page, index)
        assert cells["throughput"] == expected["throughput"] and cells["baseline_throughput"] == expected["baseline"]
        assert cells["throughput_change"] == expected["change"] and cells["p99_ms"] == expected["p99_ms"]
        assert cells["baseline_p99_ms"] == shown_value(fig["baseline_p99_ms"])
        assert cells["p99_change"] == expected["p99_change"]
        md = next(line for line in markdown if line.startswith(f"| `{label}` |"))
        md_cells = [c.strip() for c in md.strip("|").split("|")]
        assert md_cells[2:8] == [expected["throughput"], expected["baseline"], expected["change"],
                                 expected["p99_ms"], shown_value(fig["baseline_p99_ms"]), expected["p99_change"]]
        # npf show (npf_baseline_dir from the ini) shows the baseline the gate compared with.
        show_row = next(line.split() for line in shows.stdout.splitlines()
                        if line.startswith(m["test"]) and f" {m['measurement']} " in line)
        assert show_row[3] == expected["baseline"] and show_row[5] == shown_value(fig["baseline_p99_ms"])
    assert extra_seen, "the sequential gate added no round; the noisy model should have left the first look open"

    # npf compare on the same results and baselines, from the same folder: the plugin's verdicts and figures.
    compared = _npf(path, "compare", "out.json", "--json", "compare.json", "--allow-missing")
    assert compared.returncode in (0, 1), compared.stdout + compared.stderr
    again = json.loads((path / "compare.json").read_text(encoding="utf-8"))
    for mine, theirs in zip(doc["measurements"], again["measurements"], strict=True):
        assert mine["verdict"] == theirs["verdict"]
        assert mine["figures"] == theirs["figures"]
        for a, b in zip(mine["outcomes"], theirs["outcomes"], strict=True):
            assert a["verdict"] == b["verdict"]
            assert [(j["metric"], j["verdict"], j["tolerance"]) for j in a["judgements"]] == \
                   [(j["metric"], j["verdict"], j["tolerance"]) for j in b["judgements"]]

    # Two results files: this run against the saved one, not a "corrupt baseline".
    two = _npf(path, "compare", "main.json", "out.json", "--json", "two.json")
    assert two.returncode in (0, 1), two.stdout + two.stderr
    assert "corrupt" not in two.stderr and "delete" not in two.stderr
    versus = json.loads((path / "two.json").read_text(encoding="utf-8"))
    main_doc = json.loads((path / "main.json").read_text(encoding="utf-8"))
    for m, before in zip(versus["measurements"], main_doc["measurements"], strict=True):
        [j] = [j for j in m["outcomes"][0]["judgements"] if j["metric"] == "throughput"]
        assert j["baseline_rounds"] == len(before["reports"][0]["rounds"]) == 2
