"""A map-style Dataset as input: run through once per model copy, or looped for the whole duration.

    python examples/dataset.py
"""

from __future__ import annotations

import torch
from models import TinyMLP
from torch.utils.data import Dataset

import pytest_neuronperf as npf


class LabelledVectors(Dataset[tuple[torch.Tensor, int]]):
    """(features, label) pairs made in code: no download."""

    def __init__(self, n: int = 2000) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 1, 64, generator=generator)
        self.y = torch.randint(0, 10, (n,), generator=generator)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.x[i], int(self.y[i])


def features(item: tuple[torch.Tensor, int]) -> torch.Tensor:
    return item[0]  # the model takes the features, not the label


if __name__ == "__main__":
    data = LabelledVectors()
    once = npf.cpu.benchmark(TinyMLP, data, batch_sizes=1, preprocess_fn=features, n_models=[1, 2],
                             workers_per_model=1, duration=30)  # ends early: each copy runs the data set once
    looped = npf.cpu.benchmark(TinyMLP, data, batch_sizes=1, preprocess_fn=features, loop_dataset=True,
                               n_models=1, workers_per_model=1, duration=2)
    npf.print_reports(once + looped, cols=["total_infs", "total_s", "throughput_avg", "latency_ms_p99", "n_models"])
