"""One model copy: load, warm up, wait for the window, drive worker threads, report back.

This module is the target of every model-copy process (and of the threads
that stand in for processes with ``multiprocess=False``). It talks to the
orchestrator over one duplex connection with the messages of
:mod:`pytest_neuronperf.runner.protocol`:

    copy -> parent   Ready(ReadyInfo) | Done(CopyResult) | Failed(CopyFailure)
    parent -> copy   Start(start_ns, stop_ns) | Abort()
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import select
import signal
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NoReturn, Protocol

from pytest_neuronperf._util.processes import group_members, is_running
from pytest_neuronperf.backends.base import Placement, WorkerTiming, worker_threads
from pytest_neuronperf.runner.protocol import CopyFailure, CopyResult, Done, Failed, Ready, ReadyInfo, Start
from pytest_neuronperf.runner.recorder import CHUNK, Recorder, StreamStats
from pytest_neuronperf.runner.tokens import Driver, TokenRecorder
from pytest_neuronperf.spec.generation import Generation
from pytest_neuronperf.spec.inputs import ModelInput, as_call
from pytest_neuronperf.spec.matrix import RunConfig

clock = time.monotonic_ns  # CLOCK_MONOTONIC: one clock for every process on the machine

# The backend's hook that moves one input tuple to the device, and one model call: (args, kwargs).
Prepare = Callable[[tuple[Any, ...], Placement], tuple[Any, ...]]
Call = tuple[tuple[Any, ...], dict[str, Any]]


class Connection(Protocol):
    def send(self, obj: Any) -> None: ...
    def recv(self) -> Any: ...
    def close(self) -> None: ...


@dataclass
class CopyJob:
    backend_name: str
    placement: Placement
    run: RunConfig
    config: dict[str, Any]
    model_input: ModelInput
    preprocess_fn: Callable[..., Any] | None
    postprocess_fn: Callable[..., Any] | None
    env_setup_fn: Callable[..., Any] | None
    setup_fn: Callable[..., Any] | None
    warmup: int
    warmup_duration_s: float
    duration_s: float
    bin_ns: int
    keep_raw: bool
    loop_dataset: bool
    environ: dict[str, str] | None = None
    in_process: bool = False
    compile_mode: str | None = None
    # A streaming (generative) model: how its requests are made; None for other models.
    generation: Generation | None = None
    # torch intra-op threads per worker as the caller asked (None: the copy's cores shared out among its
    # workers, see pytest_neuronperf.backends.base.worker_threads).
    intra_op_threads: int | None = None


class _Phase:
    """Remembers what the copy was doing, so a failure names its phase."""

    def __init__(self) -> None:
        self.name = "starting"


# The exit status of a copy that ended itself because its orchestrator (or forkserver) was gone.
ORPHANED_EXIT_CODE = 70
_POLL_S = 0.2


def run_copy(conn: Connection, job: CopyJob, orchestrator_pid: int | None = None) -> None:
    """Entry point of a model copy (process target, or thread target in-process).

    ``orchestrator_pid``: the process that started this copy; a process copy ends itself
    as soon as that process, or the forkserver that forked it, is gone (see
    :func:`watch_orchestrator`).
    """
    if not job.in_process:
        # A process group of its own: whatever the model starts (helper processes, servers)
        # joins it, so the orchestrator can stop all of it with the copy (os.killpg), even after
        # the copy has exited; and a Ctrl-C at the terminal reaches pytest, which stops the copies,
        # not the copies themselves halfway through a message.
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        with contextlib.suppress(OSError, ValueError):
            # Out of the terminal's foreground group, a write to the terminal under `stty tostop`
            # would stop the copy (SIGTTOU); ignored, the write goes through as it did before.
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        if orchestrator_pid is not None:
            watch_orchestrator(orchestrator_pid, os.getppid())
    phase = _Phase()
    lingering: list[str] = []
    try:
        lingering = _run_copy(conn, job, phase)
    except BaseException as exc:  # report everything, including SystemExit from user code
        failure = CopyFailure(
            copy_index=job.placement.copy_index,
            phase=phase.name,
            error_type=type(exc).__name__,
            message=_exception_text(exc),
            traceback=_traceback_text(exc),
        )
        with contextlib.suppress(Exception):
            conn.send(Failed(failure))
        if not job.in_process:
            # Worker threads may still be running user code; a process copy ends here.
            os._exit(1)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    if lingering and not job.in_process:
        # Its results are sent; exiting normally would wait for the model's non-daemon threads
        # (threading._shutdown), which may never end. The orchestrator has their names and says so.
        _flush_std_streams()
        os._exit(0)


def run_redirected_copy(conn: Connection, redirect: tuple[str, str], orchestrator_pid: int | None = None) -> None:
    """Entry point of a copy that measures the user's code as it was at another revision.

    The job arrives as the first message on the pipe, not with the process: reading it imports the
    test's pre/post and setup functions, which must come from the checkout, so the imports are
    redirected first (:func:`pytest_neuronperf.reference.redirect.install`).
    """
    from pytest_neuronperf.reference.redirect import install

    try:
        install(*redirect)
        job: CopyJob = conn.recv()
    except BaseException as exc:
        failure = CopyFailure(copy_index=-1, phase="loading the reference revision's code",
                              error_type=type(exc).__name__, message=_exception_text(exc),
                              traceback=_traceback_text(exc))
        with contextlib.suppress(Exception):
            conn.send(Failed(failure))
        os._exit(1)
    run_copy(conn, job, orchestrator_pid)


def _exception_text(exc: BaseException) -> str:
    """``str(exc)``, or a note saying that it raised: a broken ``__str__`` must not hide the error."""
    try:
        return str(exc)
    except BaseException as inner:  # whatever the user's __str__ raises
        return f"<str() of the exception raised {type(inner).__name__}>"


def _traceback_text(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(exc))
    except BaseException:  # format_exception calls the exception's own methods too
        frames = "".join(traceback.format_tb(exc.__traceback__))
        return f"Traceback (most recent call last):\n{frames}{type(exc).__name__}: {_exception_text(exc)}\n"


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            if stream is not None:
                stream.flush()


def _model_threads() -> list[str]:
    """Names of the non-daemon threads still running besides the main thread: the model's own."""
    main = threading.main_thread()
    return sorted(t.name for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive())


