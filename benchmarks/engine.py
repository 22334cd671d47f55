"""The runner's performance targets, each printed as `name: value (target)` against a reference
measured in the same run.

    python benchmarks/engine.py            # full run (a few minutes on 2 cores)
    python benchmarks/engine.py --quick    # shorter windows, fewer repeats
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch
from bench_models import BusyWait, Identity, MLP8x256, single_thread, watch_rss

import pytest_neuronperf as npf


def bare_loop(model: torch.nn.Module, x: torch.Tensor, duration: float) -> float:
    """The reference: one thread, perf_counter around each call, every latency kept."""
    torch.set_num_threads(1)
    latencies: list[float] = []
    append = latencies.append
    with torch.inference_mode():
        for _ in range(10):
            model(x)
        clock = time.perf_counter
        end = clock() + duration
        while True:
            t0 = clock()
            model(x)
            t1 = clock()
            append(t1 - t0)
            if t1 > end:
                break
    return len(latencies) / duration


def ours(model_cls: type, x: torch.Tensor, duration: float, **kw: Any) -> dict[str, Any]:
    params: dict[str, Any] = {"n_models": 1, "workers_per_model": 1, "setup_fn": single_thread, "warmup": 50}
    params.update(kw)
    (report,) = npf.benchmark(model_cls, x, duration=duration, **params)
    return report


def median_ratio(reps: int, a: Callable[[], float], b: Callable[[], float]) -> tuple[float, float, float]:
    ratios, av, bv = [], [], []
    for _ in range(reps):
        x, y = a(), b()
        av.append(x)
        bv.append(y)
        ratios.append(x / y)
    return statistics.median(ratios), statistics.median(av), statistics.median(bv)


def overhead(d: float, reps: int) -> None:
    for name, cls, x, target in (("Identity 1x8", Identity, torch.randn(1, 8), 0.80),
                                 ("MLP 8x256", MLP8x256, torch.randn(1, 256), 0.97)):
        model = cls().eval()
        r, o, b = median_ratio(reps, lambda cls=cls, x=x: ours(cls, x, d)["throughput_avg"],
                               lambda model=model, x=x: bare_loop(model, x, d))
        print(f"overhead {name}: {r:.3f} x bare loop ({o:.0f}/s vs {b:.0f}/s) (target >= {target})")


def accuracy(d: float) -> None:
    os.environ["NPF_SERVICE_US"] = "1000"
    rep = ours(BusyWait, torch.randn(1, 1), d)
    p50, p99, infer50 = rep["latency_ms_p50"], rep["latency_ms_p99"], rep["infer_ms_p50"]
    print(f"accuracy p50: {p50 / 1.0:.4f} x 1.000 ms (target within 2%)")
    print(f"accuracy p99: {p99 / 1.0:.4f} x 1.000 ms (target within 5%)")
    print(f"accuracy model-only p50: {infer50 / 1.0:.4f} x 1.000 ms (reference)")


def scaling(d: float, reps: int) -> None:
    x = torch.randn(1, 256)
    r, two, one = median_ratio(reps, lambda: ours(MLP8x256, x, d, n_models=2)["throughput_avg"],
                               lambda: ours(MLP8x256, x, d, n_models=1)["throughput_avg"])
    print(f"scaling n_models=2: {r:.3f} x n_models=1 ({two:.0f}/s vs {one:.0f}/s) (target >= 1.85)")
    ref = bare_two_process(d)
    print(f"scaling bare two-process loop: {ref:.3f} x one process (reference)")


def _bare_child(d: float, core: int, q: Any) -> None:
    os.sched_setaffinity(0, {core})
    q.put(bare_loop(MLP8x256().eval(), torch.randn(1, 256), d))


def bare_two_process(d: float) -> float:
    import multiprocessing as mp

    ctx = mp.get_context("forkserver")
    cores = sorted(os.sched_getaffinity(0))

    def run(n: int) -> float:
        q = ctx.Queue()
        ps = [ctx.Process(target=_bare_child, args=(d, cores[i % len(cores)], q)) for i in range(n)]
        for p in ps:
            p.start()
        total = sum(q.get() for _ in ps)
        for p in ps:
            p.join()
        return total

    return run(2) / run(1)


def startup(d: float) -> None:
    t = time.perf_counter()
    reports = npf.benchmark(MLP8x256, torch.randn(1, 256), duration=d, setup_fn=single_thread)
    wall = time.perf_counter() - t
    n = len(reports)
    print(f"startup {n}-configuration default matrix at d={d}: {wall:.2f} s = {n}*d + {wall - n * d:.2f} s "
          f"(target <= {n}*d + 4 s)")


def memory(durations: list[float]) -> None:
    growth = []
    for d in durations:
        with tempfile.NamedTemporaryFile("r", suffix=".rss") as log:
            os.environ["NPF_RSS_LOG"] = log.name
            (rep,) = npf.benchmark(Identity, torch.randn(1, 8), n_models=1, workers_per_model=1, duration=d,
                                   setup_fn=watch_rss)
            start, peak = map(int, Path(log.name).read_text().split())
        growth.append((peak - start) / 1024)
        print(f"memory {d:.0f} s Identity run ({rep['latency_samples']} inferences): copy RSS grew "
              f"{growth[-1]:.1f} MiB (target <= 64 MiB)")
    print(f"memory growth ratio {durations[-1]:.0f} s / {durations[0]:.0f} s: "
          f"{growth[-1] / max(growth[0], 0.1):.2f} (target: does not rise with the duration, ~1)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter windows and fewer repeats")
    ap.add_argument("--only", choices=["overhead", "accuracy", "scaling", "startup", "memory"])
    args = ap.parse_args()
    d, reps = (1.0, 1) if args.quick else (3.0, 3)
    print(f"# {os.cpu_count()} CPUs, torch {torch.__version__}, durations {d} s, {reps} repeat(s)")
    steps: dict[str, Callable[[], None]] = {
        "overhead": lambda: overhead(d, reps),
        "accuracy": lambda: accuracy(d * 2),
        "scaling": lambda: scaling(d, reps),
        "startup": lambda: startup(d),
        "memory": lambda: memory([5.0, 10.0] if args.quick else [5.0, 30.0]),
    }
    for name, step in steps.items():
        if args.only in (None, name):
            step()


if __name__ == "__main__":
    main()
