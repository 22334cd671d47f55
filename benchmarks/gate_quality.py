"""Gate quality through the real plugin: false alarms on unchanged code, detection of real slowdowns.

A synthetic model busy-waits for NPF_SERVICE_US microseconds per inference (compute-like). A baseline
is saved once; then pytest sessions compare against it:

* A/A: nothing changed -> false-alarm rate (FAIL verdicts / runs), and how often the verdict is
  inconclusive;
* A/B: service time +5%, +10%, +20% (throughput -5%, -9%, -17%; p99 up as much) -> detection rate;
* the same A/A pairs judged by pytest-benchmark's `--benchmark-compare-fail=mean:5%` rule, side by
  side in the same run.

    python benchmarks/gate_quality.py                 # the full trial (about an hour on 2 cores)
    python benchmarks/gate_quality.py --quick         # a small trial
    python benchmarks/gate_quality.py --aa 100 --ab 40 --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

MODELS = '''
import os, time
import torch

class BusyWait(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ns = int(float(os.environ["NPF_SERVICE_US"]) * 1000)
    def forward(self, x):
        end = time.perf_counter_ns() + self.ns
        while time.perf_counter_ns() < end:
            pass
        return x
'''

OURS = '''
import pytest, torch
from gq_models import BusyWait

@pytest.mark.neuron_benchmark(model=BusyWait, inputs=torch.zeros(1, 1), n_models=1, workers_per_model=1)
def test_gate():
    pass
'''

THEIRS = '''
import torch
from gq_models import BusyWait

def test_pytest_benchmark(benchmark):
    model, x = BusyWait(), torch.zeros(1, 1)
    with torch.inference_mode():
        benchmark(model, x)
'''


@dataclass
class Tally:
    name: str
    verdicts: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(v == verdict for v in self.verdicts)

    def line(self, what: str, verdict: str = "fail") -> str:
        n, k = len(self.verdicts), self.count(verdict)
        inconclusive = self.count("inconclusive")
        extra = f", inconclusive {inconclusive}/{n}" if "inconclusive" in self.verdicts else ""
        wall = sum(self.seconds) / max(1, len(self.seconds))
        return f"{self.name}: {what} {k}/{n} = {100.0 * k / max(1, n):.1f}%{extra}, {wall:.1f} s per run"


class Project:
    def __init__(self, root: Path, duration: float, service_us: float) -> None:
        self.root = root
        self.duration = duration
        self.service_us = service_us
        (root / "gq_models.py").write_text(MODELS)
        (root / "test_ours.py").write_text(OURS)
        (root / "test_theirs.py").write_text(THEIRS)

    def _run(self, service_us: float, *args: str) -> tuple[int, float, str]:
        env = dict(os.environ, NPF_SERVICE_US=str(service_us))
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                              cwd=self.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"pytest failed to run ({proc.returncode}):\n{proc.stdout[-3000:]}")
        return proc.returncode, time.perf_counter() - t, proc.stdout

    def ours(self, factor: float, *extra: str) -> tuple[str, float]:
        out = self.root / "ours.json"
        out.unlink(missing_ok=True)
        _, wall, text = self._run(self.service_us * factor, "test_ours.py", "-p", "no:benchmark",
                                  f"--npf-duration={self.duration}", f"--npf-json={out}", *extra)
        measurements = json.loads(out.read_text())["measurements"] if out.exists() else []
        if len(measurements) != 1:
            print(f"  a run produced no verdict; its output ends:\n{text[-2000:]}", flush=True)
            return "error", wall
        return str(measurements[0]["verdict"]), wall

    def theirs(self, factor: float, *extra: str) -> tuple[str, float]:
        code, wall, _ = self._run(self.service_us * factor, "test_theirs.py", "-p", "no:neuronperf",
                               "--benchmark-storage=file://./pb", f"--benchmark-max-time={self.duration}",
                               "--benchmark-disable-gc", *extra)
        return ("fail" if code == 1 else "pass"), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 A/A and 5 per A/B condition at 2 s")
    ap.add_argument("--aa", type=int, default=100, help="A/A comparisons (default 100)")
    ap.add_argument("--ab", type=int, default=40, help="comparisons for the +10%% condition (default 40)")
    ap.add_argument("--ab-other", type=int, default=20, help="comparisons for +5%% and +20%% (default 20)")
    ap.add_argument("--duration", type=float, default=5.0, help="--npf-duration of every run (default 5)")
    ap.add_argument("--service-us", type=float, default=500.0, help="the model's service time (default 500)")
    ap.add_argument("--rounds", type=int, default=None, help="--npf-rounds (default: the plugin's)")
    ap.add_argument("--tolerance", default=None, help="--npf-tolerance (default: the plugin's)")
    args = ap.parse_args()
    if args.quick:
        args.aa, args.ab, args.ab_other, args.duration = 10, 5, 5, 2.0
    extra = [f"--npf-rounds={args.rounds}"] if args.rounds else []
    if args.tolerance:
        extra.append(f"--npf-tolerance={args.tolerance}")
    with tempfile.TemporaryDirectory(prefix="npf-gate-") as tmp:
        p = Project(Path(tmp), args.duration, args.service_us)
        print(f"# BusyWait {args.service_us:.0f} us, --npf-duration={args.duration}, {os.cpu_count()} CPUs; "
              f"A/A {args.aa} runs, +10% {args.ab} runs, +5%/+20% {args.ab_other} runs; {' '.join(extra)}", flush=True)
        p.ours(1.0, "--npf-save-baseline", *extra)
        p.theirs(1.0, "--benchmark-save=base")
        ours_aa, theirs_aa = Tally("A/A neuronperf gate"), Tally("A/A pytest-benchmark mean:5%")
        for i in range(args.aa):
            v, w = p.ours(1.0, *extra)
            ours_aa.verdicts.append(v)
            ours_aa.seconds.append(w)
            v, w = p.theirs(1.0, "--benchmark-compare=0001", "--benchmark-compare-fail=mean:5%")
            theirs_aa.verdicts.append(v)
            theirs_aa.seconds.append(w)
            if (i + 1) % 10 == 0:
                print(f"  ... {i + 1} A/A pairs: ours {ours_aa.count('fail')} fail, "
                      f"pytest-benchmark {theirs_aa.count('fail')} fail", flush=True)
        tallies = []
        for factor, runs in ((1.05, args.ab_other), (1.10, args.ab), (1.20, args.ab_other)):
            t = Tally(f"A/B +{round((factor - 1) * 100)}% service time, neuronperf gate")
            for _ in range(runs):
                v, w = p.ours(factor, *extra)
                t.verdicts.append(v)
                t.seconds.append(w)
            tallies.append(t)
            print(f"  ... {t.name}: {t.count('fail')}/{runs} detected", flush=True)
        print(ours_aa.line("false alarms") + " (target <= 1%)")
        print(theirs_aa.line("false alarms") + " (reference, same machine and pairs)")
        for t in tallies:
            target = " (target >= 95%)" if "+10%" in t.name else ""
            print(t.line("detected") + target)


if __name__ == "__main__":
    main()
