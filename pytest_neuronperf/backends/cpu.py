"""CPU backend: copies pinned to disjoint cores of this process's affinity mask."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from pytest_neuronperf._util import machine
from pytest_neuronperf.backends.base import Placement, WorkerTiming
from pytest_neuronperf.backends.torch_common import explain_torch_error, load_torch_model
from pytest_neuronperf.spec.model_source import ModelSource


class CpuBackend:
    name = "cpu"

    def __init__(self, cpus: list[int] | None = None) -> None:
        self._cpus = cpus

    @property
    def cpus(self) -> list[int]:
        return self._cpus if self._cpus is not None else machine.usable_cpus()

    def unavailable_reason(self) -> str | None:
        return None

    def max_copies(self, pipeline_size: int) -> int | None:
        return len(self.cpus) // pipeline_size or None

    def placements(self, n_models: int, pipeline_size: int) -> list[Placement]:
        cpus = self.cpus
        limit = self.max_copies(pipeline_size) or 0
        if n_models > limit:
            raise ValueError(
                f"n_models={n_models} x pipeline_size={pipeline_size} needs {n_models * pipeline_size} cores "
                f"but this process may use {len(cpus)} (its CPU affinity mask)"
            )
        # Equal, disjoint shares so copies never compete for a core; threads match the share.
        share = len(cpus) // n_models
        return [
            Placement(
                copy_index=i,
                cores=tuple(cpus[i * share : (i + 1) * share]),
                cpu_affinity=tuple(cpus[i * share : (i + 1) * share]),
                threads=share,
            )
            for i in range(n_models)
        ]

    def default_workers(self, pipeline_size: int) -> list[int]:
        return [1, 2] if pipeline_size == 1 else [pipeline_size]

    def instance_type(self) -> str:
        return machine.instance_type()

    def enter_copy(self, placement: Placement) -> None:
        apply_placement(placement)

    def load_model(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        return load_torch_model(source, "cpu") if _wants_torch(source) else source.instantiate()  # type: ignore[no-any-return]

    def prepare_inputs(self, inputs: tuple[Any, ...], placement: Placement) -> tuple[Any, ...]:
        return inputs

    def worker_timing(self, placement: Placement, worker_index: int) -> WorkerTiming | None:
        return None

    def explain_error(self, error_text: str, placement: Placement) -> str | None:
        return explain_torch_error(error_text)


def _wants_torch(source: ModelSource) -> bool:
    if source.kind == "torchscript":
        return True
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def apply_placement(placement: Placement) -> None:
    """Set the copy's environment, CPU affinity and torch thread count (inside the copy).

    ``placement.threads`` is what each worker's intra-op work may use (see
    :func:`pytest_neuronperf.backends.base.worker_threads`), set before the workers start.
    """
    os.environ.update(placement.env)
    if placement.cpu_affinity and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, placement.cpu_affinity)
    if placement.threads:
        try:
            import torch
        except ImportError:
            return
        torch.set_num_threads(placement.threads)
