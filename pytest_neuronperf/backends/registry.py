"""Find a backend by device type; third parties add theirs through an entry-point group."""

from __future__ import annotations

import functools
import importlib
from typing import cast

from pytest_neuronperf.backends.base import Backend

ENTRY_POINT_GROUP = "pytest_neuronperf.backends"

_BUILTIN: dict[str, str] = {
    "cpu": "pytest_neuronperf.backends.cpu:CpuBackend",
    "cuda": "pytest_neuronperf.backends.cuda:CudaBackend",
    "neuron": "pytest_neuronperf.backends.neuron:NeuronBackend",
}
_ALIASES: dict[str, str] = {"gpu": "cuda"}
DEVICE_TYPES: tuple[str, ...] = ("cpu", "cuda", "gpu", "neuron")


@functools.cache
def _plugin_backends() -> dict[str, str]:
    from importlib.metadata import entry_points

    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_device_types() -> list[str]:
    return sorted({*DEVICE_TYPES, *_plugin_backends()})


def canonical_device_type(device_type: str) -> str:
    """Normalise a user's ``device_type`` ("gpu" -> "cuda"); ValueError listing the valid ones."""
    if not isinstance(device_type, str):
        raise ValueError(f"device_type must be a string, one of {known_device_types()}, got {device_type!r}")
    name = _ALIASES.get(device_type.lower(), device_type.lower())
    if name not in _BUILTIN and name not in _plugin_backends():
        raise ValueError(f"device_type={device_type!r} is unknown; use one of {', '.join(known_device_types())}")
    return name


@functools.cache
def get_backend(device_type: str) -> Backend:
    name = canonical_device_type(device_type)
    target = _BUILTIN.get(name) or _plugin_backends()[name]
    module_name, _, attr = target.partition(":")
    backend_cls = getattr(importlib.import_module(module_name), attr)
    return cast(Backend, backend_cls())
