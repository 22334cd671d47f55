"""Start the model copies of one configuration, open the timed window, collect the results.

Start method: model copies are started from a *forkserver* that has already
imported torch, this package and the model's own modules (:mod:`pytest_neuronperf.runner.launch`).
The server is a fresh interpreter started for the purpose, so it never holds a
device runtime the caller initialised (forking such a process is what makes the
Neuron runtime fail with NRT_STATE_CHILD), and forking from it costs
milliseconds, where ``spawn`` re-imports torch in every copy of every
configuration (about a second each on a 2-core machine;
``benchmarks/start_methods.py`` measures the three methods).
``multiinterpreter=True`` uses ``spawn``: a fresh interpreter per copy that
imports the model by module path and receives its job over a pipe.
"""

from __future__ import annotations

import contextlib
import os
import reprlib
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Pipe, wait
from multiprocessing.context import BaseContext
from typing import Any, NoReturn

from pytest_neuronperf._util.log import logger
from pytest_neuronperf._util.processes import GroupLeftovers, process_state, stop_groups, stop_processes
from pytest_neuronperf.backends.base import Backend, Placement
from pytest_neuronperf.errors import BenchmarkError
from pytest_neuronperf.runner.launch import CopyContext, server_gone
from pytest_neuronperf.runner.protocol import (
    Abort,
    CopyResult,
    Done,
    Failed,
    ParentMessage,
    Ready,
    ReadyInfo,
    Start,
)
from pytest_neuronperf.runner.replica import CopyJob, clock, run_copy, run_redirected_copy
from pytest_neuronperf.runner.resources import ResourceSampler
from pytest_neuronperf.spec.load import OpenLoad
from pytest_neuronperf.telemetry.base import WindowTelemetry

START_MARGIN_NS = 20_000_000
# How long stopped copies get to exit on SIGTERM before they are killed.
STOP_GRACE_S = 1.0
# How long the copies of a configuration get, all together, to exit after sending their results.
EXIT_WAIT_S = 5.0
# A Unix socket's path must fit in sun_path (108 bytes on Linux, 104 on macOS and the BSDs, NUL included).
SOCKET_PATH_MAX = 108 if sys.platform.startswith("linux") else 104
# multiprocessing names the forkserver's socket <temp dir>/pymp-XXXXXXXX/listener-XXXXXXXX.
_LISTENER_NAME = len("/listener-XXXXXXXX")
_MP_DIR_NAME = len("/pymp-XXXXXXXX")
# Where a short private folder for the socket can go when the temporary folder's path is too long.
_SHORT_BASES = ("/tmp", "/var/tmp", "/dev/shm")


class RunnerWarning(UserWarning):
    """Something the model left behind (processes, threads) that the runner had to clean up."""


def start_context(multiinterpreter: bool) -> CopyContext:
    if multiinterpreter:
        return CopyContext("spawn")
    fit_socket_dir()
    return CopyContext("forkserver")


def fit_socket_dir() -> str | None:
    """Give multiprocessing a temporary folder short enough for the forkserver's socket path.

    The forkserver listens on a Unix socket in multiprocessing's own temporary folder, made
    under ``tempfile.gettempdir()``; with a long ``TMPDIR`` (per-job folders in CI, nested
    build directories) the path does not fit in ``sun_path`` and every benchmark failed with
    ``OSError: AF_UNIX path too long``. Then a private folder (mode 0700) under ``/tmp`` takes
    its place, removed at exit as multiprocessing's own is. Returns the folder chosen, or
    None when the current one fits. Must run before the forkserver starts; later it changes
    nothing the running server uses.
    """
    from multiprocessing import process, util

    config = process.current_process()._config  # type: ignore[attr-defined]
    current = config.get("tempdir")
    if current is not None:
        longest = len(os.fsencode(current)) + _LISTENER_NAME
    else:
        longest = len(os.fsencode(tempfile.gettempdir())) + _MP_DIR_NAME + _LISTENER_NAME
    if longest < SOCKET_PATH_MAX:
        return None
    for base in _SHORT_BASES:
        if len(os.fsencode(base)) + _MP_DIR_NAME + _LISTENER_NAME >= SOCKET_PATH_MAX:
            continue
        try:
            short = tempfile.mkdtemp(prefix="npf-mp-", dir=base)
        except OSError:
            continue
        util.Finalize(None, shutil.rmtree, args=(short,), kwargs={"ignore_errors": True}, exitpriority=-100)
        config["tempdir"] = short
        logger.debug("The temporary folder %r is too long for a socket path; the forkserver's socket goes in %r.",
                     current or tempfile.gettempdir(), short)
        return short
    raise OSError(
        f"the temporary folder {current or tempfile.gettempdir()!r} is too long for the model copies' forkserver "
        f"socket (a Unix socket path must be shorter than {SOCKET_PATH_MAX} bytes), and none of "
        f"{', '.join(_SHORT_BASES)} is writable to hold a short one instead; set TMPDIR to a shorter folder"
    )


