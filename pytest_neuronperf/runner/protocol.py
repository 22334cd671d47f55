"""The messages a model copy and its orchestrator exchange over their duplex connection.

    copy -> parent   Ready(info) | Done(result) | Failed(failure)
    parent -> copy   Start(start_ns, stop_ns) | Abort()

A copy sends ``Ready`` once it has loaded and warmed up, then waits for
``Start`` (anything else ends it without a timed run) and sends ``Done`` when
its window has closed; after a ``Start`` that is not the ``last`` it waits, warm,
for another ``Start`` (the next window of a capacity search) or the ``Abort``
that ends it. ``Failed`` replaces whichever message was due when the copy raised.
Each message class has a ``name``; the orchestrator hands a message named ``x``
to its ``copy_x`` method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from pytest_neuronperf.runner.recorder import StreamStats
from pytest_neuronperf.spec.load import OpenLoad


@dataclass
class ReadyInfo:
    pid: int
    load_ns: int
    warmup_count: int
    warmup_ns: int


@dataclass
class CopyResult:
    copy_index: int
    cores: tuple[int, ...]
    pid: int
    load_ns: int
    warmup_count: int
    warmup_ns: int
    stats: StreamStats
    worker_counts: list[int] = field(default_factory=list)
    exhausted: bool = False
    # Non-daemon threads the model left running when the window closed; the copy exits without them.
    lingering_threads: list[str] = field(default_factory=list)
    # torch.compile and the calls until the compiled graph was stable (compile_mode), before the warm-up.
    compile_ns: int = 0
    # What the copy's device said during the window (NVML on a GPU), and a note when it could not say;
    # empty without telemetry.
    telemetry: dict[str, float | str | None] = field(default_factory=dict)


@dataclass
class CopyFailure:
    copy_index: int
    phase: str
    error_type: str
    message: str
    traceback: str


# -- copy -> parent -----------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    """Loaded and warmed up; waiting for the window."""

    name: ClassVar[str] = "ready"
    info: ReadyInfo


@dataclass(frozen=True)
class Done:
    """The window has closed; the copy's measurements."""

    name: ClassVar[str] = "done"
    result: CopyResult


@dataclass(frozen=True)
class Failed:
    """The copy raised (in its own code, the model's or a user function); it ends after sending this."""

    name: ClassVar[str] = "failed"
    failure: CopyFailure


# -- parent -> copy -----------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Run the timed window [start_ns, stop_ns] (``time.monotonic_ns``, shared by every copy).

    ``load``: open-loop load for this window (None: closed loop), its arrivals drawn for
    ``round_index``; requests that arrived in the window may finish until ``drain_stop_ns``.
    ``bin_ns``: this window's throughput bins (0: the job's). ``last``: after this window's ``Done``
    the copy ends; otherwise it waits, warm, for the next ``Start``.
    """

    name: ClassVar[str] = "start"
    start_ns: int
    stop_ns: int
    load: OpenLoad | None = None
    round_index: int = 0
    drain_stop_ns: int = 0
    bin_ns: int = 0
    last: bool = True


@dataclass(frozen=True)
class Abort:
    """End without a timed run."""

    name: ClassVar[str] = "abort"


CopyMessage = Ready | Done | Failed
ParentMessage = Start | Abort