def watch_orchestrator(pid: int, *others: int) -> threading.Thread:
    """Start a daemon thread that ends this process (``os._exit``) once ``pid`` or one of ``others`` exits.

    A copy must not outlive the benchmark that started it, however that benchmark ended
    (SIGKILL, the OOM killer, a crash). Nothing else tells it reliably: a copy's parent is
    the forkserver, which stays up while any copy holds its pipe, so neither a parent-death
    signal nor a change of parent fires; and a copy in its timed window (or stuck in the
    model) is not reading the pipe to the orchestrator. ``others`` is the forkserver: once it
    is gone the orchestrator can no longer learn the copy's exit status or stop it by pid, and
    a copy left running would load the cores while the next configuration measures. The
    thread blocks on pidfds, which costs nothing while the benchmark runs, and polls where
    pidfds are unavailable. A copy that leads its own process group takes the processes the
    model started with it.
    """
    pids = [p for p in dict.fromkeys((pid, *others)) if p > 1]
    thread = threading.Thread(target=_wait_for_exit, args=(pids,), name="npf-orchestrator-watchdog",
                              daemon=True)
    thread.start()
    return thread


def _wait_for_exit(pids: Iterable[int]) -> None:
    pids = list(pids)
    fds = []
    try:
        for pid in pids:
            fds.append(os.pidfd_open(pid))
    except ProcessLookupError:
        _orphaned()
    except (AttributeError, OSError):  # no pidfd_open here (old kernel, other OS, seccomp)
        while all(_is_running(p) for p in pids):
            time.sleep(_POLL_S)
        _orphaned()
    select.select(fds, [], [])  # a pidfd becomes readable when its process exits
    _orphaned()


def _is_running(pid: int) -> bool:
    # A killed orchestrator stays a zombie until its own parent reaps it: that counts as gone.
    return is_running(pid)


def _orphaned() -> NoReturn:
    """End what the model started (this copy's process group), then this copy."""
    me = os.getpid()
    if os.getpgrp() == me:
        with contextlib.suppress(OSError):
            members = group_members(me)
            if members is None:
                os.killpg(me, signal.SIGKILL)  # no /proc to list them: the whole group, this copy too
            for pid in sorted(members or ()):
                if pid != me:
                    with contextlib.suppress(OSError):
                        os.kill(pid, signal.SIGKILL)
    os._exit(ORPHANED_EXIT_CODE)


