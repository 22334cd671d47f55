"""A model with two inputs: pass them as one tuple.

    python examples/multi_input.py
"""

from __future__ import annotations

import torch
from models import TwoTower

import pytest_neuronperf as npf

if __name__ == "__main__":
    inputs = (torch.randn(4, 32), torch.randn(4, 48))  # one tuple = the model's (query, doc) arguments
    reports = npf.cpu.benchmark(TwoTower, inputs, batch_sizes=4, n_models=1, workers_per_model=[1, 2], duration=2)
    npf.print_reports(reports, cols=["throughput_avg", "latency_ms_p50", "latency_ms_p99", "workers_per_model"])