class _Handle:
    def __init__(self, placement: Placement, conn: Any, process: Any = None, thread: Any = None) -> None:
        self.placement = placement
        self.conn = conn
        self.process = process
        self.thread = thread

    @property
    def index(self) -> int:
        return self.placement.copy_index

    @property
    def sentinel(self) -> Any:
        return self.process.sentinel if self.process is not None else None


def stop_all(handles: Sequence[_Handle], grace_s: float = STOP_GRACE_S) -> GroupLeftovers:
    """Stop every copy at once: close the connections, then SIGTERM to all, one shared grace period, SIGKILL.

    See :func:`stop_processes`: teardown stays within ``grace_s`` (plus the bounded wait after
    SIGKILL) however many copies there are, and an interruption while waiting kills the
    remaining copies at once before it propagates. Then each copy's process group goes the
    same way (:func:`stop_groups`): processes the model started, and a copy whose forkserver
    died (its ``Process`` then reports an exit status, so it is no longer signalled by pid).
    Returns what was found in the groups besides the copies themselves.
    """
    for h in handles:
        with contextlib.suppress(Exception):
            h.conn.close()
    processes = [h.process for h in handles if h.process is not None]
    try:
        stop_processes(processes, grace_s=grace_s)
    finally:
        # A copy leads a process group with its own pid (replica.run_copy); None: never started.
        pids = [p.pid for p in processes if p.pid is not None]
        leftovers = stop_groups(pids, exclude=pids, grace_s=grace_s)
    return leftovers


def _signal_note(signum: int) -> str:
    """The signal's name, and what usually sends it, for a copy that died of it."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return ""
    crash = ", a crash in native code such as the model's runtime or an extension"
    hints = {
        "SIGKILL": "; the out-of-memory killer sends this too",
        "SIGSEGV": crash,
        "SIGBUS": crash,
        "SIGABRT": ", native code aborted",
    }
    return f" ({name}{hints.get(name, '')})"


def _name_of(message: object) -> str:
    """A message as an error names it: its name, or what it is when it is none of the protocol's."""
    if isinstance(message, (Ready, Done, Failed)):
        return repr(message.name)
    return f"an unknown message {reprlib.repr(message)}"


def _describe(config: dict[str, Any]) -> str:
    keys = ("n_models", "workers_per_model", "batch_size", "pipeline_size", "model_filename")
    return ", ".join(f"{k}={config[k]}" for k in keys if k in config)


# Process states (/proc/<pid>/stat) worth naming when a copy did not answer in time.
_STATE_NOTES = {
    "T": "is stopped (SIGSTOP?): paused by a stop signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU), so it could not run",
    "t": "is stopped by a debugger (tracing stop), so it could not run",
    "D": "is in uninterruptible sleep, usually waiting on a device driver or a stuck file system",
    "Z": "has exited (a zombie not yet reaped)",
}


def _state_note(handle: _Handle) -> str:
    """What the kernel says the copy is doing, when that explains why it did not answer; else ''."""
    pid = handle.process.pid if handle.process is not None else None
    state = process_state(pid) if pid else None
    return _STATE_NOTES.get(state or "", "")


def _warn(message: str) -> None:
    """Say it where a user looks: the runner's log, and a warning (pytest's warnings summary names the test)."""
    logger.warning("%s", message)
    warnings.warn(RunnerWarning(message), stacklevel=3)


# The exit status multiprocessing gives a forkserver copy whose status never came (the server is gone).
_FORKSERVER_LOST = 255