def _run_copy(conn: Connection, job: CopyJob, phase: _Phase) -> list[str]:
    """Load, warm up, run the window and send the results; returns the model's threads still running."""
    backend = _backend(job.backend_name)
    copy_id = job.placement.copy_index
    if not job.in_process:
        if job.environ is not None:
            # A forkserver child inherits the server's environment, not the caller's current one.
            os.environ.clear()
            os.environ.update(job.environ)
        phase.name = "device setup"
        backend.enter_copy(copy_placement(job))
    if job.env_setup_fn is not None:
        phase.name = "env_setup_fn"
        job.env_setup_fn(copy_id, dict(job.config))
    with _no_grad():
        phase.name = "model load"
        t = clock()
        model = backend.load_model(job.run.model.source, job.placement)
        load_ns = clock() - t
        if job.setup_fn is not None:
            phase.name = "setup_fn"
            job.setup_fn(copy_id, dict(job.config), model)
        phase.name = "input preparation"
        args: tuple[Any, ...] | None = None
        kwargs: dict[str, Any] = {}
        if job.model_input.args is not None:
            args, kwargs = prepare_call(backend.prepare_inputs, job.model_input.args, job.model_input.kwargs,
                                        job.placement)
        timings = [worker_timing(backend, job.placement, i) for i in range(job.run.workers_per_model)]
        compile_ns = 0
        compile_threads: set[str] = set()
        if job.compile_mode is not None:
            phase.name = f"torch.compile (compile_mode={job.compile_mode!r})"
            # On the first worker's stream: what the compiler records there is what that worker replays.
            model, compile_ns, compile_threads = _compile(job, model, args, kwargs, timings[0],
                                                          backend.prepare_inputs)
        driver = None
        if job.generation is not None:
            from pytest_neuronperf.runner.tokens import driver_for

            driver = driver_for(model, job.generation)

    workers = [
        _Worker(i, job, model, args, kwargs, timings[i], backend.prepare_inputs, driver)
        for i in range(job.run.workers_per_model)
    ]
    shared = _Shared(job, len(workers))
    phase.name = "warm-up"
    for w in workers:
        w.thread = threading.Thread(target=w.main, args=(shared,), name=f"npf-copy{copy_id}-worker{w.index}",
                                    daemon=True)
        w.thread.start()
    shared.wait_ready()
    shared.raise_if_failed()
    conn.send(Ready(ReadyInfo(
        pid=os.getpid(), load_ns=load_ns,
        warmup_count=sum(w.warmup_count for w in workers), warmup_ns=sum(w.warmup_ns for w in workers),
    )))
    lingering: list[str] = []
    while True:
        message = conn.recv()
        if not isinstance(message, Start):
            shared.abort()
            return []
        phase.name = "timed run"
        window = _window_of(message, job)
        sampler = _copy_telemetry(backend, job, window)
        shared.go(window)
        shared.wait_done()
        if sampler is not None:
            sampler.stop()
        shared.raise_if_failed()
        stats = StreamStats()
        for w in workers:
            assert w.recorder is not None
            stats.merge(w.recorder.stats)
        if window.arrivals is not None:
            stats.offered = len(window.arrivals)
            stats.dropped = window.admission.dropped if window.admission is not None else 0
            stats.unfinished = max(0, stats.offered - stats.dropped - stats.e2e.count)
        if message.last:
            shared.abort()
            lingering = [] if job.in_process else [t for t in _model_threads() if t not in compile_threads]
        conn.send(Done(CopyResult(
            copy_index=copy_id, cores=job.placement.cores, pid=os.getpid(), load_ns=load_ns,
            warmup_count=sum(w.warmup_count for w in workers), warmup_ns=sum(w.warmup_ns for w in workers),
            stats=stats, worker_counts=[w.count for w in workers], exhausted=shared.exhausted,
            lingering_threads=lingering, compile_ns=compile_ns,
            telemetry={} if sampler is None else {**sampler.fields(stats.e2e.count * job.model_input.batch_size),
                                                  "note": sampler.note},
        )))
        if message.last:
            return lingering
        shared.exhausted = False


def _keep_request(rec: Recorder, n: int, t0: int, t1: int, t2: int, t3: int, device_ns: int | None,
                  arrival: int | None = None, split: bool = True) -> int:
    """Record one finished request (started at t0, the model from t1 to t2, done at t3); returns the count.

    ``split`` False: the model call was the whole request, so only its ends are kept (the recorder then
    takes the call's time as the whole request's).
    """
    if arrival is not None:
        rec.arrival.append(arrival)
    rec.start.append(t0)
    if split:
        rec.infer_start.append(t1)
        rec.infer_end.append(t2)
    rec.end.append(t3)
    if device_ns is not None:
        rec.device.append(device_ns)
    n += 1
    if not n % CHUNK:
        rec.flush()
    return n


