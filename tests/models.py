"""Models for the test suite, at module top level so model-copy processes can import them."""

from __future__ import annotations

import os
import time

import torch
from torch import nn


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TwoInputs(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


class BusyWait(nn.Module):
    """Spins for NPF_SERVICE_US microseconds (default 200): compute-like, with a known service time."""

    def __init__(self) -> None:
        super().__init__()
        self.service_ns = int(float(os.environ.get("NPF_SERVICE_US", "200")) * 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        end = time.perf_counter_ns() + self.service_ns
        while time.perf_counter_ns() < end:
            pass
        return x


class RaisesInForward(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom in forward")


class RaisesInInit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        raise ValueError("boom in __init__")


class ExitsInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > 20:
            os._exit(3)
        return x


class HangsInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls > 20:
            time.sleep(3600)
        return x


class PairDataset(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """(features, label) items, like a labelled data set."""

    def __init__(self, n: int = 50) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.full((1, 16), float(i)), i % 3


def first_item(item: tuple[torch.Tensor, int]) -> torch.Tensor:
    return item[0]


def times_two(x: torch.Tensor) -> torch.Tensor:
    return x * 2


def argmax(y: torch.Tensor) -> torch.Tensor:
    return y.argmax()


def record_setup(copy_id: int, config: dict[str, object], model: object) -> None:
    """setup_fn that appends what each copy saw to the file named by NPF_TEST_LOG."""
    import json

    with open(os.environ["NPF_TEST_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({
            "id": copy_id, "n_models": config["n_models"], "pid": os.getpid(),
            "visible_cores": os.environ.get("NEURON_RT_VISIBLE_CORES"),
            "affinity": sorted(os.sched_getaffinity(0)), "threads": torch.get_num_threads(),
            "model": type(model).__name__,
        }) + "\n")


def record_env(copy_id: int, config: dict[str, object]) -> None:
    import json

    with open(os.environ["NPF_TEST_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"env_setup": copy_id, "batch_size": config["batch_size"]}) + "\n")


def single_thread(copy_id: int, config: dict[str, object], model: object) -> None:
    torch.set_num_threads(1)
