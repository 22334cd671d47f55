"""Per-worker device timing (a CUDA stream per worker) and the intra-op threads of a copy's workers."""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pytest_neuronperf._util import machine
from pytest_neuronperf.backends import registry
from pytest_neuronperf.backends.base import Placement, WorkerTiming, worker_threads
from pytest_neuronperf.backends.cpu import CpuBackend
from pytest_neuronperf.backends.cuda import CudaBackend, CudaStreamTiming
from pytest_neuronperf.backends.neuron import NeuronBackend
from pytest_neuronperf.runner.benchmark import benchmark
from pytest_neuronperf.runner.replica import worker_timing
from tests.models import Identity
from tests.standins import fake_cuda
from tests.standins.thread_models import THREADS_LOG, ThreadCounting

QUICK: dict[str, Any] = {"duration": 0.3, "warmup": 3}
STANDIN = "tests.standins.fake_cuda:StandinCudaBackend"


@pytest.fixture
def standin_cuda(monkeypatch: pytest.MonkeyPatch) -> Iterator[fake_cuda.FakeCuda]:
    """device_type="cuda" served by the stand-in backend (one GPU, fake streams, models on the CPU)."""
    monkeypatch.setitem(registry._BUILTIN, "cuda", STANDIN)
    registry.get_backend.cache_clear()
    yield fake_cuda.reset(elapsed_ms=0.25)
    registry.get_backend.cache_clear()


# -- the CUDA timing of one worker --------------------------------------------------------------------


def test_a_cuda_worker_runs_on_its_own_stream_and_waits_for_that_stream_only() -> None:
    cuda = fake_cuda.FakeCuda(elapsed_ms=2.5)
    timing = CudaBackend(device_count=lambda: 2, cuda_api=cuda).worker_timing(Placement(1, (1,)), 0)
    assert isinstance(timing, CudaStreamTiming) and isinstance(timing, WorkerTiming)
    assert timing.stream.device == 1
    with timing.enter():
        assert cuda.current_stream() is timing.stream
        timing.begin()
        cuda.launch()
        device_ns = timing.end()
    assert cuda.current_stream() is cuda.default
    assert device_ns == 2_500_000
    # It starts after what was queued on the default stream (the model and inputs moving to the GPU).
    assert cuda.waits == [(timing.stream.id, cuda.default.id)]
    assert [s for _, s in cuda.stream_syncs] == [timing.stream.id]
    assert [s for _, s in cuda.records] == [timing.stream.id, timing.stream.id]
    assert [i for _, i in cuda.devices_set] == [1]
    assert cuda.device_syncs == []


def test_each_worker_gets_a_stream_of_its_own() -> None:
    cuda = fake_cuda.FakeCuda()
    backend = CudaBackend(device_count=lambda: 1, cuda_api=cuda)
    placement = Placement(0, (0,))
    a, b = (backend.worker_timing(placement, i) for i in range(2))
    assert a.stream is not b.stream


def test_synchronous_backends_have_no_worker_timing() -> None:
    placement = Placement(0, (0,))
    assert CpuBackend(cpus=[0]).worker_timing(placement, 0) is None
    assert NeuronBackend().worker_timing(placement, 1) is None


class _FormerBackend:
    """A backend written for the protocol before worker_timing: a synchronizer per copy."""

    def __init__(self) -> None:
        self.synced = 0

    def synchronizer(self, placement: Placement) -> Any:
        def sync() -> None:
            self.synced += 1

        return sync


def test_a_backend_with_the_former_synchronizer_still_has_its_calls_waited_for() -> None:
    backend = _FormerBackend()
    timing = worker_timing(backend, Placement(0, (0,)), 0)
    assert timing is not None
    with timing.enter():
        timing.begin()
        assert timing.end() is None  # it cannot time the device
    assert backend.synced == 1
    assert worker_timing(CpuBackend(cpus=[0]), Placement(0, (0,)), 0) is None


# -- through the runner -------------------------------------------------------------------------------


