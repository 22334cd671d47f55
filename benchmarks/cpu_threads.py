"""CPU copies with several workers: the harness against a bare loop of the same process / thread layout.

    python benchmarks/cpu_threads.py                 # every default configuration, 6 rounds of 3 s (~4 min on 2 cores)
    python benchmarks/cpu_threads.py --duration 2 --rounds 2    # a smoke check

Method. The model is a small BERT built from a ``transformers`` config (2 layers, hidden size 128, no
download), called on int64 token ids of shape 1x32. The configurations are those of the default matrix
on this machine (``n_models`` in [1, MAX] x ``workers_per_model`` in [1, 2], as ``benchmark()`` builds it
with neither given). For each, ``benchmark()`` runs it, and a bare loop runs the same layout without the
harness: n processes, each pinned to its equal share of c cores (the CPU backend's split) with
``torch.set_num_threads(max(1, c // w))`` (the harness's intra-op rule) and the model built under
inference mode (as a copy builds it), and w Python threads in each calling the model back to back over a
window every process opens at the same clock time (the processes stay up across the windows; the
threads warm up before each). Throughput is
completed calls in the window / window. Harness and bare alternate, round by round and in alternating
order (harness first, then bare first), so drift of the machine (other processes, frequency) falls on
both; each round gives a paired ratio, and the figure is the median of those ratios (the ratio of the
sums beside it). The target is harness / bare within 5%: what the harness adds per call (two clock
reads and two list appends) must not show at this model's ~1-2 ms per call. The load average before
each configuration is printed: on a shared machine, other processes move single rounds by more than
5%, which the spread of the per-round ratios shows.

For configurations with w > 1 the former layout (every worker on c intra-op threads: w x c threads on c
cores, ``intra_op_threads=c``) runs too, as the figure the rule replaces.

Why a bare loop of the same layout, not of one thread: it separates the harness's cost from the cost of
the layout itself (GIL contention of w Python threads, w x t intra-op threads on c cores), which a bare
loop pays too. It is a measurement, not a test: it exits 0 whatever it measured.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

import pytest_neuronperf as npf
from pytest_neuronperf._util import machine
from pytest_neuronperf.backends.base import worker_threads
from pytest_neuronperf.runner.benchmark import prepare

SEQ_LEN = 32
WARMUP_CALLS = 20
TARGET = 0.05
# Time for every bare process to warm up (WARMUP_CALLS per thread) before the common window opens.
WINDOW_LEAD_S = 0.5


def make_bert() -> torch.nn.Module:
    """A 2-layer BERT of hidden size 128, weights from a fixed seed (built, not downloaded)."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512)
    model = BertModel(config)
    model.eval()
    return model


def token_ids() -> torch.Tensor:
    return torch.randint(1000, 2000, (1, SEQ_LEN), dtype=torch.int64, generator=torch.Generator().manual_seed(0))


# --- the bare loop ---------------------------------------------------------------------------------


def _bare_window(model: Any, ids: torch.Tensor, workers: int, start_ns: int, stop_ns: int) -> tuple[int, list[int]]:
    """w threads calling the model back to back from ``start_ns``: (calls done by ``stop_ns``, their latencies)."""
    counts = [0] * workers
    latencies: list[list[int]] = [[] for _ in range(workers)]

    def work(i: int) -> None:
        with torch.inference_mode():
            for _ in range(WARMUP_CALLS):
                model(ids)
            while time.monotonic_ns() < start_ns:
                time.sleep(0.0005)
            n = 0
            mine = latencies[i]
            while True:
                t0 = time.monotonic_ns()
                model(ids)
                t1 = time.monotonic_ns()
                if t1 > stop_ns:
                    break
                n += 1
                mine.append(t1 - t0)
            counts[i] = n

    pool = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts), [v for lat in latencies for v in lat]


def _bare_process(cores: list[int], threads: int, workers: int, commands: Any, out: Any) -> None:
    """One bare "copy": pinned, its intra-op threads set, the model built; then one window per command."""
    os.sched_setaffinity(0, cores)
    torch.set_num_threads(threads)
    # As a copy does: the model is built under inference mode too, so its weights are inference tensors
    # (no version counters to bump per call), which is a few percent at this size.
    with torch.inference_mode():
        model = make_bert()
    ids = token_ids()
    out.put(None)  # ready
    while (window := commands.get()) is not None:
        out.put(_bare_window(model, ids, workers, *window))


