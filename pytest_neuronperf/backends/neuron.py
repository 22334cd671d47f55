"""Neuron backend: model copies on disjoint NeuronCores of an Inf1/Inf2/Trn1/Trn2 instance.

The parent only counts cores (``neuron-ls``, else ``/dev/neuron*`` and the
instance type) and hands each copy its cores as ``NEURON_RT_VISIBLE_CORES``.
It never imports ``torch_neuronx`` nor starts the Neuron runtime: a runtime
started in the parent cannot be used by child processes (``NRT_STATE_CHILD``)
and would hold every core itself. Each copy applies its environment in
``enter_copy`` and only then imports ``torch_neuronx`` in ``load_model``, so
the runtime it starts claims exactly the copy's cores.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_neuronperf._util import machine
from pytest_neuronperf._util.log import logger
from pytest_neuronperf.backends import neuron_cores
from pytest_neuronperf.backends.base import Placement, WorkerTiming
from pytest_neuronperf.backends.cpu import apply_placement
from pytest_neuronperf.backends.model_files import load_model_file, set_eval_mode
from pytest_neuronperf.backends.torch_common import explain_torch_error
from pytest_neuronperf.errors import DeviceUnavailableError
from pytest_neuronperf.spec.model_source import ModelSource

if TYPE_CHECKING:
    from pytest_neuronperf.telemetry.base import WindowTelemetry

NEURON_LS = "neuron-ls"
DEV_DIR = "/dev"
NEURON_LS_TIMEOUT_S = 10.0
TORCH_NEURONX_INSTALL = (
    'pip install --extra-index-url https://pip.repos.neuron.amazonaws.com "pytest-neuronperf[neuron]"'
)


@dataclass(frozen=True)
class NeuronInventory:
    """What core discovery found: ``total`` NeuronCores (None when unknown) and why sources failed."""

    total: int | None
    device_nodes: int
    source: str
    problems: tuple[str, ...] = ()


class NeuronBackend:
    """NeuronCores handed to copies as contiguous ``NEURON_RT_VISIBLE_CORES`` ranges.

    ``neuron_ls``, ``dev_dir``, ``instance_type`` and ``env`` exist so that
    discovery can be pointed at stand-ins; by default they are the real tool,
    ``/dev``, the DMI product name and this process's environment (read at call
    time).
    """

    name = "neuron"

    def __init__(
        self,
        neuron_ls: str = NEURON_LS,
        dev_dir: str = DEV_DIR,
        instance_type: Callable[[], str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float = NEURON_LS_TIMEOUT_S,
    ) -> None:
        self._neuron_ls = neuron_ls
        self._dev_dir = dev_dir
        self._instance_type = instance_type or machine.instance_type
        self._env = env
        self._timeout_s = timeout_s
        self._inventory: NeuronInventory | None = None

    @property
    def env(self) -> Mapping[str, str]:
        return self._env if self._env is not None else os.environ

    # -- discovery (parent) -------------------------------------------------

    def inventory(self) -> NeuronInventory:
        """Count NeuronCores once per backend object; later calls reuse the answer."""
        if self._inventory is None:
            self._inventory = self._discover()
        return self._inventory

    def _discover(self) -> NeuronInventory:
        problems: list[str] = []
        total = self._from_neuron_ls(problems)
        if total:
            return NeuronInventory(total=total, device_nodes=0, source="neuron-ls")
        nodes = neuron_cores.count_device_nodes(self._dev_dir)
        pattern = os.path.join(self._dev_dir, "neuron*")
        if nodes == 0:
            problems.append(f"there are no {pattern} devices")
            return NeuronInventory(total=None, device_nodes=0, source="none", problems=tuple(problems))
        instance = self._instance_type()
        total = neuron_cores.cores_from_device_nodes(nodes, instance, self.env)
        if total is None:
            problems.append(
                f"{nodes} {pattern} device(s) are present but instance type {instance!r} is not in the "
                "table of NeuronCores per instance, so the number of cores is unknown"
            )
        return NeuronInventory(
            total=total, device_nodes=nodes, source=f"{pattern} x {instance}", problems=tuple(problems)
        )

    def _from_neuron_ls(self, problems: list[str]) -> int | None:
        exe = shutil.which(self._neuron_ls, path=self.env.get("PATH"))
        if exe is None:
            problems.append(f"{self._neuron_ls} is not on PATH")
            return None
        try:
            done = subprocess.run(
                [exe, "--json-output"],
                capture_output=True,
                text=True,
                timeout=self._timeout_s,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            problems.append(f"{exe} --json-output did not answer within {self._timeout_s:g} s")
            return None
        except OSError as exc:
            problems.append(f"{exe} could not be run ({exc})")
            return None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            problems.append(
                f"{exe} --json-output exited with status {done.returncode}"
                + (f" ({detail[-1]})" if detail else "")
            )
            return None
        try:
            total = neuron_cores.parse_neuron_ls(done.stdout)
        except ValueError as exc:
            problems.append(str(exc))
            return None
        if total == 0:
            problems.append(f"{exe} lists no NeuronCores")
        return total

    def usable_cores(self) -> list[int] | None:
        """The cores copies may use: an outer ``NEURON_RT_VISIBLE_CORES`` or all discovered ones."""
        return neuron_cores.usable_cores(self.inventory().total, self.env)

    # -- Backend protocol ---------------------------------------------------

    def unavailable_reason(self) -> str | None:
        inventory = self.inventory()
        if inventory.total or inventory.device_nodes:
            return None
        return "no NeuronCores found: " + " and ".join(inventory.problems)

    def max_copies(self, pipeline_size: int) -> int | None:
        _check_positive("pipeline_size", pipeline_size)
        cores = self.usable_cores()
        if not cores:
            return None
        return len(cores) // pipeline_size or None

    def placements(self, n_models: int, pipeline_size: int) -> list[Placement]:
        _check_positive("n_models", n_models)
        _check_positive("pipeline_size", pipeline_size)
        needed = n_models * pipeline_size
        cores = self.usable_cores()
        if cores is None:
            inventory = self.inventory()
            if not inventory.device_nodes:
                raise DeviceUnavailableError("neuron", self.unavailable_reason() or "no NeuronCores found")
            # Devices exist but their core count is unknown: let the runtime judge the request.
            logger.warning(
                "the number of NeuronCores is unknown (%s); assuming cores 0-%d exist",
                "; ".join(inventory.problems),
                needed - 1,
            )
            cores = list(range(needed))
        if needed > len(cores):
            raise ValueError(
                f"n_models={n_models} x pipeline_size={pipeline_size} needs {needed} NeuronCores but "
                f"{len(cores)} are usable ({self._describe_usable(cores)})"
            )
        placements = []
        for i in range(n_models):
            share = tuple(cores[i * pipeline_size : (i + 1) * pipeline_size])
            placements.append(
                Placement(
                    copy_index=i,
                    cores=share,
                    env={neuron_cores.VISIBLE_CORES_VAR: neuron_cores.format_core_list(share)},
                    # The host side of a Neuron inference is a copy-in/copy-out; one torch
                    # thread per copy keeps many copies from oversubscribing the CPUs.
                    threads=1,
                )
            )
        return placements

    def default_workers(self, pipeline_size: int) -> list[int]:
        """Worker threads per copy when the caller names none.

        Data parallel (``pipeline_size == 1``): sweep ``[1, 2]`` -- one worker
        shows the latency floor, two keep the core busy while the next input is
        being copied in. Pipeline mode runs a single configuration with one
        worker per pipeline stage (``[pipeline_size]``), so that every stage has
        a request in flight.
        """
        _check_positive("pipeline_size", pipeline_size)
        return [1, 2] if pipeline_size == 1 else [pipeline_size]

    def instance_type(self) -> str:
        return self._instance_type()

    def enter_copy(self, placement: Placement) -> None:
        # NEURON_RT_VISIBLE_CORES wins over NEURON_RT_NUM_CORES, but an inherited count
        # that disagrees with the copy's range only confuses anyone reading the runtime log.
        os.environ.pop(neuron_cores.NUM_CORES_VAR, None)
        if "torch_neuronx" in sys.modules:
            logger.warning(
                "torch_neuronx was imported in model copy %d before its NeuronCores (%s) were set; "
                "if the Neuron runtime already started it will not honour them",
                placement.copy_index,
                placement.env.get(neuron_cores.VISIBLE_CORES_VAR, "-"),
            )
        apply_placement(placement)

    def load_model(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        if source.kind != "torchscript" or source.path is None:
            raise ValueError(
                f"model {source.filename} is a model class, but device_type='neuron' runs compiled "
                "models: compile it first with pytest_neuronperf.torch.compile(model, inputs, ...) and pass "
                "the index it returns, or pass compile=True to compile it on the way"
            )
        try:
            import torch_neuronx  # noqa: F401  (registers the Neuron ops that the model file refers to)
        except ImportError as exc:
            raise ImportError(
                f"torch_neuronx could not be imported in model copy {placement.copy_index} ({exc}); "
                f"install it with: {TORCH_NEURONX_INSTALL}"
            ) from exc
        # No device: the artifact places itself on the copy's NeuronCores as it loads. A TorchScript
        # file (what torch_neuronx.trace saves) loads with torch.jit.load, a .pt2 with torch.export.load.
        return set_eval_mode(load_model_file(source.path, None))  # type: ignore[no-any-return]

    def prepare_inputs(self, inputs: tuple[Any, ...], placement: Placement) -> tuple[Any, ...]:
        # Neuron models take host tensors; the copy to the device is part of each call.
        return inputs

    def worker_timing(self, placement: Placement, worker_index: int) -> WorkerTiming | None:
        # A Neuron model call returns only once its outputs are back on the host.
        return None

    def window_telemetry(self, pids: Sequence[int], window_s: float) -> WindowTelemetry:
        """*parent*: neuron-monitor over the copies' processes while a window is open.

        neuron-monitor tells processes apart by their tag: ``NEURON_PROCESS_TAG`` when the copies were
        given one (they all share the caller's environment), else each copy's pid.
        """
        from pytest_neuronperf.telemetry.neuron_monitor import NeuronMonitor

        tag = os.environ.get("NEURON_PROCESS_TAG")
        return NeuronMonitor([tag] if tag else [str(p) for p in pids], window_s)

    def explain_error(self, error_text: str, placement: Placement) -> str | None:
        if "NERR_RESOURCE_NC" in error_text:
            cores = neuron_cores.format_core_list(placement.cores) if placement.cores else "?"
            held = f"NeuronCore {cores} is" if len(placement.cores) == 1 else f"NeuronCores {cores} are"
            return (
                f"{held} held by another process (see neuron-ls): stop it, or set "
                f"{neuron_cores.VISIBLE_CORES_VAR} for this run to cores that are free"
            )
        if "NRT_STATE_CHILD" in error_text:
            return (
                f"the Neuron runtime was initialised in the parent process before model copy "
                f"{placement.copy_index} started (for example by tracing or loading a Neuron model in the "
                "test process), so the copy cannot use it. Compile and load Neuron models only through "
                "pytest_neuronperf.torch.compile() and the benchmark, which do both in child processes"
            )
        return explain_torch_error(error_text)

    def _describe_usable(self, cores: list[int]) -> str:
        outer = self.env.get(neuron_cores.VISIBLE_CORES_VAR)
        where = f"{neuron_cores.VISIBLE_CORES_VAR}={outer!r}" if outer else self.inventory().source
        return f"cores {neuron_cores.format_core_list(cores) if cores else 'none'} from {where}"


def _check_positive(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
