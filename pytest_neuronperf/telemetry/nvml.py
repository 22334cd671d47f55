"""NVML during a timed window, sampled inside a CUDA model copy: SM utilisation, memory, power, energy.

``pynvml`` (package ``nvidia-ml-py``, in the ``cuda`` extra) is imported only here, and this module only
in the copies, so no pytest run pays for it. The copy's GPU is found by its UUID, so
``CUDA_VISIBLE_DEVICES`` renumbering cannot point it at another GPU's counters (by its UUID where torch
gives one; NVML's own index otherwise). Energy comes from the
total-energy counter (millijoules since the driver loaded; Volta and later), read at the window's two
ends; where the GPU has none, it is left out rather than integrated from power samples.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

MW_PER_W = 1000.0
MJ_PER_J = 1000.0
MB = 1024 * 1024


class GpuSampler:
    """Samples one GPU every ``interval`` seconds on a daemon thread between ``start`` and ``stop``."""

    def __init__(self, uuid: str | None, index: int, interval: float, nvml: Any = None,
                 allocated_peak: Callable[[], int] | None = None) -> None:
        self._nvml = nvml
        # torch's own peak of the memory it allocated on this GPU (torch.cuda.max_memory_allocated).
        self._allocated_peak = allocated_peak
        self.allocated_peak_bytes: int | None = None
        self._uuid = uuid
        self._index = index
        self.interval = interval
        self.util: list[float] = []
        self.mem_bytes: list[int] = []
        self.power_w: list[float] = []
        self.energy_j: float | None = None
        self.note: str | None = None
        self._handle: Any = None
        self._energy_start: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        try:
            nvml = self._nvml
            if nvml is None:
                import pynvml  # type: ignore[import-not-found, unused-ignore]

                nvml = self._nvml = pynvml
            nvml.nvmlInit()
            self._handle = (nvml.nvmlDeviceGetHandleByUUID(self._uuid) if self._uuid
                            else nvml.nvmlDeviceGetHandleByIndex(self._index))
        except ImportError:
            self.note = "pynvml is not installed (pip install 'pytest-neuronperf[cuda]'), so no GPU telemetry"
            return
        except Exception as exc:  # any NVML error: the benchmark goes on without telemetry
            self.note = f"NVML could not be read ({type(exc).__name__}: {exc}), so no GPU telemetry"
            return
        self._energy_start = self._energy()
        self._thread = threading.Thread(target=self._run, name="npf-nvml", daemon=True)
        self._thread.start()

    def _energy(self) -> float | None:
        try:
            return float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)) / MJ_PER_J
        except Exception:  # not supported before Volta, or by this driver
            return None

    def _sample(self) -> None:
        nvml, h = self._nvml, self._handle
        try:
            self.util.append(float(nvml.nvmlDeviceGetUtilizationRates(h).gpu))
            self.mem_bytes.append(int(nvml.nvmlDeviceGetMemoryInfo(h).used))
            self.power_w.append(float(nvml.nvmlDeviceGetPowerUsage(h)) / MW_PER_W)
        except Exception as exc:
            if self.note is None:
                self.note = (f"NVML sampling failed ({type(exc).__name__}: {exc}); the telemetry covers part of "
                             "the window")

    def _run(self) -> None:
        self._sample()
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> None:
        if self._allocated_peak is not None:
            with contextlib.suppress(Exception):
                self.allocated_peak_bytes = int(self._allocated_peak())
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._sample()
        end = self._energy()
        if end is not None and self._energy_start is not None and end >= self._energy_start:
            self.energy_j = end - self._energy_start
        with contextlib.suppress(Exception):
            self._nvml.nvmlShutdown()

    def fields(self, inferences: int) -> dict[str, float | None]:
        """The report fields of this GPU's window; ``inferences`` completed in it (batch size included)."""
        def avg(xs: list[float]) -> float | None:
            return round(sum(xs) / len(xs), 2) if xs else None

        joules_per_inf = self.energy_j / inferences if self.energy_j is not None and inferences else None
        return {
            "gpu_util_avg": avg(self.util),
            "gpu_util_peak": round(max(self.util), 2) if self.util else None,
            "gpu_mem_peak_mb": round(max(self.mem_bytes) / MB, 3) if self.mem_bytes else None,
            "torch_mem_peak_mb": (None if self.allocated_peak_bytes is None
                                  else round(self.allocated_peak_bytes / MB, 3)),
            "gpu_power_avg_w": avg(self.power_w),
            "energy_j": None if self.energy_j is None else round(self.energy_j, 4),
            "joules_per_inf": None if joules_per_inf is None else round(joules_per_inf, 6),
        }
