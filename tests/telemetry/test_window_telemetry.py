"""Device telemetry through the runner and the plugin, on stand-in NeuronCores with a stand-in neuron-monitor."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_neuronperf.backends.registry import get_backend
from tests.standins.fixtures import FakeNeuron

pytestmark = pytest.mark.usefixtures("no_leftover_children")


@pytest.fixture
def fresh_backends() -> Iterator[None]:
    get_backend.cache_clear()
    yield
    get_backend.cache_clear()


def neuron_run(tmp_path: Path, duration: float = 0.6) -> dict[str, Any]:
    from pytest_neuronperf import model_index
    from pytest_neuronperf.runner.benchmark import benchmark

    artifact = tmp_path / "m_b1.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(4, 2), torch.ones(1, 4)), str(artifact))
    index = model_index.save(model_index.create(artifact, batch_size=1), tmp_path / "m.json")
    [report] = benchmark(index, torch.ones(1, 4), duration=duration, device_type="neuron", n_models=1,
                         workers_per_model=1, timeout=60)
    return report  # type: ignore[no-any-return]


def test_a_neuron_window_reports_what_the_device_said(fake_neuron: FakeNeuron, fresh_backends: None,
                                                     tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "monitor.jsonl"
    monkeypatch.setenv("NPF_STANDIN_MONITOR_LOG", str(log))
    report = neuron_run(tmp_path)
    assert report["status"] == "finished", report["reason"]
    assert report["telemetry_reports"] >= 2
    assert report["device_util_avg"] > 0 and report["device_util_peak"] >= report["device_util_avg"]
    assert report["device_latency_ms_p50"] == 1.0 and report["runtime_latency_ms_p99"] == 1.5
    assert report["device_mem_model_code_mb"] == 16.0 and report["device_mem_tensors_mb"] == 4.0
    assert report["device_errors"] == 0 and report["device_failed_executions"] == 0
    assert report["diagnosis"].startswith("device busy ")
    # neuron-monitor was told to watch the copy's process only.
    config = json.loads(log.read_text().splitlines()[0])["config"]
    assert config["neuron_runtimes"][0]["tag_filter"].startswith("^(") and config["period"] == "120ms"


def test_device_errors_during_the_window_make_the_configuration_invalid(
        fake_neuron: FakeNeuron, fresh_backends: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPF_STANDIN_MONITOR_ERRORS", "numerical=2")
    monkeypatch.setenv("NPF_STANDIN_MONITOR_BAD", "timed_out=1")
    report = neuron_run(tmp_path)
    assert report["status"] == "invalid"
    assert report["reason"].startswith("invalid: the device reported numerical errors 2, timed_out 1 during the "
                                       "window (neuron-monitor)")
    assert "neither judged nor saved as a baseline" in report["reason"]


def test_without_neuron_monitor_the_run_says_so_once_and_goes_on(
        fake_neuron: FakeNeuron, fresh_backends: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import shutil

    from pytest_neuronperf.runner import orchestrator

    real = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *a, **k: None if name == "neuron-monitor" else real(name, *a, **k))
    monkeypatch.setattr(orchestrator, "_said", set())
    with caplog.at_level(logging.WARNING, logger="pytest_neuronperf"):
        first = neuron_run(tmp_path, duration=0.2)
        neuron_run(tmp_path, duration=0.2)
    assert first["status"] == "finished" and first["device_util_avg"] is None
    said = [r.getMessage() for r in caplog.records if "neuron-monitor is not on PATH" in r.getMessage()]
    assert len(said) == 1
