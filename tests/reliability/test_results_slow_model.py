"""Issue 12, defect 7: a model slower than its window, and an empty Dataset.

A window in which no inference completed is an error of that configuration alone, with a reason
that says how long one inference took and what duration would time some; the other configurations
keep their results, and nothing with zero samples is judged or saved. An empty Dataset is refused
before any copy starts.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import torch

import pytest_neuronperf as npf
from tests.reliability import harness

# One inference of the slow configuration; the window is a fraction of it.
SLOW_S = 1.0
WINDOW_S = 0.3
BOUND_S = 90.0  # generous: the machine is shared


class SlowAtBatch8(torch.nn.Module):
    """Fast at batch 1, SLOW_S per call at batch 8: one measurement with a good and a too-slow configuration."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] == 8:
            time.sleep(SLOW_S)
        return x + 1


class EmptyDataset(torch.utils.data.Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 0

    def __getitem__(self, index: int) -> torch.Tensor:
        raise IndexError(index)


REASON = re.compile(r"no inference completed in the [\d.]+ s timed window: one inference took about "
                    r"([\d.]+) s in warm-up, longer than the window; run at least (\d+) s \(duration=\2")


def _check_reason(reason: str, rounds: int = 1) -> None:
    match = REASON.search(reason)
    assert match, reason
    took, suggested = float(match.group(1)), int(match.group(2))
    assert took == pytest.approx(SLOW_S, rel=0.5)
    # Long enough to time some inferences in every round, counted as the total over the rounds.
    assert suggested / rounds >= 2 * SLOW_S


def test_the_python_api_keeps_the_other_configurations_and_names_the_slow_one() -> None:
    reports: list[dict[str, Any]] = npf.benchmark(  # type: ignore[assignment]
        SlowAtBatch8, [torch.zeros(1, 4), torch.zeros(8, 4)], batch_sizes=[1, 8], duration=WINDOW_S,
        n_models=1, workers_per_model=1, warmup=1, timeout=30)
    by_batch = {r["batch_size"]: r for r in reports}
    assert by_batch[1]["status"] == "finished" and by_batch[1]["throughput_avg"] > 0
    slow = by_batch[8]
    assert slow["status"] == "error", slow
    _check_reason(slow["reason"])
    # Nothing that looks like a measurement: no rounds for a gate or a baseline to take.
    assert slow["rounds"] is None and slow["throughput_avg"] is None and slow["latency_samples"] == 0
    assert slow["warmup_avg_ms"] == pytest.approx(SLOW_S * 1000, rel=0.5)


def test_get_reports_of_raw_results_says_the_same() -> None:
    raw = npf.benchmark(SlowAtBatch8, torch.zeros(8, 4), duration=WINDOW_S, n_models=1, workers_per_model=1,
                        warmup=1, rounds=2, timeout=30, return_timers=True)
    [report] = npf.get_reports(raw)  # type: ignore[arg-type]
    assert report["status"] == "error"
    assert "of round 1 of 2" in report["reason"]
    # Two rounds share the duration: the total suggested covers both.
    assert int(re.search(r"run at least (\d+) s", report["reason"]).group(1)) >= 2 * 2 * SLOW_S  # type: ignore[union-attr]


@pytest.mark.parametrize("warmup", [0, 1])
def test_an_empty_dataset_is_refused_up_front(warmup: int) -> None:
    with pytest.raises(ValueError, match=r"inputs: the Dataset is empty"):
        npf.benchmark(SlowAtBatch8, EmptyDataset(), duration=WINDOW_S, n_models=1, workers_per_model=1,
                      warmup=warmup)


MODELS = f'''
import time
import torch

class SlowAtBatch8(torch.nn.Module):
    def forward(self, x):
        if x.shape[0] == 8:
            time.sleep({SLOW_S})
        return x + 1

class EmptyDataset(torch.utils.data.Dataset):
    def __len__(self):
        return 0
    def __getitem__(self, index):
        raise IndexError(index)
'''

TESTS = f'''
import pytest
import torch
from npf_slow_models import EmptyDataset, SlowAtBatch8

@pytest.mark.neuron_benchmark(model=SlowAtBatch8, inputs=[torch.zeros(1, 4), torch.zeros(8, 4)], batch_sizes=[1, 8],
                              duration={WINDOW_S}, n_models=1, workers_per_model=1, warmup=1, rounds=1, timeout=30)
def test_slow():
    pass

@pytest.mark.neuron_benchmark(model=SlowAtBatch8, inputs=EmptyDataset(), duration={WINDOW_S}, n_models=1,
                              workers_per_model=1, warmup=0, rounds=1)
def test_empty_dataset():
    pass
'''


@pytest.mark.slow
def test_the_plugin_fails_the_slow_configuration_with_the_reason_and_keeps_the_good_one(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(npf_slow_models=MODELS, test_slow=TESTS)
    done = harness.run(pytester, "--npf-json=out.json", "--npf-csv=out.csv", "--npf-md=out.md",
                       "--npf-html=out.html")
    assert done.seconds < BOUND_S, f"the session took {done.seconds:.0f}s"
    assert not done.leftovers, f"processes left running: {done.describe_leftovers()}"
    output = done.output
    # No internal traceback from the statistics, and the session's files are all written.
    assert "INTERNALERROR" not in output and "no inference completed in the measured window" not in output, output
    done.result.assert_outcomes(failed=2)
    assert "inputs: the Dataset is empty" in output
    failure = output.split("test_slow ___", 1)[1]
    _check_reason(failure)
    assert "n_models=1 workers=1 batch=8 pipeline=1: error: no inference completed" in failure

    path = Path(pytester.path)
    doc = json.loads((path / "out.json").read_text(encoding="utf-8"))
    [slow] = [m for m in doc["measurements"] if m["test"].endswith("test_slow")]
    by_batch = {r["batch_size"]: (r, o) for r, o in zip(slow["reports"], slow["outcomes"], strict=True)}
    assert by_batch[1][0]["status"] == "finished" and by_batch[1][0]["throughput_avg"] > 0
    assert by_batch[8][0]["status"] == "error" and by_batch[8][1]["verdict"] == "error"
    _check_reason(by_batch[8][0]["reason"])
    for name in ("out.csv", "out.md", "out.html"):
        assert "no inference completed" in (path / name).read_text(encoding="utf-8"), name


def test_only_configurations_that_timed_inferences_are_saved(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(npf_slow_models=MODELS, test_slow=TESTS)
    done = harness.run(pytester, "--npf-save-baseline")
    assert not done.leftovers, f"processes left running: {done.describe_leftovers()}"
    assert "INTERNALERROR" not in done.output, done.output
    assert "inputs: the Dataset is empty" in done.output
    # Nothing with zero samples, no poisoned entry: only the batch-1 configuration of test_slow.
    [baseline_file] = (Path(pytester.path) / ".neuronperf" / "baselines").rglob("*.json")
    entries = json.loads(baseline_file.read_text(encoding="utf-8"))["entries"]
    assert [key.rsplit("::", 1)[1] for key in entries] == ["b1-n1-w1-p1"], entries
    for records in entries.values():
        for record in records:
            assert record["rounds"] and all(r["n"] > 0 and r["p50_ms"] > 0 for r in record["rounds"])
