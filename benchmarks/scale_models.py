"""The model of benchmarks/scale.py, importable by the model copies.

Importing this module lets the Neuron backend load a model class as it is, in place of a compiled
artifact (there is no NeuronCore here: what scales is the runner, not a device). The copies import it
with the model, from the server they fork from, before they load it.
"""

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


def _load_as_is(self: NeuronBackend, source: ModelSource, placement: Placement) -> Callable[..., Any]:
    model: Callable[..., Any] = source.instantiate()
    return model


NeuronBackend.load_model = _load_as_is  # type: ignore[method-assign]
