"""stop_processes: natural exit, SIGTERM, one shared grace, SIGKILL; bounded however many processes."""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
from typing import Any

import pytest

from pytest_neuronperf._util.processes import stop_processes

pytestmark = pytest.mark.usefixtures("no_leftover_children")
CTX = mp.get_context("spawn")


def _sleep(ready: Any, ignore_sigterm: bool, seconds: float) -> None:
    if ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    time.sleep(seconds)


def _started(n: int, *, ignore_sigterm: bool, seconds: float = 60.0) -> list[Any]:
    processes = []
    for _ in range(n):
        ready = CTX.Event()
        p = CTX.Process(target=_sleep, args=(ready, ignore_sigterm, seconds), daemon=True)
        p.start()
        processes.append((p, ready))
    for _, ready in processes:
        assert ready.wait(30), "a test process did not start"
    return [p for p, _ in processes]


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace() -> None:
    (p,) = _started(1, ignore_sigterm=True)
    t0 = time.monotonic()
    stop_processes([p], grace_s=0.5)
    took = time.monotonic() - t0
    assert not p.is_alive()
    assert p.exitcode == -signal.SIGKILL
    assert 0.4 < took < 20


def test_a_process_that_honours_sigterm_ends_on_it() -> None:
    (p,) = _started(1, ignore_sigterm=False)
    stop_processes([p], grace_s=30.0)
    assert p.exitcode == -signal.SIGTERM


def test_several_processes_share_one_grace_period() -> None:
    processes = _started(4, ignore_sigterm=True)
    grace_s = 1.5
    t0 = time.monotonic()
    stop_processes(processes, grace_s=grace_s)
    took = time.monotonic() - t0
    assert [p.exitcode for p in processes] == [-signal.SIGKILL] * 4
    # One grace after another would take at least 4 x grace_s.
    assert took < len(processes) * grace_s


def test_wait_s_lets_a_process_finish_by_itself() -> None:
    (p,) = _started(1, ignore_sigterm=False, seconds=0.3)
    stop_processes([p], wait_s=30.0, grace_s=0.1)
    assert p.exitcode == 0


def test_a_process_never_started_is_no_error() -> None:
    (p,) = _started(1, ignore_sigterm=False)
    stop_processes([CTX.Process(target=_sleep), p], grace_s=5.0)
    assert p.exitcode == -signal.SIGTERM


class _Fake:
    """A process whose first join is interrupted, as by a second Ctrl-C."""

    def __init__(self, interrupt: bool) -> None:
        self.interrupt = interrupt
        self.alive = True
        self.calls: list[str] = []
        self.timeouts: list[float | None] = []

    def is_alive(self) -> bool:
        return self.alive

    def join(self, timeout: float | None = None) -> None:
        self.calls.append("join")
        self.timeouts.append(timeout)
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt

    def terminate(self) -> None:
        self.calls.append("terminate")

    def kill(self) -> None:
        self.calls.append("kill")
        self.alive = False


def test_an_interruption_while_waiting_kills_the_rest_before_it_propagates() -> None:
    fakes = [_Fake(interrupt=True), _Fake(interrupt=False), _Fake(interrupt=False)]
    with pytest.raises(KeyboardInterrupt):
        stop_processes(fakes, wait_s=10.0, grace_s=10.0)
    # Interrupted in the first wait: no SIGTERM, straight to SIGKILL for every one.
    assert [f.calls for f in fakes] == [["join", "kill", "join"], ["kill", "join"], ["kill", "join"]]
    assert all(t is not None for f in fakes for t in f.timeouts)  # every join is bounded


def test_every_process_is_signalled_before_any_is_waited_on() -> None:
    fakes = [_Fake(interrupt=False) for _ in range(3)]
    order: list[tuple[int, str]] = []
    for i, f in enumerate(fakes):
        for name in ("terminate", "kill", "join"):
            method = getattr(f, name)
            setattr(f, name, lambda *a, _m=method, _i=i, _n=name, **k: (order.append((_i, _n)), _m(*a, **k)))
    stop_processes(fakes, grace_s=1.0)
    assert order == [(0, "terminate"), (1, "terminate"), (2, "terminate"), (0, "join"), (1, "join"), (2, "join"),
                     (0, "kill"), (1, "kill"), (2, "kill"), (0, "join"), (1, "join"), (2, "join")]