class Bare:
    """n bare processes x w threads: the harness's core split and intra-op threads, without the harness.

    The processes stay up across the windows of a configuration (only the windows are measured), so
    that many short paired rounds fit in the time one fresh start per round would take.
    """

    def __init__(self, n_models: int, workers: int) -> None:
        cpus = machine.usable_cpus()
        share = len(cpus) // n_models
        threads = worker_threads(share, workers) or 1
        ctx = multiprocessing.get_context("spawn")
        self._out = ctx.Queue()
        self._commands = [ctx.Queue() for _ in range(n_models)]
        self._procs = [ctx.Process(target=_bare_process, args=(cpus[i * share:(i + 1) * share], threads, workers,
                                                               self._commands[i], self._out))
                       for i in range(n_models)]
        for p in self._procs:
            p.start()
        for _ in self._procs:
            self._out.get(timeout=300)

    def window(self, duration_s: float) -> tuple[float, float]:
        """(inferences/s, p50 ms) of one window every process opens at the same clock time."""
        start_ns = time.monotonic_ns() + int(WINDOW_LEAD_S * 1e9)
        for q in self._commands:
            q.put((start_ns, start_ns + int(duration_s * 1e9)))
        results = [self._out.get(timeout=duration_s + 120) for _ in self._procs]
        total = sum(r[0] for r in results)
        lat = [v for r in results for v in r[1]]
        return total / duration_s, (statistics.median(lat) / 1e6 if lat else float("nan"))

    def close(self) -> None:
        for q in self._commands:
            q.put(None)
        for p in self._procs:
            p.join(timeout=60)


# --- the harness -----------------------------------------------------------------------------------


def harness(n_models: int, workers: int, duration_s: float, threads: int | None = None) -> dict[str, Any]:
    (report,) = npf.benchmark(make_bert, token_ids(), n_models=n_models, workers_per_model=workers,
                              duration=duration_s, intra_op_threads=threads, warmup=WARMUP_CALLS)
    assert isinstance(report, dict)
    if report["status"] != "finished":
        sys.exit(f"n_models={n_models} workers_per_model={workers}: {report['status']} {report['reason']}")
    return report


@dataclass
class Row:
    n_models: int
    workers: int
    threads: int
    harness: list[float]
    harness_p50: list[float]
    bare: list[float]
    bare_p50: list[float]
    former: float | None = None
    former_p50: float | None = None
    load: float = 0.0

    @property
    def ratios(self) -> list[float]:
        return [h / b for h, b in zip(self.harness, self.bare, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def sum_ratio(self) -> float:
        return sum(self.harness) / sum(self.bare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per window (default 3)")
    parser.add_argument("--rounds", type=int, default=6, help="harness / bare pairs per configuration (default 6)")
    args = parser.parse_args()
    cpus = machine.usable_cpus()
    plan = prepare(make_bert, token_ids())
    layouts = [(run.n_models, run.workers_per_model) for run in plan.matrix.runs]
    print(f"torch {torch.__version__}, {len(cpus)} usable cores; small BERT (2 layers, hidden 128), ids 1x{SEQ_LEN}; "
          f"{args.rounds} x {args.duration:g} s per side and configuration")
    print(f"default matrix here: {', '.join(f'n_models={n} workers={w}' for n, w in layouts)}")
    t_start = time.monotonic()
    rows = []
    for n, w in layouts:
        share = len(cpus) // n
        row = Row(n, w, worker_threads(share, w) or 1, [], [], [], [], load=os.getloadavg()[0])
        bare = Bare(n, w)
        try:
            for i in range(args.rounds):
                for side in ("harness", "bare") if i % 2 == 0 else ("bare", "harness"):
                    if side == "harness":
                        report = harness(n, w, args.duration)
                        row.harness.append(float(report["throughput_avg"]))
                        row.harness_p50.append(float(report["latency_ms_p50"]))
                        assert report["intra_op_threads"] == row.threads, report["intra_op_threads"]
                    else:
                        rate, p50 = bare.window(args.duration)
                        row.bare.append(rate)
                        row.bare_p50.append(p50)
        finally:
            bare.close()
        if w > 1 and share > 1:
            former = harness(n, w, args.duration, threads=share)
            row.former, row.former_p50 = float(former["throughput_avg"]), float(former["latency_ms_p50"])
        rows.append(row)
        print(f"  n_models={n} workers={w} (load average {row.load:.2f} before): harness "
              f"{[round(v) for v in row.harness]}/s, bare {[round(v) for v in row.bare]}/s, "
              f"ratios {[round(r, 3) for r in row.ratios]}", flush=True)

    print()
    print("| n_models | workers | intra-op threads / worker | harness inf/s (p50 ms) | bare inf/s (p50 ms) "
          "| harness / bare, median of rounds (of sums) | within 5% | former layout: c threads / worker, "
          "inf/s (p50 ms) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        former = "-" if r.former is None else f"{r.former:.0f} ({r.former_p50:.2f}) with {len(cpus) // r.n_models}"
        print(f"| {r.n_models} | {r.workers} | {r.threads} | {statistics.mean(r.harness):.0f} "
              f"({statistics.median(r.harness_p50):.2f}) | {statistics.mean(r.bare):.0f} "
              f"({statistics.median(r.bare_p50):.2f}) | {r.ratio:.3f} ({r.sum_ratio:.3f}) | "
              f"{'yes' if abs(r.ratio - 1) <= TARGET else 'no'} | {former} |")
    print(f"\nwall time {time.monotonic() - t_start:.0f} s, load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
