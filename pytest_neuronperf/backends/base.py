"""The Backend protocol: everything the runner needs to know about a device.

The runner never tests ``device_type`` strings; it asks the backend. Methods
marked *parent* run in the calling process and must not initialise a device
runtime there; methods marked *copy* run inside a model-copy process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pytest_neuronperf.spec.model_source import ModelSource


@dataclass(frozen=True)
class Placement:
    """Where one model copy runs; decided in the parent, applied in the copy before the model loads."""

    copy_index: int
    cores: tuple[int, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    cpu_affinity: tuple[int, ...] | None = None
    threads: int | None = None

    def describe(self) -> str:
        cores = ",".join(map(str, self.cores)) if self.cores else "-"
        return f"copy {self.copy_index} on cores {cores}"


@runtime_checkable
class Backend(Protocol):
    name: str
    """Canonical device type written into reports ("cpu", "cuda", "neuron")."""

    def unavailable_reason(self) -> str | None:
        """*parent*: None when the device is present, else why not (used for skip messages)."""

    def max_copies(self, pipeline_size: int) -> int | None:
        """*parent*: how many copies of a model spanning ``pipeline_size`` cores fit; None if unknown."""

    def placements(self, n_models: int, pipeline_size: int) -> list[Placement]:
        """*parent*: one placement per copy; raises ValueError when they do not fit."""

    def default_workers(self, pipeline_size: int) -> list[int]:
        """*parent*: the worker-thread counts to sweep when the caller gives none."""

    def instance_type(self) -> str:
        """*parent*: the machine identity written into reports."""

    def enter_copy(self, placement: Placement) -> None:
        """*copy*: apply environment, pinning and threading before anything loads."""

    def load_model(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        """*copy*: load or instantiate the model on the placement's device."""

    def prepare_inputs(self, inputs: tuple[Any, ...], placement: Placement) -> tuple[Any, ...]:
        """*copy*: move one input tuple to the device, once, before the timed window."""

    def synchronizer(self, placement: Placement) -> Callable[[], None] | None:
        """*copy*: a call that waits for queued device work, or None when calls are synchronous."""

    def explain_error(self, error_text: str, placement: Placement) -> str | None:
        """*parent*: a plain-words explanation of a runtime error seen in a copy, or None."""
