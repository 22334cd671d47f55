"""Every invalid parameter gets a ValueError/FileNotFoundError that names it and says how to fix it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch

import pytest_neuronperf as npf
from tests import models

X = torch.randn(1, 16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_models": 0}, "n_models: expected positive integers or \"max\", got 0"),
        ({"n_models": [1, -2]}, "n_models: expected positive integers or \"max\", got -2"),
        ({"n_models": []}, "n_models: got an empty list"),
        ({"workers_per_model": 0}, "workers_per_model: expected positive integers, got 0"),
        ({"duration": 0}, "duration: must be > 0 seconds, got 0"),
        ({"duration": -1}, "duration: must be > 0 seconds, got -1"),
        ({"duration": "10"}, "duration: expected a number of seconds, got '10'"),
        ({"duration": float("nan")}, "duration: expected a number of seconds, got nan"),
        ({"device_type": "tpu"}, "device_type='tpu' is unknown; use one of cpu, cuda, gpu, neuron"),
        ({"batch_sizes": [1, 2]}, "got 1 input(s) but 2 batch size(s) [1, 2]"),
        ({"batch_sizes": 0}, "batch_sizes: expected positive integers, got 0"),
        ({"pipeline_sizes": 0}, "pipeline_sizes: expected positive integers, got 0"),
        ({"verbosity": 3}, "verbosity: expected 0 (silent), 1 (info) or 2 (debug), got 3"),
        ({"warmup": -1}, "warmup: expected a whole number >= 0, got -1"),
        ({"rounds": 0}, "rounds: must be at least 1"),
        ({"timeout": 0}, "timeout: must be > 0 seconds, got 0"),
        ({"cost_per_hour": -1}, "cost_per_hour: expected a price >= 0 per instance-hour, got -1"),
        ({"preprocess_fn": lambda x: x}, "preprocess_fn: '<lambda>' cannot be sent to a model-copy process"),
        ({"postprocess_fn": 3}, "postprocess_fn: expected a function, got int"),
    ],
)
def test_invalid_parameters(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        npf.benchmark(models.TinyMLP, X, **kwargs)


def test_missing_model_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"model: no such file 'nope\.pt'; pass the path of a TorchScript"):
        npf.benchmark("nope.pt", X)


def test_file_that_is_not_torchscript(tmp_path: Path) -> None:
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match=r"is not a TorchScript archive; save the model with torch\.jit\.save"):
        npf.benchmark(str(bad), X)


def test_nested_class_is_rejected_for_process_copies() -> None:
    class Nested(torch.nn.Module):
        pass

    with pytest.raises(ValueError, match=r"defined inside a function \(a nested scope\).*move it to the top level"):
        npf.benchmark(Nested, X)


def test_lambda_model_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"nested scope"):
        npf.benchmark(lambda: models.TinyMLP(), X)


def test_not_a_model() -> None:
    with pytest.raises(TypeError, match=r"model: expected a file path, a model class or a zero-argument factory"):
        npf.benchmark(42, X)


def test_missing_inputs() -> None:
    with pytest.raises(ValueError, match=r"inputs: required"):
        npf.benchmark(models.TinyMLP, None)


def test_model_that_cannot_be_imported_in_the_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models.TinyMLP, "__module__", "tests.not_a_module")
    with pytest.raises(npf.BenchmarkError, match=r"could not import module 'tests\.not_a_module'"):
        npf.benchmark(models.TinyMLP, X, n_models=1, workers_per_model=1, duration=0.2)


def test_unavailable_device_is_its_own_error() -> None:
    with pytest.raises(npf.DeviceUnavailableError, match=r"device_type='neuron' is not available here"):
        npf.benchmark(models.TinyMLP, X, device_type="neuron", duration=0.2)


def test_cpu_entry_point_refuses_other_devices() -> None:
    with pytest.raises(ValueError, match=r"device_type: pytest_neuronperf\.cpu\.benchmark runs on CPU"):
        npf.cpu.benchmark(models.TinyMLP, X, device_type="gpu")
