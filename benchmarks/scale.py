"""A whole trn2.48xlarge from the runner's side: 64 and 128 model copies, one per NeuronCore.

    python benchmarks/scale.py              # 1, 64 and 128 copies, 5-s windows (about 2 minutes)
    python benchmarks/scale.py --duration 3 --copies 1,64

Method, and why:
- The stand-in ``neuron-ls`` (tests/standins) reports 16 devices x 4 or x 8 NeuronCores (64 or 128, as a
  trn2.48xlarge with LNC=2 or LNC=1), and the Neuron backend places one copy per core with its core list in
  its environment, as on the instance. Each copy's model sleeps 1 ms per call (a device call costs the host
  almost nothing), so 2 host cores can carry 128 copies and what is measured is the runner.
- Time to the window: from the configuration's "loading" progress event (before any copy starts) to its
  "running" event (the window open), in this process.
- Throughput: against n x the throughput of one copy measured in the same run.
- The orchestrator's CPU: this process's CPU time from 20% to 70% of the window (``time.process_time``
  includes every thread: the window wait, the resource sampler, the telemetry reader), as a share of one core.
- Host memory per copy: the unique set size (private clean + private dirty of /proc/PID/smaps_rollup) of
  each copy, read after the CPU interval (reading them costs CPU); copies fork from one server, so what
  they share is not counted again.
It is a measurement, not a test: it exits 0 whatever it measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from scale_models import Sleep1ms  # noqa: E402

from pytest_neuronperf.backends import registry  # noqa: E402
from pytest_neuronperf.runner import events  # noqa: E402
from pytest_neuronperf.runner.benchmark import benchmark  # noqa: E402

STANDIN_BIN = ROOT / "tests" / "standins" / "bin"


def _uss_kb(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith(("Private_Clean:", "Private_Dirty:")):
            total += int(line.split()[1])
    return total


def _copy_pids() -> list[int]:
    """The model copies: processes that lead their own group and run this benchmark's forkserver's code."""
    me = os.getpid()
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        pid, pgrp = int(entry.name), int(fields[2])
        if pgrp == pid and b"forkserver" in cmd:
            out.append(pid)
    return out


class Watch:
    """Stamps the progress events of the benchmark and samples CPU and memory in the window's middle."""

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self.loading: float | None = None
        self.running: float | None = None
        self.cpu_share: float | None = None
        self.uss_kb: list[int] = []

    def __call__(self, event: events.Progress) -> None:
        now = time.monotonic()
        if event.phase == "loading" and self.loading is None:
            self.loading = now
        elif event.phase == "running" and self.running is None:
            self.running = now
            threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        time.sleep(0.2 * self.duration)
        t0, c0 = time.monotonic(), time.process_time()
        time.sleep(0.5 * self.duration)
        t1, c1 = time.monotonic(), time.process_time()
        self.cpu_share = (c1 - c0) / (t1 - t0)
        # After the CPU interval: reading 128 processes' memory maps costs this process CPU of its own.
        self.uss_kb = [u for p in _copy_pids() if (u := _uss_kb(p)) is not None]


def run(n: int, duration: float) -> dict[str, Any]:
    watch = Watch(duration)
    with events.listening(watch):
        [report] = benchmark(Sleep1ms, torch.zeros(1), device_type="neuron", n_models=n,
                             workers_per_model=1, duration=duration, warmup=5, timeout=300)  # type: ignore[list-item]
    assert watch.loading is not None and watch.running is not None
    return {"n": n, "status": report["status"], "reason": report["reason"], "throughput": report["throughput_avg"],
            "to_window_s": watch.running - watch.loading, "cpu_share": watch.cpu_share, "uss_kb": watch.uss_kb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--copies", default="64,128")
    args = parser.parse_args()
    os.environ["PATH"] = os.pathsep.join([str(STANDIN_BIN), os.environ.get("PATH", "")])
    os.environ.pop("NEURON_RT_VISIBLE_CORES", None)
    rows = []
    for n in [1, *(int(c) for c in args.copies.split(","))]:
        os.environ["NPF_STANDIN_DEVICES"] = "16"
        os.environ["NPF_STANDIN_CORES"] = str(max(4, -(-n // 16)))
        registry.get_backend.cache_clear()
        row = run(n, args.duration)
        rows.append(row)
        print(f"n={n}: {row['status']} {row['throughput']:.0f}/s, window opened {row['to_window_s']:.2f} s after "
              f"the start, orchestrator CPU {100 * (row['cpu_share'] or 0):.1f}% of a core, "
              f"{len(row['uss_kb'])} copies' USS median {statistics.median(row['uss_kb'] or [0]) / 1024:.1f} MiB",
              flush=True)
    one = rows[0]["throughput"]
    print(f"\n{'copies':>6} {'window opens after':>19} {'target':>7} {'throughput':>11} {'/ (n x one copy)':>17} "
          f"{'orchestrator CPU':>17} {'USS per copy (median, max)':>27}")
    for row in rows:
        n = row["n"]
        target = "" if n == 1 else ("<= 3 s" if n <= 64 else "<= 6 s")
        ratio = row["throughput"] / (n * one)
        uss = row["uss_kb"] or [0]
        print(f"{n:>6} {row['to_window_s']:>17.2f} s {target:>7} {row['throughput']:>9.0f}/s {ratio:>17.3f} "
              f"{100 * (row['cpu_share'] or 0):>15.1f} % {statistics.median(uss) / 1024:>14.1f} / "
              f"{max(uss) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
