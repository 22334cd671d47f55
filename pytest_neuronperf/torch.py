"""``pytest_neuronperf.torch``: NeuronPerf's torch entry points (Neuron by default, or CPU/GPU)."""

from __future__ import annotations

from typing import Any

from pytest_neuronperf.report.text import print_reports, write_csv, write_json
from pytest_neuronperf.runner.benchmark import benchmark as _benchmark
from pytest_neuronperf.runner.reports import get_reports

__all__ = ["benchmark", "compile", "get_reports", "print_reports", "write_csv", "write_json"]


def benchmark(model: Any, inputs: Any = None, **params: Any) -> Any:
    """Benchmark a compiled artifact, a model index or a model class; ``device_type`` defaults to "neuron".

    Takes every parameter of :func:`pytest_neuronperf.benchmark`.
    """
    params.setdefault("device_type", "neuron")
    return _benchmark(model, inputs, **params)


def compile(model: Any, inputs: Any, **params: Any) -> str:
    """Compile ``model`` for NeuronCores at every batch size x pipeline size; returns the model index path."""
    from pytest_neuronperf.compile.parent import compile as _compile

    return str(_compile(model, inputs, **params))
