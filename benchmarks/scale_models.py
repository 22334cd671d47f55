"""Models and a backend for benchmarks/scale.py, importable by the model copies."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pytest_neuronperf.backends.base import Placement
from pytest_neuronperf.backends.neuron import NeuronBackend
from pytest_neuronperf.spec.model_source import ModelSource


class Sleep1ms:
    """Sleeps 1 ms per call: a device call that costs the host almost nothing, as a NeuronCore's does."""

    def __call__(self, x: Any) -> Any:
        time.sleep(0.001)
        return x


class ScaleNeuronBackend(NeuronBackend):
    """The Neuron backend (placements, core lists, environment from the stand-in neuron-ls), with a model class
    loaded as it is instead of a compiled artifact: what scales here is the runner, not a device."""

    def load_model(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        model: Callable[..., Any] = source.instantiate()
        return model
