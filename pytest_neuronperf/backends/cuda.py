"""CUDA backend: one model copy per visible GPU.

Counting GPUs in the parent must not create a CUDA context there: copies are
separate processes, and a context in the parent would hold memory on every
GPU and forbid forking. ``torch.cuda.device_count()`` does not create one: in
torch >= 2.x it asks NVML first (``_device_count_nvml``, which honours
``CUDA_VISIBLE_DEVICES`` and leaves CUDA uninitialised) and only when NVML is
missing falls back to ``cudaGetDeviceCount``, which loads the driver but
creates no context. torch is imported inside the methods that count, never
when this module is imported.

Timing: each worker thread of a copy runs its calls on a CUDA stream of its own and waits
for that stream alone (``Stream.synchronize``), so two workers overlap on the GPU and
neither one's latency includes the other's kernels; a device-wide ``torch.cuda.synchronize``
would wait for every worker's work. CUDA events recorded on the worker's stream around each
call give the model's own device time (``device_ms_*`` in reports).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pytest_neuronperf._util import machine
from pytest_neuronperf.backends.base import Placement
from pytest_neuronperf.backends.cpu import apply_placement
from pytest_neuronperf.backends.torch_common import explain_torch_error, load_torch_model, move_inputs
from pytest_neuronperf.spec.model_source import ModelSource

if TYPE_CHECKING:
    from pytest_neuronperf.telemetry.nvml import GpuSampler

NVIDIA_SMI = "nvidia-smi"
NVIDIA_SMI_TIMEOUT_S = 10.0


class CudaBackend:
    """GPUs numbered as this process sees them (after ``CUDA_VISIBLE_DEVICES``); copy i runs on ``cuda:i``.

    ``device_count`` replaces the torch-based count (for tests); ``nvidia_smi``
    names the tool used to explain why no GPU is usable; ``cuda_api`` replaces
    ``torch.cuda`` where the copies' streams and events come from (for tests).
    """

    name = "cuda"

    def __init__(
        self, device_count: Callable[[], int] | None = None, nvidia_smi: str = NVIDIA_SMI,
        cuda_api: Any = None,
    ) -> None:
        self._device_count = device_count
        self._nvidia_smi = nvidia_smi
        self._cuda_api = cuda_api
        self._count: tuple[int, str | None] | None = None

    def _cuda(self) -> Any:
        if self._cuda_api is not None:
            return self._cuda_api
        import torch

        return torch.cuda

    def _visible(self) -> tuple[int, str | None]:
        if self._count is None:
            self._count = self._count_devices()
        return self._count

    def _count_devices(self) -> tuple[int, str | None]:
        if self._device_count is not None:
            n = self._device_count()
            return n, None if n > 0 else "no CUDA GPU is visible" + _visible_devices_note()
        try:
            import torch
        except ImportError:
            return 0, "torch is not installed; CUDA benchmarks need a CUDA build of torch"
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            return 0, (
                f"torch {torch.__version__} is built without CUDA support" + self._nvidia_smi_note()
            )
        n = int(torch.cuda.device_count())
        if n > 0:
            return n, None
        return 0, "no CUDA GPU is visible" + _visible_devices_note() + self._nvidia_smi_note()

    def _nvidia_smi_note(self) -> str:
        gpus = nvidia_smi_gpus(self._nvidia_smi)
        if gpus is None:
            return f" ({self._nvidia_smi} is not on PATH or failed: no NVIDIA driver here)"
        return f" ({self._nvidia_smi} -L lists {gpus} GPU(s))"

    def device_count(self) -> int:
        return self._visible()[0]

    # -- Backend protocol ---------------------------------------------------

    def unavailable_reason(self) -> str | None:
        return self._visible()[1]

    def max_copies(self, pipeline_size: int) -> int | None:
        _check_pipeline(pipeline_size)
        return self.device_count() or None

    def placements(self, n_models: int, pipeline_size: int) -> list[Placement]:
        _check_pipeline(pipeline_size)
        if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 1:
            raise ValueError(f"n_models must be a whole number >= 1, got {n_models!r}")
        count = self.device_count()
        if n_models > count:
            raise ValueError(
                f"n_models={n_models} needs {n_models} GPU{'s' if n_models != 1 else ''} (one copy per GPU) "
                f"but {count} "
                f"{'is' if count == 1 else 'are'} visible{_visible_devices_note()}"
            )
        # Host-side work (pre/postprocessing, launches) gets an equal share of the CPUs per copy.
        threads = max(1, len(machine.usable_cpus()) // n_models)
        return [Placement(copy_index=i, cores=(i,), threads=threads) for i in range(n_models)]

    def default_workers(self, pipeline_size: int) -> list[int]:
        _check_pipeline(pipeline_size)
        return [1, 2]

    def instance_type(self) -> str:
        return machine.instance_type()

    def enter_copy(self, placement: Placement) -> None:
        apply_placement(placement)

    def load_model(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        device = _device(placement)
        return load_torch_model(source, device, int(device.split(":")[1]))  # type: ignore[no-any-return]

    def prepare_inputs(self, inputs: tuple[Any, ...], placement: Placement) -> tuple[Any, ...]:
        return move_inputs(inputs, _device(placement))

    def worker_timing(self, placement: Placement, worker_index: int) -> CudaStreamTiming:
        # Kernel launches return before the GPU finishes; timing must wait for the worker's own work.
        return CudaStreamTiming(self._cuda(), _device_index(placement))

    def copy_telemetry(self, placement: Placement, interval_s: float) -> GpuSampler:
        """*copy*: NVML sampling of this copy's GPU while a window is open."""
        from pytest_neuronperf.telemetry.nvml import GpuSampler

        index = _device_index(placement)
        uuid = None
        try:
            raw = self._cuda().get_device_properties(index).uuid
            uuid = f"GPU-{raw}" if raw is not None and not str(raw).startswith("GPU-") else str(raw)
        except Exception:  # an older torch without the property: NVML's index of the GPU instead
            uuid = None
        cuda = self._cuda()
        return GpuSampler(uuid, index, interval_s, allocated_peak=lambda: int(cuda.max_memory_allocated(index)))

    def explain_error(self, error_text: str, placement: Placement) -> str | None:
        device = _device(placement)
        if "CUDA out of memory" in error_text or "OutOfMemoryError" in error_text:
            return (
                f"GPU {device} ran out of memory: every copy holds its own model and activations there; "
                "use smaller batch_sizes or fewer workers_per_model"
            )
        if "Cannot re-initialize CUDA in forked subprocess" in error_text:
            return (
                f"CUDA was initialised in the parent process before copy {placement.copy_index} was forked; "
                "create no CUDA tensors or models in the test process before benchmarking, or pass "
                "multiinterpreter=True so that copies start in fresh interpreters"
            )
        return explain_torch_error(error_text)


