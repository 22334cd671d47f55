"""Faulty models for the reliability tests, at module top level so model-copy processes can import them.

Models that need to tell the test something (that they started, which copy
they are) do it through files named by environment variables, since they run
in other processes.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time
from pathlib import Path

import torch
from torch import nn

# Calls before a delayed fault strikes: past the default warm-up of 10, so it hits the timed window.
FAULT_AFTER = 30
STARTED_ENV = "NPF_REL_STARTED"


def _mark_started() -> None:
    """Create the file named by NPF_REL_STARTED (once), so a test knows the benchmark is under way."""
    path = os.environ.get(STARTED_ENV)
    if path and not os.path.exists(path):
        Path(path).write_text(str(os.getpid()), encoding="ascii")


class Fine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


class RaisesInForward(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("forward exploded on purpose")


class RaisesInInit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        raise ValueError("__init__ exploded on purpose")


def raising_preprocess(x: torch.Tensor) -> torch.Tensor:
    raise KeyError("preprocess exploded on purpose")


def raising_postprocess(y: torch.Tensor) -> torch.Tensor:
    raise ZeroDivisionError("postprocess exploded on purpose")


class _Delayed(nn.Module):
    """Runs normally for FAULT_AFTER calls, then calls ``fault``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def fault(self) -> None:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 1:
            _mark_started()
        if self.calls > FAULT_AFTER:
            self.fault()
        return x


class KillsItself(_Delayed):
    def fault(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class ExitsAbruptly(_Delayed):
    def fault(self) -> None:
        os._exit(3)


class Segfaults(_Delayed):
    def fault(self) -> None:
        ctypes.string_at(0)


class HangsInForward(_Delayed):
    def fault(self) -> None:
        time.sleep(3600)


class HangsInInit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        _mark_started()
        time.sleep(3600)


class HangsIgnoringSigterm(_Delayed):
    """Hangs in a copy that ignores SIGTERM, as a process stuck in a driver call may; only SIGKILL ends it."""

    def __init__(self) -> None:
        super().__init__()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # __init__ runs on the copy's main thread

    def fault(self) -> None:
        time.sleep(3600)


class FailsInSecondCopy(_Delayed):
    """Raises in copy 1 only; the other copies would run their whole (long) window."""

    def fault(self) -> None:
        if threading.current_thread().name.startswith("npf-copy1-"):
            raise RuntimeError("copy 1 failed on purpose")


class Slow(nn.Module):
    """Announces itself, then sleeps 1 ms a call: a benchmark that is busy but cheap on the CPUs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _mark_started()
        time.sleep(0.001)
        return x


class SleepsForever(nn.Module):
    """Ignores SIGTERM and SIGINT, announces itself, then blocks: only SIGKILL or its own exit ends the copy."""

    def __init__(self) -> None:
        super().__init__()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _mark_started()
        time.sleep(3600)
        return x


# -- process hygiene (tests/reliability/test_procs_*.py) --------------------------------------------------------

CHILD_PIDS_ENV = "NPF_REL_CHILD_PIDS"


def _start_sleeper() -> int:
    """Start ``sleep 300`` as a model might start a helper process, and note its pid in NPF_REL_CHILD_PIDS."""
    import subprocess

    child = subprocess.Popen(["sleep", "300"])
    path = os.environ.get(CHILD_PIDS_ENV)
    if path:
        with open(path, "a", encoding="ascii") as fh:
            fh.write(f"{child.pid}\n")
    return child.pid


class StartsAChildProcess(nn.Module):
    """Starts a helper process in ``__init__`` and never stops it."""

    def __init__(self) -> None:
        super().__init__()
        self.child_pid = _start_sleeper()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


class StartsAChildThenSleepsForever(SleepsForever):
    """A helper process, then a copy that only SIGKILL or its own watchdog ends."""

    def __init__(self) -> None:
        super().__init__()
        self.child_pid = _start_sleeper()


class LeavesAThreadRunning(nn.Module):
    """Starts a non-daemon thread that never ends, as a forgotten background poller would."""

    def __init__(self) -> None:
        super().__init__()
        self.poller = threading.Thread(target=time.sleep, args=(3600,), name="npf-rel-poller")
        self.poller.start()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1


class Unprintable(Exception):
    """An exception whose ``__str__`` itself raises."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded on purpose")


class RaisesUnprintable(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise Unprintable("the real problem")


class StopsItself(_Delayed):
    """Sends itself SIGSTOP in the timed window, as ``kill -STOP`` or a debugger would pause it."""

    def fault(self) -> None:
        os.kill(os.getpid(), signal.SIGSTOP)


class StartsAChildAndRaises(StartsAChildProcess):
    """A helper process, then an exception in the first call: the error path must stop the helper too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("forward exploded after starting a helper process")