class CopyGroup:
    """The live copies of one configuration; always torn down on exit, whatever happened."""

    def __init__(self, jobs: Sequence[CopyJob], backend: Backend, ctx: BaseContext | None,
                 redirect: tuple[str, str] | None = None) -> None:
        self.jobs = list(jobs)
        self.backend = backend
        self.ctx = ctx
        self.redirect = redirect
        self.handles: list[_Handle] = []
        self.config = jobs[0].config if jobs else {}
        self.ready: dict[int, ReadyInfo] = {}
        self.done: dict[int, CopyResult] = {}

    def __enter__(self) -> CopyGroup:
        try:
            for job in self.jobs:
                self._start(job)
        except BaseException:
            # __exit__ does not run when __enter__ fails: stop the copies already started here.
            stop_all(self.handles)
            raise
        return self

    def _start(self, job: CopyJob) -> None:
        if self.ctx is None:
            a, b = Pipe()
            t = threading.Thread(target=run_copy, args=(b, job), daemon=True,
                                 name=f"npf-copy{job.placement.copy_index}")
            self.handles.append(_Handle(job.placement, a, thread=t))
            t.start()
        else:
            a, b = self.ctx.Pipe()
            target: Callable[..., None] = run_copy
            args: tuple[Any, ...] = (b, job, os.getpid())
            if self.redirect is not None:
                # The job names the user's functions: it goes over the pipe, read once the copy imports
                # from the checkout.
                target, args = run_redirected_copy, (b, self.redirect, os.getpid())
            p = self.ctx.Process(target=target, args=args,  # type: ignore[attr-defined]
                                 daemon=True, name=f"npf-copy{job.placement.copy_index}")
            try:
                p.start()
                if self.redirect is not None:
                    a.send(job)
            except BaseException:
                a.close()
                raise
            finally:
                b.close()
            self.handles.append(_Handle(job.placement, a, process=p))
        logger.debug("Model copy %d started (%s).", job.placement.copy_index, job.placement.describe())

    def __exit__(self, *exc: object) -> None:
        leftovers = stop_all(self.handles)
        if leftovers:
            self._report_leftovers(leftovers)

    def _report_leftovers(self, leftovers: GroupLeftovers) -> None:
        found = "; ".join(f"pid {pid}: {cmd}" for pid, cmd in sorted(leftovers.found.items()))
        text = (f"configuration {_describe(self.config)}: the model left {len(leftovers.found)} process(es) "
                f"running after its copies ended ({found}); they were stopped (SIGTERM, then SIGKILL). A model's "
                "helper processes never outlive its copy; stop them yourself if they need a clean shutdown")
        if leftovers.survivors:
            text += (f". Still alive after SIGKILL (stuck in the kernel?): pids "
                     f"{', '.join(map(str, leftovers.survivors))}")
        _warn(text)

    def wait_exit(self, wait_s: float = EXIT_WAIT_S) -> None:
        """Let the copies exit by themselves, all against one deadline; warn about those that do not."""
        deadline = time.monotonic() + wait_s
        for h in self.handles:
            if h.process is not None:
                h.process.join(max(0.0, deadline - time.monotonic()))
        threads = {i: r.lingering_threads for i, r in sorted(self.done.items()) if r.lingering_threads}
        if threads:
            named = "; ".join(f"copy {i}: {', '.join(map(repr, t))}" for i, t in threads.items())
            _warn(f"configuration {_describe(self.config)}: the model left non-daemon thread(s) running after the "
                  f"timed window ({named}); the copies ended without waiting for them. Make such threads daemon "
                  "threads (threading.Thread(daemon=True)) or stop them when the model is done")
        stuck = [h for h in self.handles if h.process is not None and h.process.is_alive()]
        if stuck:
            _warn(f"configuration {_describe(self.config)}: model copies {', '.join(str(h.index) for h in stuck)} "
                  f"did not exit within {wait_s:g}s of sending their results; they were stopped")
        for h in self.handles:
            logger.debug("Model copy %d finished.", h.index)

    def collect(self, expected: type[Ready | Done], deadline_ns: int, what: str, limit: str = "") -> None:
        """Wait for one ``expected`` message from every copy; raise on an error, a death or the deadline.

        Each message goes to its handler (:meth:`dispatch`). ``limit`` says in the timeout
        message what the deadline was (``timeout=2s``).
        """
        pending = {id(h.conn): h for h in self.handles}
        while pending:
            remaining = (deadline_ns - clock()) / 1e9
            if remaining <= 0:
                idle = ", ".join(str(h.index) for h in pending.values())
                bound = f"{limit}; " if limit else ""
                states = "".join(f"; copy {h.index} (pid {h.process.pid}) {note}" for h in pending.values()
                                 if (note := _state_note(h)))
                raise BenchmarkError(
                    f"model copies {idle} did not finish {what} in time ({bound}configuration: "
                    f"{_describe(self.config)}){states}; they were stopped. Raise `timeout` if the model "
                    "legitimately needs longer.",
                    self.config,
                )
            by_sentinel = {h.sentinel: h for h in pending.values() if h.sentinel is not None}
            objs = [h.conn for h in pending.values()] + list(by_sentinel)
            for obj in wait(objs, timeout=min(remaining, 1.0)):
                if isinstance(obj, int):
                    handle = by_sentinel[obj]
                    if id(handle.conn) not in pending or handle.conn.poll():
                        continue  # already answered, or its last message is still in the pipe
                    self._died(handle, what)
                found = pending.get(id(obj))
                if found is None:
                    continue
                handle = found
                try:
                    message = handle.conn.recv()
                except (EOFError, OSError):
                    self._died(handle, what)
                self.dispatch(handle, message, expected, what)
                del pending[id(handle.conn)]

    def dispatch(self, handle: _Handle, message: object, expected: type[Ready | Done], what: str) -> None:
        """Hand ``message`` to the ``copy_<name>`` method: a failure whenever it comes, else only the one due now."""
        if not isinstance(message, (Failed, expected)):
            raise BenchmarkError(f"model copy {handle.index} sent {_name_of(message)} while {what}", self.config)
        handler: Callable[[_Handle, Any], None] = getattr(self, f"copy_{message.name}")
        handler(handle, message)

    def copy_ready(self, handle: _Handle, message: Ready) -> None:
        self.ready[handle.index] = message.info

    def copy_done(self, handle: _Handle, message: Done) -> None:
        self.done[handle.index] = message.result

    def copy_failed(self, handle: _Handle, message: Failed) -> NoReturn:
        failure = message.failure
        explanation = self.backend.explain_error(failure.traceback, handle.placement)
        lead = f"{explanation}\n" if explanation else ""
        raise BenchmarkError(
            f"{lead}model copy {handle.index} ({handle.placement.describe()}) raised "
            f"{failure.error_type}: {failure.message} during {failure.phase} "
            f"(configuration: {_describe(self.config)}).\nTraceback from the model copy:\n{failure.traceback}",
            self.config, error_type=failure.error_type, phase=failure.phase,
        )

    def _died(self, handle: _Handle, what: str) -> NoReturn:
        if handle.process is not None:
            handle.process.join(1.0)
            code = handle.process.exitcode
        else:
            code = None
        state = _state_note(handle)
        if code is None:
            how = "closed its connection to the benchmark but is still running" + (f": it {state}" if state else "")
        elif code == _FORKSERVER_LOST and server_gone(handle.process):
            # The forkserver reports every copy's exit status; without it the status reads 255.
            how = ("lost the forkserver that started it (the process that forks model copies was killed or "
                   "crashed); the copy was stopped, and the next configuration starts a new forkserver")
        elif code >= 0:
            how = f"exited with code {code}"
        else:
            how = f"was killed by signal {-code}{_signal_note(-code)}"
        raise BenchmarkError(
            f"model copy {handle.index} ({handle.placement.describe()}) {how} while {what} "
            f"(configuration: {_describe(self.config)}); no result was produced",
            self.config,
        )

    def broadcast(self, message: ParentMessage) -> None:
        for h in self.handles:
            with contextlib.suppress(OSError, BrokenPipeError):
                h.conn.send(message)


