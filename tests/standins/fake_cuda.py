"""A stand-in for ``torch.cuda``'s streams and events, and a CUDA backend that runs its models on the CPU.

``FakeCuda`` keeps, per thread, a current stream (``stream(s)`` sets it, as ``torch.cuda.stream`` does)
and records every synchronisation: a stream's own (``Stream.synchronize``) with the thread and the stream,
a device-wide one (``synchronize()``) apart. ``StandinCudaBackend`` is the real CUDA backend with one
"GPU", the fake's streams and events, and models and inputs left on the CPU, so that the runner's CUDA
path runs here. Tests point the registry at it (``"tests.standins.fake_cuda:StandinCudaBackend"``).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from pytest_neuronperf.backends.base import Placement
from pytest_neuronperf.backends.cuda import CudaBackend
from pytest_neuronperf.spec.model_source import ModelSource


class FakeStream:
    def __init__(self, cuda: FakeCuda, device: int | None) -> None:
        self.cuda = cuda
        self.id = next(cuda._ids)
        self.device = device

    def synchronize(self) -> None:
        self.cuda.stream_syncs.append((threading.current_thread().name, self.id))

    def wait_stream(self, other: FakeStream) -> None:
        self.cuda.waits.append((self.id, other.id))

    def __repr__(self) -> str:
        return f"FakeStream({self.id})"


class FakeEvent:
    def __init__(self, cuda: FakeCuda, enable_timing: bool) -> None:
        self.cuda = cuda
        self.enable_timing = enable_timing
        self.stream: FakeStream | None = None

    def record(self, stream: FakeStream | None = None) -> None:
        self.stream = stream if stream is not None else self.cuda.current_stream()
        self.cuda.records.append((threading.current_thread().name, self.stream.id))

    def elapsed_time(self, end: FakeEvent) -> float:
        if not (self.enable_timing and end.enable_timing):
            raise RuntimeError("Both events must be created with argument 'enable_timing=True'")
        if self.stream is None or end.stream is not self.stream:
            raise RuntimeError("events recorded on different streams")
        return self.cuda.elapsed_ms


class FakeCuda:
    """What the CUDA backend uses of ``torch.cuda``, recording what was done on which stream."""

    def __init__(self, elapsed_ms: float = 0.25) -> None:
        self.elapsed_ms = elapsed_ms
        self._ids = itertools.count()
        self._local = threading.local()
        self.default = FakeStream(self, None)
        self.streams: list[FakeStream] = []
        self.stream_syncs: list[tuple[str, int]] = []
        self.device_syncs: list[str] = []
        self.waits: list[tuple[int, int]] = []
        self.records: list[tuple[str, int]] = []
        self.devices_set: list[tuple[str, int]] = []
        # (thread, current stream) of every model call, appended by the models below.
        self.calls: list[tuple[str, int]] = []

    def Stream(self, device: int | None = None, priority: int = 0) -> FakeStream:
        s = FakeStream(self, device)
        self.streams.append(s)
        return s

    def Event(self, enable_timing: bool = False) -> FakeEvent:
        return FakeEvent(self, enable_timing)

    def current_stream(self, device: int | None = None) -> FakeStream:
        current: FakeStream = getattr(self._local, "stream", self.default)
        return current

    @contextlib.contextmanager
    def stream(self, s: FakeStream) -> Iterator[None]:
        before = self.current_stream()
        self._local.stream = s
        try:
            yield
        finally:
            self._local.stream = before

    def set_device(self, index: int) -> None:
        self.devices_set.append((threading.current_thread().name, index))

    def synchronize(self, device: Any = None) -> None:
        self.device_syncs.append(threading.current_thread().name)

    def launch(self) -> None:
        """What a model does on the GPU: queue work on the calling thread's current stream."""
        self.calls.append((threading.current_thread().name, self.current_stream().id))


FAKE = FakeCuda()


def reset(elapsed_ms: float = 0.25) -> FakeCuda:
    """A fresh fake behind the stand-in backend (the registry's instance reads ``FAKE`` at each call)."""
    global FAKE
    FAKE = FakeCuda(elapsed_ms)
    return FAKE


class LaunchingModel:
    """A "GPU" model: each call queues its work on the current stream."""

    def __call__(self, x: Any) -> Any:
        FAKE.launch()
        return x


class StandinCudaBackend(CudaBackend):
    """The CUDA backend with one visible GPU and :data:`FAKE` for ``torch.cuda``; models stay on the CPU."""

    def __init__(self) -> None:
        super().__init__(device_count=lambda: 1)

    def _cuda(self) -> Any:
        return FAKE

    def load_model(self, source: ModelSource, placement: Placement) -> Callable[..., Any]:
        model: Callable[..., Any] = source.instantiate()
        return model

    def prepare_inputs(self, inputs: tuple[Any, ...], placement: Placement) -> tuple[Any, ...]:
        return inputs
