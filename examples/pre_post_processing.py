"""Pre- and postprocessing are timed as part of each inference, and reported as their own phases.

    python examples/pre_post_processing.py
"""

from __future__ import annotations

import torch
from models import TinyMLP

import pytest_neuronperf as npf


def normalise(x: torch.Tensor) -> torch.Tensor:
    # Functions that run in model copies are defined at module top level (lambdas cannot be sent).
    return (x - x.mean()) / (x.std() + 1e-6)


def top_class(logits: torch.Tensor) -> torch.Tensor:
    return logits.argmax(dim=1)


if __name__ == "__main__":
    reports = npf.cpu.benchmark(TinyMLP, torch.randn(1, 64), preprocess_fn=normalise, postprocess_fn=top_class,
                                n_models=1, workers_per_model=1, duration=2)
    npf.print_reports(reports, cols=["throughput_avg", "preprocess_avg_ms", "infer_avg_ms", "postprocess_avg_ms",
                                     "e2e_avg_ms", "latency_ms_p99"])
