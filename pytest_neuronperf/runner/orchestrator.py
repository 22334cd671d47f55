"""Start the model copies of one configuration, open the timed window, collect the results.

Start method: model copies are started from a *forkserver* that has already
imported torch and this package. The server is a fresh interpreter started
for the purpose, so it never holds a device runtime the caller initialised
(forking such a process is what makes the Neuron runtime fail with
NRT_STATE_CHILD), and forking from it costs milliseconds, where ``spawn``
re-imports torch in every copy of every configuration (about a second each on
a 2-core machine; ``benchmarks/start_methods.py`` measures the three methods).
``multiinterpreter=True`` uses ``spawn``: a fresh interpreter per copy that
imports the model by module path and receives its job over a pipe.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import reprlib
import signal
import threading
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext
from typing import Any, NoReturn

from pytest_neuronperf._util.log import logger
from pytest_neuronperf._util.processes import stop_processes
from pytest_neuronperf.backends.base import Backend, Placement
from pytest_neuronperf.errors import BenchmarkError
from pytest_neuronperf.runner.protocol import (
    CopyResult,
    Done,
    Failed,
    ParentMessage,
    Ready,
    ReadyInfo,
    Start,
)
from pytest_neuronperf.runner.replica import CopyJob, clock, run_copy
from pytest_neuronperf.runner.resources import ResourceSampler

START_MARGIN_NS = 20_000_000
# How long stopped copies get to exit on SIGTERM before they are killed.
STOP_GRACE_S = 1.0
_PRELOAD = ["pytest_neuronperf.runner.replica", "numpy", "torch"]


def start_context(multiinterpreter: bool) -> BaseContext:
    if multiinterpreter:
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


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


def stop_all(handles: Sequence[_Handle], grace_s: float = STOP_GRACE_S) -> None:
    """Stop every copy at once: close the connections, then SIGTERM to all, one shared grace period, SIGKILL.

    See :func:`stop_processes`: teardown stays within ``grace_s`` (plus the bounded wait after
    SIGKILL) however many copies there are, and an interruption while waiting kills the
    remaining copies at once before it propagates.
    """
    for h in handles:
        with contextlib.suppress(Exception):
            h.conn.close()
    stop_processes([h.process for h in handles if h.process is not None], grace_s=grace_s)


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


class CopyGroup:
    """The live copies of one configuration; always torn down on exit, whatever happened."""

    def __init__(self, jobs: Sequence[CopyJob], backend: Backend, ctx: BaseContext | None) -> None:
        self.jobs = list(jobs)
        self.backend = backend
        self.ctx = ctx
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
            a, b = mp.Pipe()
            t = threading.Thread(target=run_copy, args=(b, job), daemon=True,
                                 name=f"npf-copy{job.placement.copy_index}")
            self.handles.append(_Handle(job.placement, a, thread=t))
            t.start()
        else:
            a, b = self.ctx.Pipe()
            p = self.ctx.Process(target=run_copy, args=(b, job, os.getpid()),  # type: ignore[attr-defined]
                                 daemon=True, name=f"npf-copy{job.placement.copy_index}")
            try:
                p.start()
            except BaseException:
                a.close()
                raise
            finally:
                b.close()
            self.handles.append(_Handle(job.placement, a, process=p))
        logger.debug("Model copy %d started (%s).", job.placement.copy_index, job.placement.describe())

    def __exit__(self, *exc: object) -> None:
        stop_all(self.handles)

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
                raise BenchmarkError(
                    f"model copies {idle} did not finish {what} in time ({bound}configuration: "
                    f"{_describe(self.config)}); they were stopped. Raise `timeout` if the model "
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
            self.config,
        )

    def _died(self, handle: _Handle, what: str) -> NoReturn:
        if handle.process is not None:
            handle.process.join(1.0)
            code = handle.process.exitcode
        else:
            code = None
        if code is None:
            how = "stopped"
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


def run_config(jobs: Sequence[CopyJob], backend: Backend, *, ctx: BaseContext | None, duration_s: float,
               timeout_s: float, stats_interval: float, on_window: Callable[[], None] | None = None,
               ) -> tuple[list[CopyResult], int, int, dict[str, float | None]]:
    """Run one configuration: load + warm up every copy, then one shared window [start, start + duration]."""
    with CopyGroup(jobs, backend, ctx) as group:
        group.collect(Ready, clock() + int(timeout_s * 1e9), "loading and warming up", f"timeout={timeout_s:g}s")
        start_ns = clock() + START_MARGIN_NS
        stop_ns = start_ns + int(duration_s * 1e9)
        group.broadcast(Start(start_ns, stop_ns))
        if on_window is not None:
            on_window()
        with ResourceSampler(min(stats_interval, max(duration_s / 4, 0.05))) as sampler:
            group.collect(Done, stop_ns + int(timeout_s * 1e9), "running the timed window",
                          f"timeout={timeout_s:g}s after the {duration_s:g}s window closed")
        for h in group.handles:
            if h.process is not None:
                h.process.join(5.0)
            logger.debug("Model copy %d finished.", h.index)
    return [group.done[i] for i in sorted(group.done)], start_ns, stop_ns, sampler.summary()