def _post(y: Any) -> None:
    pass


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="bare-loop"),
        pytest.param({"postprocess_fn": _post}, id="phased-loop"),
        pytest.param({"request_rate": 400.0}, id="open-loop"),
    ],
)
def test_two_workers_synchronise_their_own_streams_not_the_device(
    standin_cuda: fake_cuda.FakeCuda, extra: dict[str, Any]
) -> None:
    (report,) = benchmark(fake_cuda.LaunchingModel, torch.ones(1), device_type="cuda", multiprocess=False,
                          n_models=1, workers_per_model=2, **QUICK, **extra)
    assert report["status"] == "finished", report["reason"]
    cuda = standin_cuda
    assert cuda.device_syncs == []
    assert len(cuda.streams) == 2 and cuda.streams[0] is not cuda.streams[1]
    calls: dict[str, set[int]] = defaultdict(set)
    for thread, stream in cuda.calls:
        calls[thread].add(stream)
    syncs: dict[str, set[int]] = defaultdict(set)
    for thread, stream in cuda.stream_syncs:
        syncs[thread].add(stream)
    workers = sorted(calls)
    assert workers == ["npf-copy0-worker0", "npf-copy0-worker1"]
    # Each worker launched on one stream, its own, and waited on that one alone.
    assert all(len(calls[w]) == 1 for w in workers)
    assert calls[workers[0]] != calls[workers[1]]
    assert {w: syncs[w] for w in workers} == {w: calls[w] for w in workers}
    assert set(syncs) == set(workers)
    # Model-only device time from the events on each worker's stream.
    assert report["device_ms_p50"] == pytest.approx(0.25, rel=2e-3)
    assert report["device_ms_p99"] == pytest.approx(0.25, rel=2e-3)


def test_cpu_reports_have_no_device_time() -> None:
    (report,) = benchmark(Identity, torch.ones(2, 2), multiprocess=False, n_models=1, workers_per_model=1, **QUICK)
    assert report["status"] == "finished"
    assert report["device_ms_p50"] is None and report["device_ms_p99"] is None
    # An in-process copy shares the calling process's threads and sets none.
    assert report["intra_op_threads"] is None


# -- intra-op threads of a copy's workers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "workers", "override", "expected"),
    [(8, 1, None, 8), (8, 2, None, 4), (8, 3, None, 2), (2, 4, None, 1), (1, 2, None, 1), (8, 2, 3, 3),
     (None, 2, None, None), (None, 2, 2, 2)],
)
def test_worker_threads_share_the_copy_cores(cores: int | None, workers: int, override: int | None,
                                             expected: int | None) -> None:
    assert worker_threads(cores, workers, override) == expected


def _threads_seen(log: Path) -> dict[tuple[str, str], int]:
    seen = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        pid, thread, count = line.split()
        seen[(pid, thread)] = int(count)
    return seen


@contextlib.contextmanager
def _threads_log(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> Iterator[Path]:
    log = tmp_path / name
    log.touch()
    monkeypatch.setenv(THREADS_LOG, str(log))
    yield log


@pytest.mark.parametrize(("workers", "override"), [(1, None), (2, None), (2, 2)])
def test_each_worker_of_a_copy_runs_with_its_share_of_the_cores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 workers: int, override: int | None) -> None:
    cores = len(machine.usable_cpus())
    expected = override if override is not None else max(1, cores // workers)
    with _threads_log(monkeypatch, tmp_path, f"threads-{workers}-{override}.log") as log:
        (report,) = benchmark(ThreadCounting, torch.ones(4, 4), n_models=1, workers_per_model=workers,
                              intra_op_threads=override, **QUICK)
    assert report["status"] == "finished", report["reason"]
    assert report["intra_op_threads"] == expected
    seen = _threads_seen(log)
    assert sorted(t for _, t in seen) == [f"npf-copy0-worker{i}" for i in range(workers)]
    assert set(seen.values()) == {expected}
    assert {pid for pid, _ in seen} != {str(os.getpid())}  # measured in the copy, not here


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_intra_op_threads_must_be_a_positive_whole_number(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^intra_op_threads: must be at least 1 \(a whole number\), got "):
        benchmark(ThreadCounting, torch.ones(2, 2), intra_op_threads=bad, **QUICK)  # type: ignore[arg-type]


def test_intra_op_threads_for_copies_that_are_threads_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^intra_op_threads: applies to model copies in processes of their own"):
        benchmark(Identity, torch.ones(1), intra_op_threads=1, multiprocess=False, duration=0.2)
