"""GPU telemetry through a fake NVML: the figures of a window, energy per inference, and what goes wrong."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_neuronperf.telemetry.nvml import GpuSampler


class FakeNvml:
    """The pynvml calls the sampler makes; energy rises 500 mJ per read, utilisation cycles 20 -> 80."""

    def __init__(self, energy: bool = True, fail_init: bool = False) -> None:
        self.energy_mj = 10_000
        self.reads = 0
        self.has_energy = energy
        self.fail_init = fail_init
        self.by_uuid: list[str] = []
        self.shut = False

    def nvmlInit(self) -> None:
        if self.fail_init:
            raise RuntimeError("NVML_ERROR_DRIVER_NOT_LOADED")

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:
        self.by_uuid.append(uuid)
        return "gpu"

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        return "gpu"

    def nvmlDeviceGetUtilizationRates(self, h: Any) -> SimpleNamespace:
        self.reads += 1
        return SimpleNamespace(gpu=20 if self.reads % 2 else 80, memory=10)

    def nvmlDeviceGetMemoryInfo(self, h: Any) -> SimpleNamespace:
        return SimpleNamespace(used=(100 + self.reads) * 1024 * 1024, total=1 << 34)

    def nvmlDeviceGetPowerUsage(self, h: Any) -> int:
        return 150_000  # mW

    def nvmlDeviceGetTotalEnergyConsumption(self, h: Any) -> int:
        if not self.has_energy:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        self.energy_mj += 500
        return self.energy_mj

    def nvmlShutdown(self) -> None:
        self.shut = True


def test_a_window_gives_utilisation_memory_power_and_energy_per_inference() -> None:
    nvml = FakeNvml()
    sampler = GpuSampler("GPU-1234", 0, 0.01, nvml=nvml, allocated_peak=lambda: 64 * 1024 * 1024)
    sampler.start()
    time.sleep(0.05)
    sampler.stop()
    f = sampler.fields(inferences=1000)
    assert nvml.by_uuid == ["GPU-1234"] and nvml.shut
    assert f["gpu_util_peak"] == 80 and f["gpu_util_avg"] is not None and 20 <= f["gpu_util_avg"] <= 80
    assert f["gpu_mem_peak_mb"] is not None and f["gpu_mem_peak_mb"] > 100
    assert f["gpu_power_avg_w"] == 150.0 and f["torch_mem_peak_mb"] == 64.0
    assert f["energy_j"] == 0.5 and f["joules_per_inf"] == 0.0005
    assert sampler.note is None


def test_without_an_energy_counter_energy_is_left_out() -> None:
    sampler = GpuSampler(None, 0, 0.01, nvml=FakeNvml(energy=False))
    sampler.start()
    sampler.stop()
    f = sampler.fields(inferences=10)
    assert f["energy_j"] is None and f["joules_per_inf"] is None and f["gpu_util_avg"] is not None


def test_nvml_that_cannot_start_leaves_a_note_and_no_figures() -> None:
    sampler = GpuSampler(None, 0, 0.01, nvml=FakeNvml(fail_init=True))
    sampler.start()
    sampler.stop()
    assert sampler.note is not None and "NVML could not be read (RuntimeError: NVML_ERROR_DRIVER_NOT_LOADED)" in \
        sampler.note
    assert sampler.fields(10)["gpu_util_avg"] is None


def test_a_cuda_copy_reports_its_gpu_telemetry_and_a_diagnosis(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    import torch

    from pytest_neuronperf.backends import registry
    from pytest_neuronperf.runner.benchmark import benchmark
    from tests.standins import fake_cuda

    monkeypatch.setitem(registry._BUILTIN, "cuda", "tests.standins.fake_cuda:StandinCudaBackend")
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    registry.get_backend.cache_clear()
    fake_cuda.reset(elapsed_ms=0.25)
    try:
        (report,) = benchmark(fake_cuda.LaunchingModel, torch.ones(1), device_type="cuda", multiprocess=False,
                              n_models=1, workers_per_model=1, duration=0.3, warmup=3)
    finally:
        registry.get_backend.cache_clear()
    assert report["status"] == "finished", report["reason"]
    assert report["gpu_util_peak"] == 80 and report["gpu_power_avg_w"] == 150.0
    assert report["energy_j"] > 0 and report["joules_per_inf"] == pytest.approx(
        report["energy_j"] / report["total_infs"], rel=1e-3)
    assert report["joules_per_1m_inf"] == pytest.approx(report["joules_per_inf"] * 1e6, rel=1e-3)
    assert report["diagnosis"] is not None and report["diagnosis"].startswith("device busy ")