@dataclass(frozen=True)
class Window:
    """One timed window to run on a configuration's copies: closed loop, or open-loop ``load``."""

    duration_s: float
    load: OpenLoad | None = None
    round_index: int = 0
    # Open-loop load: how long after the window requests that arrived in it may still finish.
    drain_s: float = 0.0
    bin_ns: int = 0  # 0: the jobs' own


@dataclass
class WindowResult:
    window: Window
    copies: list[CopyResult]
    start_ns: int
    stop_ns: int
    resources: dict[str, float | None]
    # What the device reported during the window (the backend's telemetry), and why it is no measurement.
    telemetry: dict[str, Any] = field(default_factory=dict)
    invalid: str | None = None


# Telemetry notes already given in this process ("neuron-monitor is not on PATH"): each is said once.
_said: set[str] = set()


def _window_telemetry(backend: Backend, group: CopyGroup, window_s: float) -> WindowTelemetry | None:
    """The backend's telemetry for this window's copies (a backend may have none)."""
    factory = getattr(backend, "window_telemetry", None)
    if factory is None:
        return None
    telemetry: WindowTelemetry = factory([info.pid for _, info in sorted(group.ready.items())], window_s)
    return telemetry


def _copies_telemetry(copies: Sequence[CopyResult]) -> dict[str, float | None]:
    """The copies' own device figures (one GPU each) as the configuration's: averages averaged, peaks the
    highest, energy summed (joules per inference then follow from it and the completions)."""
    measured = [c.telemetry for c in copies if c.telemetry]
    for t in measured:
        note = t.get("note")
        _tell_once(note if isinstance(note, str) else None)
    out: dict[str, float | None] = {}
    for key in sorted({k for t in measured for k in t} - {"joules_per_inf", "note"}):
        values = [float(v) for t in measured if isinstance(v := t.get(key), (int, float))]
        if not values:
            continue
        if key.endswith(("_peak", "_peak_mb")):
            out[key] = max(values)
        elif key == "energy_j":
            out[key] = sum(values) if len(values) == len(measured) else None
        else:
            out[key] = round(sum(values) / len(values), 2)
    return out


