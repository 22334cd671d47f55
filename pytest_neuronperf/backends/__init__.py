"""Device backends: how to find a device, place model copies on it and load models there."""

from __future__ import annotations

from pytest_neuronperf.backends.base import Backend, Placement
from pytest_neuronperf.backends.registry import DEVICE_TYPES, canonical_device_type, get_backend

__all__ = ["DEVICE_TYPES", "Backend", "Placement", "canonical_device_type", "get_backend"]
