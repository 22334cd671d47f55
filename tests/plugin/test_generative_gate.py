"""Generative models through the plugin: the marker with streaming=True, the gated token metrics, limits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.usefixtures("no_leftover_children")

GENERATOR = '''
import os, time

class Generator:
    """Prefill 2 ms, then NPF_GEN_DECODE_MS (default 0.5) per token, 8 tokens; sleeps to each token's time."""
    def __init__(self):
        self.prefill = 2_000_000
        self.decode = int(float(os.environ.get("NPF_GEN_DECODE_MS", "0.5")) * 1e6)
    def __call__(self, x):
        t = time.monotonic_ns()
        for i in range(8):
            t += self.prefill if i == 0 else self.decode
            left = t - time.monotonic_ns()
            if left > 0:
                time.sleep(left / 1e9)
            yield i

class Prompted:
    """Yields one token per prompt token: its vocabulary lets the runner build the prompt."""
    class config:
        vocab_size = 100
    def __call__(self, input_ids, attention_mask):
        for _ in range(input_ids.shape[-1]):
            time.sleep(0.0005)
            yield 1
'''

TESTS = """
import pytest
from npf_gen import Generator

@pytest.mark.neuron_benchmark(model=Generator, inputs=0, n_models=1, workers_per_model=1, duration=2.4,
                              streaming=True, output_tokens=8, slo="ttft<=1s,tpot<=1s")
def test_generate():
    pass

@pytest.mark.neuron_benchmark(model=Generator, inputs=0, n_models=1, workers_per_model=1, duration=0.3,
                              streaming=True, max_tpot_p50_ms=0.1)
def test_tpot_limit():
    pass
"""


def run(p: pytest.Pytester, *args: str) -> pytest.RunResult:
    return p.runpytest_subprocess("-p", "no:cacheprovider", *args)


def judgements(path: Path, test: str) -> dict[str, dict[str, Any]]:
    data = json.loads(path.read_text())
    [m] = [m for m in data["measurements"] if m["test"].endswith(test)]
    return {j["metric"]: j for o in m["outcomes"] for j in o.get("judgements") or []}


def test_slower_decode_fails_tpot_and_leaves_ttft_passing(perf_project: pytest.Pytester,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    perf_project.makepyfile(npf_gen=GENERATOR, test_gen=TESTS)
    saved = run(perf_project, "--npf-save-baseline", "-k", "test_generate")
    saved.assert_outcomes(passed=1)
    # Decode twice as slow; prefill, and so the time to the first token, unchanged.
    monkeypatch.setenv("NPF_GEN_DECODE_MS", "1.0")
    slower = run(perf_project, "--npf-json=out.json", "-k", "test_generate")
    slower.assert_outcomes(failed=1)
    text = slower.stdout.str()
    assert "tpot_p50 " in text and "beyond 25%" in text
    judged = judgements(Path(perf_project.path) / "out.json", "test_generate")
    assert judged["tpot_p50"]["verdict"] == "fail"
    assert judged["tpot_p50"]["change"] > 0.5
    assert judged["ttft_p50"]["verdict"] == "pass"
    assert judged["tokens_per_s"]["verdict"] == "fail"
    assert {"ttft_p99", "tpot_p99", "goodput"} <= set(judged)


def test_a_token_limit_fails_naming_the_figure(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(npf_gen=GENERATOR, test_gen=TESTS)
    result = run(perf_project, "-k", "test_tpot_limit")
    result.assert_outcomes(failed=1)
    assert "tpot_ms_p50 " in result.stdout.str() and "is above the maximum 0.1" in result.stdout.str()


def test_token_metrics_of_a_model_that_does_not_stream_cannot_be_limited(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_plain="""
import pytest, torch
from npf_models import Tiny

@pytest.mark.neuron_benchmark(model=Tiny, inputs=torch.zeros(1, 4), n_models=1, workers_per_model=1, duration=0.2,
                              max_ttft_p99_ms=5)
def test_plain():
    pass
""")
    result = run(perf_project)
    result.assert_outcomes(failed=1)
    assert "ttft_ms_p99 is missing from the report (a generative model measures it: give streaming=True)" in \
        result.stdout.str()


def test_the_marker_builds_the_prompt_from_input_tokens(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(npf_gen=GENERATOR, test_prompt="""
import pytest
from npf_gen import Prompted

@pytest.mark.neuron_benchmark(model=Prompted, streaming=True, input_tokens=6, n_models=1, workers_per_model=1,
                              duration=0.3)
def test_prompt(npf_bench):
    [report] = npf_bench().reports
    assert report["input_tokens"] == 6 and report["output_tokens"] == 6
    assert report["generation"] == "input_tokens=6"
""")
    result = run(perf_project, "-o", "npf_rounds=1", "-o", "npf_max_rounds=1")
    result.assert_outcomes(passed=1)