def _tell_once(note: str | None) -> None:
    if note and note not in _said:
        _said.add(note)
        logger.warning("%s.", note)


# Given the windows run so far, the next one to run on the same warm copies (None: they are done).
NextWindow = Callable[[list[WindowResult]], Window | None]


def run_config(jobs: Sequence[CopyJob], backend: Backend, *, ctx: BaseContext | None, window: Window,
               timeout_s: float, stats_interval: float, on_window: Callable[[], None] | None = None,
               redirect: tuple[str, str] | None = None, next_window: NextWindow | None = None,
               ) -> list[WindowResult]:
    """Run one configuration: load + warm up every copy, then one shared window [start, start + duration],
    and then, while ``next_window`` gives one, more windows on the same copies.

    ``redirect`` (repository, checkout): the copies import the user's code from the checkout of
    another revision (:mod:`pytest_neuronperf.reference.redirect`).
    """
    if redirect is not None and ctx is None:
        raise ValueError("a copy can import another revision's code only in a process of its own "
                         "(multiprocess=True)")
    if isinstance(ctx, CopyContext) and jobs:
        # Before any copy starts: a main module the copies need but cannot run again is an error here.
        ctx.prepare(jobs[0], backend, redirect)
    results: list[WindowResult] = []
    with CopyGroup(jobs, backend, ctx, redirect) as group:
        group.collect(Ready, clock() + int(timeout_s * 1e9), "loading and warming up", f"timeout={timeout_s:g}s")
        current: Window | None = window
        while current is not None:
            start_ns = clock() + START_MARGIN_NS
            stop_ns = start_ns + int(current.duration_s * 1e9)
            drain_stop_ns = stop_ns + int(current.drain_s * 1e9)
            # Whether more windows follow is known only after this one: a window that may not be the last
            # keeps the copies waiting, and an Abort (the connections closing) ends them after it.
            group.done = {}
            group.broadcast(Start(start_ns, stop_ns, current.load, current.round_index, drain_stop_ns,
                                  current.bin_ns, last=next_window is None))
            if on_window is not None and not results:
                on_window()
            duration_s = current.duration_s + current.drain_s
            telemetry = _window_telemetry(backend, group, current.duration_s)
            with ResourceSampler(min(stats_interval, max(duration_s / 4, 0.05))) as sampler, \
                    (telemetry if telemetry is not None else contextlib.nullcontext()):
                group.collect(Done, drain_stop_ns + int(timeout_s * 1e9), "running the timed window",
                              f"timeout={timeout_s:g}s after the {current.duration_s:g}s window closed")
            result = WindowResult(current, [group.done[i] for i in sorted(group.done)], start_ns, stop_ns,
                                  sampler.summary())
            if telemetry is not None:
                _tell_once(telemetry.note)
                result.telemetry, result.invalid = telemetry.fields(), telemetry.invalid_reason()
            result.telemetry.update(_copies_telemetry(result.copies))
            results.append(result)
            current = next_window(results) if next_window is not None else None
        if next_window is not None:
            group.broadcast(Abort())
        group.wait_exit()
    return results
