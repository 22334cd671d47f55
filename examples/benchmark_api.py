"""The standalone API on two small CPU models: benchmark, print the table, write CSV and JSON.

    python examples/benchmark_api.py [DURATION_SECONDS]
"""

from __future__ import annotations

import sys

import torch
from models import SmallConv, TinyMLP

import pytest_neuronperf as npf


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    npf.set_verbosity(1)
    # The default matrix: n_models = [1, MAX] x workers_per_model = [1, 2], MAX = usable CPU cores.
    reports = npf.cpu.benchmark(TinyMLP, torch.randn(1, 64), duration=duration)
    # Two batch sizes, one input each (paired by position), one worker per copy.
    reports += npf.cpu.benchmark(
        SmallConv, [torch.randn(1, 3, 32, 32), torch.randn(8, 3, 32, 32)], batch_sizes=[1, 8],
        n_models=1, workers_per_model=1, duration=duration,
    )
    npf.print_reports(reports)
    print("wrote", npf.write_csv(reports, "example_results.csv"))
    print("wrote", npf.write_json(reports, "example_results.json"))


if __name__ == "__main__":  # model copies import this module again; the guard keeps them from re-running it
    main()
