"""A noisy neighbour: processes that burn CPU with a duty cycle that changes over time.

    python benchmarks/noisy_neighbour.py --ctl FILE --index 0 --seed 1   # one burner (normally started by Neighbour)

Each burner repeats a period of 20 ms: busy for d x 20 ms, asleep for (1 - d) x 20 ms. The duty
cycle d is read from a small JSON control file (``{"duty": 0.5}``), which whoever drives the
neighbour rewrites between comparisons; with a jitter j, every ~2 s the burner draws
d + U(-j, j) (clipped to the control file's ``lo``..``hi``) from a seeded RNG, so the load also
moves within a comparison. Duty 0 sleeps. A burner exits when its parent process is gone, so an
interrupted driver never leaves CPU hogs behind; :class:`Neighbour` starts one per CPU, each in
its own process group, and kills those groups when stopped (also from ``atexit``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

PERIOD_S = 0.02  # one busy + idle cycle
REDRAW_S = 2.0  # how often a burner redraws its jitter within a comparison
CONTROL_POLL_S = 0.1  # how often a burner looks at the control file


def _clip(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))


def _read_control(path: Path) -> dict[str, float] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # missing, or caught between write and rename: keep the last one
    if not isinstance(data, dict):
        return None
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


def burn(ctl: Path, index: int, seed: int, parent: int) -> None:
    """Burn CPU at the control file's duty cycle until the parent process ``parent`` is gone."""
    rng = random.Random(f"{seed}:{index}")
    control: dict[str, float] = {"duty": 0.0, "jitter": 0.0, "lo": 0.0, "hi": 1.0}
    mtime = -1.0
    next_poll = next_draw = 0.0
    duty = 0.0
    while True:
        now = time.monotonic()
        if now >= next_poll:
            next_poll = now + CONTROL_POLL_S
            if os.getppid() != parent:
                return
            try:
                m = ctl.stat().st_mtime
            except OSError:
                m = mtime
            if m != mtime:
                read = _read_control(ctl)
                if read is not None:
                    mtime = m
                    control.update(read)
                    next_draw = 0.0  # a new setting applies at once
        if now >= next_draw:
            next_draw = now + REDRAW_S
            base, jitter = control["duty"], control["jitter"]
            duty = 0.0 if base <= 0 else _clip(base + rng.uniform(-jitter, jitter), control["lo"], control["hi"])
        busy_until = time.perf_counter() + duty * PERIOD_S
        while time.perf_counter() < busy_until:
            pass
        time.sleep((1.0 - duty) * PERIOD_S)


class Neighbour:
    """``n`` burner processes driven through a control file in ``workdir``; a context manager.

    The duty cycle is set with :meth:`set_duty` (or by anyone who rewrites :attr:`ctl`, such as a
    pytest hook); ``lo``..``hi`` bound it, ``jitter`` moves it within that range every ~2 s.
    """

    def __init__(self, workdir: Path, n: int, seed: int, lo: float, hi: float, jitter: float) -> None:
        self.ctl = workdir / "neighbour.json"
        self.n, self.seed, self.lo, self.hi, self.jitter = n, seed, lo, hi, jitter
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def running(self) -> bool:
        return bool(self.procs)

    def set_duty(self, duty: float) -> None:
        write_control(self.ctl, duty, self.lo, self.hi, self.jitter)

    def start(self, duty: float) -> None:
        if self.procs:
            self.set_duty(duty)
            return
        self.set_duty(duty)
        atexit.register(self.stop)
        for i in range(self.n):
            self.procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--ctl", str(self.ctl), "--index", str(i),
                 "--seed", str(self.seed), "--parent", str(os.getpid())],
                stdin=subprocess.DEVNULL, start_new_session=True))  # its own session and process group

    def stop(self) -> None:
        procs, self.procs = self.procs, []
        for p in procs:
            _kill_group(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5.0
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(p.pid, signal.SIGKILL)
                p.wait()
        atexit.unregister(self.stop)

    def __enter__(self) -> Neighbour:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def write_control(ctl: Path, duty: float, lo: float, hi: float, jitter: float) -> None:
    """Set the duty cycle of every burner reading ``ctl`` (atomically: temp file and rename)."""
    tmp = ctl.with_name(ctl.name + ".tmp")
    tmp.write_text(json.dumps({"duty": duty, "lo": lo, "hi": hi, "jitter": jitter}))
    os.replace(tmp, ctl)


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ctl", type=Path, required=True, help="the JSON control file")
    ap.add_argument("--index", type=int, default=0, help="this burner's number (seeds its RNG)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--parent", type=int, default=None, help="exit when this process is gone (default: the parent)")
    args = ap.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver stops us; a terminal's Ctrl-C is its business
    with contextlib.suppress(KeyboardInterrupt):
        burn(args.ctl, args.index, args.seed, args.parent if args.parent is not None else os.getppid())


if __name__ == "__main__":
    main()
