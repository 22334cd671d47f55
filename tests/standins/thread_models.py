"""Models that report the torch intra-op thread count each worker thread of a copy runs with.

Each call appends ``<thread name> <torch.get_num_threads()>`` to the file named by
``NPF_STANDIN_THREADS_LOG`` (once per thread), so a test can read what the copy's workers saw.
"""

from __future__ import annotations

import os
import threading

import torch

THREADS_LOG = "NPF_STANDIN_THREADS_LOG"


class ThreadCounting(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        name = threading.current_thread().name
        if name not in self._seen:
            self._seen.add(name)
            with open(os.environ[THREADS_LOG], "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()} {name} {torch.get_num_threads()}\n")
        return x @ x