class CudaStreamTiming:
    """One worker's CUDA stream, and the two timing events recorded on it around each model call.

    ``cuda`` is ``torch.cuda`` (or a stand-in with its ``Stream``, ``Event``, ``stream``,
    ``current_stream`` and ``set_device``). The events are reused call after call: both are
    complete once the stream is synchronised, which is when their interval is read.
    """

    def __init__(self, cuda: Any, device_index: int) -> None:
        self._cuda = cuda
        self.device_index = device_index
        self.stream = cuda.Stream(device=device_index)
        self._start = cuda.Event(enable_timing=True)
        self._stop = cuda.Event(enable_timing=True)

    @contextlib.contextmanager
    def enter(self) -> Iterator[None]:
        cuda = self._cuda
        # The current device is per thread: without this a new worker thread's implicit "cuda"
        # tensors would land on GPU 0 whichever GPU its copy runs on.
        cuda.set_device(self.device_index)
        # The model and its inputs were put on the GPU through the default stream; work queued on
        # this stream must not start before that has finished.
        self.stream.wait_stream(cuda.current_stream(self.device_index))
        with cuda.stream(self.stream):
            yield

    def begin(self) -> None:
        self._start.record(self.stream)

    def end(self) -> int:
        self._stop.record(self.stream)
        self.stream.synchronize()
        return int(self._start.elapsed_time(self._stop) * 1e6)


def _device_index(placement: Placement) -> int:
    return placement.cores[0] if placement.cores else 0


def _device(placement: Placement) -> str:
    return f"cuda:{_device_index(placement)}"


def _check_pipeline(pipeline_size: int) -> None:
    if pipeline_size != 1:
        raise ValueError(
            f"pipeline_sizes={pipeline_size!r} is not supported with device_type='cuda': each model copy "
            "runs on one GPU; use pipeline_sizes=1"
        )


def _visible_devices_note() -> str:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f" (CUDA_VISIBLE_DEVICES={value!r})" if value is not None else ""


def nvidia_smi_gpus(executable: str = NVIDIA_SMI) -> int | None:
    """GPUs listed by ``nvidia-smi -L`` (all of them, before ``CUDA_VISIBLE_DEVICES``); None when it cannot run."""
    exe = shutil.which(executable)
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, "-L"], capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return sum(1 for line in done.stdout.splitlines() if line.startswith("GPU "))
