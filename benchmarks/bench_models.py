"""Models and copy hooks for the measurement scripts (top level, so model copies can import them)."""

from __future__ import annotations

import os
import threading
import time

import torch
from torch import nn


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class MLP8x256(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        layers: list[nn.Module] = []
        for _ in range(8):
            layers += [nn.Linear(256, 256), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BusyWait(nn.Module):
    """Spins for NPF_SERVICE_US microseconds: a model with a known, compute-like service time."""

    def __init__(self) -> None:
        super().__init__()
        self.service_ns = int(float(os.environ.get("NPF_SERVICE_US", "1000")) * 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        end = time.perf_counter_ns() + self.service_ns
        while time.perf_counter_ns() < end:
            pass
        return x


def single_thread(copy_id: int, config: dict[str, object], model: object) -> None:
    torch.set_num_threads(1)


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def watch_rss(copy_id: int, config: dict[str, object], model: object) -> None:
    """Records the copy's RSS after loading, then its peak, into the file named by NPF_RSS_LOG."""
    torch.set_num_threads(1)
    path = os.environ["NPF_RSS_LOG"]
    start = _rss_kib()

    def sample() -> None:
        peak = start
        while True:
            peak = max(peak, _rss_kib())
            with open(path, "w", encoding="ascii") as fh:
                fh.write(f"{start} {peak}\n")
            time.sleep(0.25)

    threading.Thread(target=sample, daemon=True).start()
