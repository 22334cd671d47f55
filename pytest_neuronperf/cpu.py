"""``pytest_neuronperf.cpu``: benchmark a model class on CPU cores."""

from __future__ import annotations

from typing import Any

from pytest_neuronperf.report.text import print_reports, write_csv, write_json
from pytest_neuronperf.runner.benchmark import benchmark as _benchmark
from pytest_neuronperf.runner.reports import get_reports

__all__ = ["benchmark", "get_reports", "print_reports", "write_csv", "write_json"]


def benchmark(model_class: Any, inputs: Any = None, **params: Any) -> Any:
    """Benchmark a model class (instantiated in each copy) on CPU; takes :func:`pytest_neuronperf.benchmark`'s
    parameters except ``device_type``."""
    if params.setdefault("device_type", "cpu") != "cpu":
        raise ValueError("device_type: pytest_neuronperf.cpu.benchmark runs on CPU; use pytest_neuronperf.benchmark "
                         "or pytest_neuronperf.torch.benchmark for other devices")
    return _benchmark(model_class, inputs, **params)
