"""Stopping child processes within a bounded time, whatever they are doing.

Model copies and the compile process are both stopped this way, so a
benchmark or a ``compile`` that ends (normally, on an error, on Ctrl-C)
never waits longer than the bounds below and never leaves a child running.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Protocol

# How long the joins after SIGKILL wait, all together; a killed process is gone in
# milliseconds unless it is stuck in the kernel, and then waiting longer would not help.
KILL_WAIT_S = 1.0


class Stoppable(Protocol):
    """The part of ``multiprocessing.Process`` that stopping needs."""

    def is_alive(self) -> bool: ...
    def join(self, timeout: float | None = None) -> None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


def stop_processes(processes: Iterable[Stoppable], *, wait_s: float = 0.0, grace_s: float = 1.0) -> None:
    """Stop ``processes``: wait for a natural exit, then SIGTERM, then SIGKILL.

    Up to ``wait_s`` (shared by all) for the processes to end by themselves;
    then SIGTERM to every one still alive at once, and one shared ``grace_s``
    deadline for them to exit; then SIGKILL to the rest. Every phase signals
    all processes before waiting on any, so the whole takes at most about
    ``wait_s + grace_s + KILL_WAIT_S`` however many processes there are. An
    interruption while waiting (a second Ctrl-C, SIGTERM) kills the remaining
    processes before it propagates.
    """
    processes = list(processes)
    try:
        if wait_s > 0:
            _join_all(processes, time.monotonic() + wait_s)
        for p in processes:
            with contextlib.suppress(Exception):
                if p.is_alive():
                    p.terminate()
        _join_all(processes, time.monotonic() + grace_s)
    finally:
        for p in processes:
            with contextlib.suppress(Exception):
                if p.is_alive():
                    p.kill()
        _join_all(processes, time.monotonic() + KILL_WAIT_S)


def _join_all(processes: list[Stoppable], deadline: float) -> None:
    for p in processes:
        # Joining a process that never started, or was closed, raises; there is nothing to wait for.
        with contextlib.suppress(Exception):
            p.join(max(0.0, deadline - time.monotonic()))