def _copy_telemetry(backend: Any, job: CopyJob, window: _Window) -> Any:
    """The backend's sampler of this copy's device, started for the window (None: the backend has none)."""
    factory = getattr(backend, "copy_telemetry", None)
    if factory is None:
        return None
    seconds = (window.stop_ns - window.start_ns) / 1e9
    sampler = factory(job.placement, max(0.02, min(0.1, seconds / 10)))
    sampler.start()
    return sampler


# How long before a request's arrival a waiting worker stops sleeping and spins: sleep overshoots
# by tens of microseconds, a spin on the clock does not.
SPIN_NS = 200_000


@dataclass
class _Window:
    """One timed window of a copy, as its workers see it."""

    generation: int
    start_ns: int
    stop_ns: int
    bin_ns: int
    # Open-loop load: this copy's arrivals (absolute ns), and when draining them ends.
    arrivals: list[int] | None = None
    drain_stop_ns: int = 0
    admission: _Admission | None = None
    next_request: Callable[[], int] = field(default_factory=lambda: itertools.count().__next__)

    @property
    def n_bins(self) -> int:
        return max(1, -(-(self.stop_ns - self.start_ns) // self.bin_ns))


_generations = itertools.count(1)


def _window_of(message: Start, job: CopyJob) -> _Window:
    bin_ns = message.bin_ns or job.bin_ns
    window = _Window(next(_generations), message.start_ns, message.stop_ns, bin_ns)
    load = message.load
    if load is None:
        return window
    from pytest_neuronperf.spec.load import arrival_offsets_ns, cap_of_copy, share_of_copy

    offsets = arrival_offsets_ns(load, (message.stop_ns - message.start_ns) / 1e9, message.round_index)
    n_copies = max(1, job.run.n_models)
    mine = share_of_copy(offsets, job.placement.copy_index, n_copies) + message.start_ns
    window.arrivals = mine.tolist()
    window.drain_stop_ns = max(message.drain_stop_ns, message.stop_ns)
    cap = cap_of_copy(load.max_concurrency, job.placement.copy_index, n_copies)
    window.admission = _Admission(cap) if cap is not None else None
    return window


class _Admission:
    """The concurrency cap of open-loop load: an arriving request finds ``cap`` in the system and is dropped.

    In the system at a request's arrival: the requests admitted before it that had not finished by
    then (still in service, waiting, or finished later than that arrival).
    """

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.dropped = 0
        self._lock = threading.Lock()
        self._admitted = 0
        self._retired = 0
        self._ends: list[int] = []

    def admit(self, arrival_ns: int) -> bool:
        with self._lock:
            ends = self._ends
            while ends and ends[0] <= arrival_ns:
                heapq.heappop(ends)
                self._retired += 1
            if self._admitted - self._retired >= self.cap:
                self.dropped += 1
                return False
            self._admitted += 1
            return True

    def finished(self, end_ns: int) -> None:
        with self._lock:
            heapq.heappush(self._ends, end_ns)


def wait_until(t_ns: int) -> None:
    """Return at ``t_ns`` (``clock``): sleep until just before it, then spin."""
    while True:
        left = t_ns - clock()
        if left <= 0:
            return
        if left > SPIN_NS:
            time.sleep((left - SPIN_NS) / 1e9)
            continue
        while clock() < t_ns:
            pass
        return


def copy_placement(job: CopyJob) -> Placement:
    """The placement a process copy applies: its threads are each worker's intra-op threads."""
    threads = worker_threads(job.placement.threads, job.run.workers_per_model, job.intra_op_threads)
    return replace(job.placement, threads=threads)


class _SyncOnly:
    """The timing of a backend that offers only the former ``synchronizer(placement)`` hook."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync

    def enter(self) -> AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def begin(self) -> None:
        pass

    def end(self) -> int | None:
        self._sync()
        return None


def worker_timing(backend: Any, placement: Placement, index: int) -> WorkerTiming | None:
    """Worker ``index``'s device timing from ``backend``; a backend written for the former protocol
    (a ``synchronizer`` and no ``worker_timing``) still has its calls waited for."""
    hook = getattr(backend, "worker_timing", None)
    if hook is not None:
        timing: WorkerTiming | None = hook(placement, index)
        return timing
    legacy = getattr(backend, "synchronizer", None)
    sync = legacy(placement) if legacy is not None else None
    return None if sync is None else _SyncOnly(sync)


def _entered(timing: WorkerTiming | None) -> AbstractContextManager[Any]:
    return contextlib.nullcontext() if timing is None else timing.enter()


def prepare_call(prepare: Prepare, args: tuple[Any, ...], kwargs: dict[str, Any], placement: Placement) -> Call:
    """Move one model call's arguments to the device; keyword values go through the same tuple hook."""
    args = prepare(args, placement)
    if kwargs:
        kwargs = dict(zip(kwargs, prepare(tuple(kwargs.values()), placement), strict=True))
    return args, kwargs


def call_input(job: CopyJob, args: tuple[Any, ...] | None, kwargs: dict[str, Any], item: int, n_items: int,
               prepare: Prepare) -> Call:
    """The model call for a fixed input (after preprocess_fn), or for dataset item ``item``."""
    pre = job.preprocess_fn
    if args is not None:
        return (args, kwargs) if pre is None else as_call(pre(*args, **kwargs))
    x = job.model_input.dataset[item % n_items]
    a, k = as_call(pre(x) if pre is not None else x)
    return prepare_call(prepare, a, k, job.placement)


def with_list_hint(exc: BaseException, model_input: ModelInput) -> BaseException:
    """The model's error, with a hint when a list of tensors was probably meant as one call's arguments."""
    if not (isinstance(exc, TypeError) and model_input.listed > 1 and "required positional argument" in str(exc)):
        return exc
    hint = TypeError(
        f"{_exception_text(exc)}. inputs is a list: a list holds one input per batch size, so each element "
        f"is one batch size's input (here {model_input.listed} inputs, each a call of the model on its own); "
        "for several positional arguments pass a tuple, inputs=(a, b)"
    )
    hint.__cause__ = exc
    return hint


def _compile(job: CopyJob, model: Any, args: tuple[Any, ...] | None, kwargs: dict[str, Any],
             timing: WorkerTiming | None, prepare: Prepare) -> tuple[Any, int, set[str]]:
    """torch.compile the model and call it until stable.

    Returns the compiled model, the nanoseconds all of that took, and the names of the threads the
    compiler started (its idle worker pool, which is not the model's and ends with the process).
    """
    from pytest_neuronperf.runner.compiled import compile_model, settle, stop_compile_workers

    before = {t.ident for t in threading.enumerate()}
    dataset = job.model_input.dataset
    n_items = len(dataset) if dataset is not None else 0
    t0 = clock()
    compiled = compile_model(model, job.compile_mode or "default")

    def once(i: int) -> None:
        # Dataset items in turn: inputs of other shapes recompile now rather than in the window.
        a, k = call_input(job, args, kwargs, i, n_items, prepare)
        if timing is None:
            compiled(*a, **k)
            return
        timing.begin()
        compiled(*a, **k)
        timing.end()

    try:
        with _entered(timing):
            settle(once)
    except BaseException as exc:
        hinted = with_list_hint(exc, job.model_input)
        if hinted is exc:
            raise
        raise hinted from exc
    elapsed = clock() - t0
    stop_compile_workers()
    started = {t.name for t in threading.enumerate() if t.ident not in before and not t.daemon}
    return compiled, elapsed, started


def _backend(name: str) -> Any:
    from pytest_neuronperf.backends.registry import get_backend

    return get_backend(name)


@contextlib.contextmanager
def _no_grad() -> Iterator[None]:
    """torch.inference_mode when torch is in use; it is thread-local, so every worker enters it too."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    with torch.inference_mode():
        yield


class _Shared:
    """Synchronisation between a copy's main thread and its workers."""

    def __init__(self, job: CopyJob, n_workers: int) -> None:
        self.job = job
        self.n_workers = n_workers
        self._lock = threading.Lock()
        self._ready = threading.Semaphore(0)
        self._done = threading.Semaphore(0)
        self._windows = threading.Condition()
        self.window: _Window | None = None
        self.failure: BaseException | None = None
        self.aborted = False
        self.exhausted = False
        dataset = job.model_input.dataset
        self.n_items = len(dataset) if dataset is not None else 0
        self.next_item = itertools.count().__next__  # atomic under the GIL: one shared cursor per copy
        self.next_request = itertools.count().__next__  # a streaming model's requests, for their lengths

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.failure is None:
                self.failure = exc
        # Wake the main thread at once; it reports and ends the copy.
        for _ in range(self.n_workers):
            self._ready.release()
            self._done.release()

    def raise_if_failed(self) -> None:
        if self.failure is not None:
            raise self.failure

    def wait_ready(self) -> None:
        for _ in range(self.n_workers):
            self._ready.acquire()
            if self.failure is not None:
                return

    def wait_done(self) -> None:
        for _ in range(self.n_workers):
            self._done.acquire()
            if self.failure is not None:
                return

    def go(self, window: _Window) -> None:
        with self._windows:
            self.window = window
            self._windows.notify_all()

    def abort(self) -> None:
        with self._windows:
            self.aborted = True
            self._windows.notify_all()

    def next_window(self, seen: int) -> _Window | None:
        """The window after generation ``seen``, once it is given; None when the copy ends instead."""
        with self._windows:
            while not self.aborted and (self.window is None or self.window.generation <= seen):
                self._windows.wait()
            return None if self.aborted else self.window


class _Worker:
    def __init__(self, index: int, job: CopyJob, model: Callable[..., Any], args: tuple[Any, ...] | None,
                 kwargs: dict[str, Any], timing: WorkerTiming | None, prepare: Prepare,
                 driver: Driver | None = None) -> None:
        self.index = index
        self.driver = driver
        self.tokens: TokenRecorder | None = None
        self._prompts: dict[int, Call] = {}
        self.job = job
        self.model = model
        self.args = args
        self.kwargs = kwargs
        self.timing = timing
        self.prepare = prepare
        self.thread: threading.Thread | None = None
        self.recorder: Recorder | None = None
        self.warmup_count = 0
        self.warmup_ns = 0
        self.count = 0

    def main(self, shared: _Shared) -> None:
        try:
            with _no_grad(), _entered(self.timing):
                self._warm_up(shared)
                shared._ready.release()
                seen = 0
                while (window := shared.next_window(seen)) is not None:
                    seen = window.generation
                    self._run_window(shared, window)
                    shared._done.release()
        except BaseException as exc:
            shared.fail(with_list_hint(exc, self.job.model_input))

    def _run_window(self, shared: _Shared, window: _Window) -> None:
        job = self.job
        open_loop = window.arrivals is not None
        self.recorder = Recorder(window.start_ns, window.bin_ns, window.n_bins, job.keep_raw,
                                 window.stop_ns if open_loop else None)
        if self.driver is not None:
            from pytest_neuronperf.phases import set_sink

            self.tokens = TokenRecorder(window.start_ns, window.bin_ns, window.n_bins, window.stop_ns)
            set_sink(self.tokens.phase)
        try:
            if open_loop:
                self.count = self._loop_open(shared, self.recorder, window)
            else:
                while clock() < window.start_ns:
                    time.sleep(min(0.001, max(0.0, (window.start_ns - clock()) / 1e9)))
                if self.driver is not None:
                    self.count = self._loop_stream(shared, self.recorder, window.stop_ns)
                elif job.model_input.is_dataset:
                    self.count = self._loop_dataset(shared, self.recorder, window.stop_ns)
                else:
                    self.count = self._loop_fixed(self.recorder, window.stop_ns)
        finally:
            if self.driver is not None:
                from pytest_neuronperf.phases import set_sink

                set_sink(None)
        stats = self.recorder.finish()
        if self.tokens is not None:
            stats.tokens = self.tokens.finish()

    def _one(self, shared: _Shared) -> int:
        """One untimed-window inference (warm-up); returns its end-to-end nanoseconds."""
        t0 = clock()
        args, kwargs = self._fetch(shared, warmup=True)
        timing = self.timing
        if timing is not None:
            timing.begin()
        if self.driver is not None:
            request = shared.next_request()
            args, kwargs = self._prompt(args, kwargs, request)
            self.driver.run(args, kwargs, request, lambda n: False)
            if timing is not None:
                timing.end()
            return clock() - t0
        y = self.model(*args, **kwargs)
        if timing is not None:
            timing.end()
        if self.warmup_count == 0 and isinstance(y, types.GeneratorType):
            # A generator runs nothing until it is read: its "inferences" would time only its creation.
            raise TypeError("the model's call returned a generator, which does no work until it is read, so only "
                            "its creation would be timed; a model that streams its output (a generative model) "
                            "needs streaming=True, and the runner reads and times each token")
        if self.job.postprocess_fn is not None:
            self.job.postprocess_fn(y)
        return clock() - t0

    def _warm_up(self, shared: _Shared) -> None:
        job = self.job
        deadline = clock() + int(job.warmup_duration_s * 1e9)
        while self.warmup_count < job.warmup or clock() < deadline:
            self.warmup_ns += self._one(shared)
            self.warmup_count += 1

    def _fetch(self, shared: _Shared, warmup: bool = False) -> tuple[tuple[Any, ...], dict[str, Any]]:
        i = 0 if warmup or self.args is not None else shared.next_item()
        return call_input(self.job, self.args, self.kwargs, i, shared.n_items, self.prepare)

    def _loop_fixed(self, rec: Recorder, stop_ns: int) -> int:
        if self.job.preprocess_fn is None and self.job.postprocess_fn is None:
            return self._loop_bare(rec, stop_ns)
        model, args, kwargs, timing = self.model, self.args, self.kwargs, self.timing
        assert args is not None
        pre, post = self.job.preprocess_fn, self.job.postprocess_fn
        a0, a1, a2, a3 = rec.start.append, rec.infer_start.append, rec.infer_end.append, rec.end.append
        ad = rec.device.append
        flush = rec.flush
        mask = CHUNK - 1
        n = 0
        d: int | None = None
        while True:
            t0 = clock()
            a, k = (args, kwargs) if pre is None else as_call(pre(*args, **kwargs))
            t1 = clock()
            if timing is not None:
                timing.begin()
            y = model(*a, **k)
            if timing is not None:
                d = timing.end()
            t2 = clock()
            if post is not None:
                post(y)
            t3 = clock()
            if t3 > stop_ns:
                return n
            a0(t0)
            a1(t1)
            a2(t2)
            a3(t3)
            if d is not None:
                ad(d)
            n += 1
            if not n & mask:
                flush()

    def _loop_bare(self, rec: Recorder, stop_ns: int) -> int:
        # The hot loop of the common case: the model call is the whole inference. Two clock
        # reads and two list appends per call, a vectorised fold every CHUNK calls.
        model, args, timing = self.model, self.args, self.timing
        assert args is not None
        if self.kwargs:
            model = partial(model, **self.kwargs)
        a0, a3 = rec.start.append, rec.end.append
        flush = rec.flush
        mask = CHUNK - 1
        n = 0
        if timing is None:
            while True:
                t0 = clock()
                model(*args)
                t3 = clock()
                if t3 > stop_ns:
                    return n
                a0(t0)
                a3(t3)
                n += 1
                if not n & mask:
                    flush()
        begin, end, ad = timing.begin, timing.end, rec.device.append
        while True:
            t0 = clock()
            begin()
            model(*args)
            d = end()
            t3 = clock()
            if t3 > stop_ns:
                return n
            a0(t0)
            a3(t3)
            if d is not None:
                ad(d)
            n += 1
            if not n & mask:
                flush()

    def _prompt(self, args: tuple[Any, ...], kwargs: dict[str, Any], request: int) -> Call:
        """The call of a streaming request: its inputs, or the prompt the runner builds (input_tokens)."""
        assert self.driver is not None
        length = self.driver.generation.input_of(request)
        if length is None:
            return args, kwargs
        if length not in self._prompts:
            prompt = self.driver.prompt(request, self.job.model_input.batch_size)
            assert prompt is not None
            self._prompts[length] = prepare_call(self.prepare, (), prompt, self.job.placement)
        return self._prompts[length]

    def _stream(self, shared: _Shared, ref_ns: int, stop_ns: int, item: int
                ) -> tuple[int, int, int, bool, int | None]:
        """One streaming request; returns (start, model start, model end, finished) stamps and its device time.

        ``ref_ns`` is what its time to first token counts from; the stream is cut at ``stop_ns``.
        """
        assert self.driver is not None and self.tokens is not None
        t0 = clock()
        request = shared.next_request()
        if self.args is not None and self.job.preprocess_fn is None:
            a, k = self.args, self.kwargs
        else:
            a, k = call_input(self.job, self.args, self.kwargs, item, shared.n_items, self.prepare)
        a, k = self._prompt(a, k, request)
        times: list[int] = []
        counts: list[int] = []
        stamp, count = times.append, counts.append
        cut = False

        def on_token(n: int) -> bool:
            nonlocal cut
            t = clock()
            stamp(t)
            count(n)
            if t > stop_ns:
                cut = True
            return cut

        timing = self.timing
        d: int | None = None
        t1 = clock()
        if timing is not None:
            timing.begin()
        self.driver.run(a, k, request, on_token)
        if timing is not None:
            d = timing.end()
        t2 = clock()
        finished = not cut and t2 <= stop_ns
        from pytest_neuronperf.runner.tokens import prompt_tokens

        self.tokens.request(ref_ns if ref_ns else t0, times, counts, t2 if finished else None,
                            self.driver.generation.output_of(request), prompt_tokens(a, k))
        return t0, t1, t2, finished and bool(times), d

    def _loop_stream(self, shared: _Shared, rec: Recorder, stop_ns: int) -> int:
        """Closed loop of a streaming model: each worker's next request as soon as its last one ended."""
        dataset = self.job.model_input.is_dataset
        n = 0
        while clock() < stop_ns:
            item = 0
            if dataset:
                item = shared.next_item()
                if item >= shared.n_items:
                    if not self.job.loop_dataset:
                        shared.exhausted = True
                        return n
                    item %= shared.n_items
            t0, t1, t2, finished, d = self._stream(shared, 0, stop_ns, item)
            if finished:
                n = _keep_request(rec, n, t0, t1, t2, t2, d)
        return n

    def _loop_open(self, shared: _Shared, rec: Recorder, window: _Window) -> int:
        """Serve this copy's arrivals: the next one not taken by another worker, at its time or at once if late."""
        job = self.job
        assert window.arrivals is not None
        arrivals, take, n_arrivals = window.arrivals, window.next_request, len(window.arrivals)
        admission, drain_stop = window.admission, window.drain_stop_ns
        model, timing, args, kwargs = self.model, self.timing, self.args, self.kwargs
        pre, post = job.preprocess_fn, job.postprocess_fn
        split = pre is not None or post is not None or args is None
        n_items = shared.n_items
        n = 0
        while True:
            i = take()
            if i >= n_arrivals:
                return n
            arrival = arrivals[i]
            if clock() < arrival:
                wait_until(arrival)
            elif clock() > drain_stop:
                return n
            if admission is not None and not admission.admit(arrival):
                continue
            if self.driver is not None:
                t0, t1, t3, finished, d = self._stream(shared, arrival, drain_stop,
                                                       shared.next_item() % n_items if args is None else 0)
                if admission is not None:
                    admission.finished(t3)
                if not finished:
                    if t3 > drain_stop:
                        return n
                    continue
                n = _keep_request(rec, n, t0, t1, t3, t3, d, arrival)
                continue
            t0 = clock()
            if args is not None and pre is None:
                a, k = args, kwargs
            else:
                item = shared.next_item() % n_items if args is None else 0
                a, k = call_input(job, args, kwargs, item, n_items, self.prepare)
            t1 = clock()
            d = None
            if timing is not None:
                timing.begin()
            y = model(*a, **k)
            if timing is not None:
                d = timing.end()
            t2 = clock()
            if post is not None:
                post(y)
            t3 = clock()
            if admission is not None:
                admission.finished(t3)
            if t3 > drain_stop:
                return n
            n = _keep_request(rec, n, t0, t1, t2, t3, d, arrival, split)

    def _loop_dataset(self, shared: _Shared, rec: Recorder, stop_ns: int) -> int:
        job = self.job
        model, timing = self.model, self.timing
        pre, post, prepare, placement = job.preprocess_fn, job.postprocess_fn, self.prepare, job.placement
        dataset, n_items, loop = job.model_input.dataset, shared.n_items, job.loop_dataset
        n = 0
        while True:
            t0 = clock()
            i = shared.next_item()
            if i >= n_items:
                if not loop:
                    shared.exhausted = True
                    return n
                i %= n_items
            item = dataset[i]
            a, k = prepare_call(prepare, *as_call(pre(item) if pre is not None else item), placement)
            t1 = clock()
            d = None
            if timing is not None:
                timing.begin()
            y = model(*a, **k)
            if timing is not None:
                d = timing.end()
            t2 = clock()
            if post is not None:
                post(y)
            t3 = clock()
            if t3 > stop_ns:
                return n
            n = _keep_request(rec, n, t0, t1, t2, t3, d)
