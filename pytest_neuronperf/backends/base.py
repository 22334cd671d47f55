"""The Backend protocol: everything the runner needs to know about a device.

The runner never tests ``device_type`` strings; it asks the backend. Methods
marked *parent* run in the calling process and must not initialise a device
runtime there; methods marked *copy* run inside a model-copy process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
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
class WorkerTiming(Protocol):
    """How one worker thread of a copy waits for, and times, the device work of its calls.

    A backend whose calls return only once the device is done (CPU, Neuron) has none: the
    runner's loops then make no call per inference besides the model's.
    """

    def enter(self) -> AbstractContextManager[Any]:
        """The context the worker thread runs in for its whole life (a CUDA stream of its own, say)."""

    def begin(self) -> None:
        """Just before a model call."""

    def end(self) -> int | None:
        """Just after a model call: wait until its device work is done; the device nanoseconds it took,
        or None when the backend cannot tell."""


def worker_threads(threads: int | None, workers: int, override: int | None = None) -> int | None:
    """Intra-op threads each worker of a copy gets: ``override``, else the copy's ``threads`` shared out.

    The copy's workers run their calls side by side, each call on torch's one intra-op pool of the
    process; a pool as wide as the copy's c cores under w concurrent callers puts w x c threads on c
    cores, spinning against each other. ``max(1, c // w)`` keeps the threads within the cores (one
    each where workers outnumber cores). torch's pool size is one setting for the process, read by
    each new thread when it first runs intra-op work, so the same rule for every worker is all that
    can be set, and it is set in the copy before the workers start. None: the copy sets no count.
    """
    if override is not None:
        return override
    if threads is None:
        return None
    return max(1, threads // max(1, workers))


@runtime_checkable
class Backend(Protocol):
    """A device type's behaviour. Optionally, a backend may also have ``window_telemetry(pids, window_s)``
    (*parent*): a :class:`~pytest_neuronperf.telemetry.base.WindowTelemetry` run while each window is
    open (the Neuron backend's runs neuron-monitor); a backend without it reports no device telemetry."""

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

    def worker_timing(self, placement: Placement, worker_index: int) -> WorkerTiming | None:
        """*copy*: worker ``worker_index``'s device wait and timing, or None when calls are synchronous.

        Each worker gets its own: its waits must cover its own calls only, not the other workers'.
        """

    def explain_error(self, error_text: str, placement: Placement) -> str | None:
        """*parent*: a plain-words explanation of a runtime error seen in a copy, or None."""
