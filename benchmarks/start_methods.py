"""Why model copies start from a forkserver: time from "start 2 copies" to "both loaded the model",
for each multiprocessing start method, measured in one run.

    python benchmarks/start_methods.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def copy_main(conn: Any) -> None:
    import torch
    from bench_models import MLP8x256

    with torch.inference_mode():
        MLP8x256()(torch.randn(1, 256))
    conn.send("ready")
    conn.close()


def two_copies(ctx: Any) -> float:
    t = time.perf_counter()
    pipes, procs = [], []
    for _ in range(2):
        a, b = ctx.Pipe()
        p = ctx.Process(target=copy_main, args=(b,))
        p.start()
        pipes.append(a)
        procs.append(p)
    for a in pipes:
        a.recv()
    elapsed = time.perf_counter() - t
    for p in procs:
        p.join()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    results = {}
    for method in ("fork", "forkserver", "spawn"):
        ctx = mp.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["torch", "bench_models"])
            two_copies(ctx)  # the server's own start is paid once per session, not per configuration
        times = [two_copies(ctx) for _ in range(args.repeats)]
        results[method] = statistics.median(times)
    for method, seconds in results.items():
        note = " (inherits the caller's device runtime: NRT_STATE_CHILD on Neuron)" if method == "fork" else ""
        print(f"start 2 copies with {method}: {seconds * 1000:.0f} ms per configuration, "
              f"{seconds / results['forkserver']:.1f} x forkserver{note}")


if __name__ == "__main__":
    main()
