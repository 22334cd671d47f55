"""Models of benchmarks/serving.py (top level, so model copies can import them by module path)."""

from __future__ import annotations

import os
import time

import torch
from torch import nn

SERVICE_ENV = "NPF_SERVICE_US"


class Identity(nn.Identity):
    """Returns its input: what is left to time is the harness and its load generator."""


class FixedService(nn.Module):
    """Spins for NPF_SERVICE_US microseconds (default 2000): a deterministic service time, the D of M/D/1.

    A spin, not a sleep: sleeping overshoots by tens of microseconds, unevenly, and the queueing
    theory this model is checked against assumes every service takes the same time.
    """

    def __init__(self) -> None:
        super().__init__()
        self.service_ns = int(float(os.environ.get(SERVICE_ENV, "2000")) * 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        end = time.perf_counter_ns() + self.service_ns
        while time.perf_counter_ns() < end:
            pass
        return x
