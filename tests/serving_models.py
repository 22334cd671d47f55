"""Models with a known service time for the open-loop tests, at module top level so model-copy processes
can import them by module path."""

from __future__ import annotations

import os
import time
from typing import TypeVar

T = TypeVar("T")

# The service time of FixedService unless NPF_SERVICE_US says otherwise: long against the scheduler's
# jitter (tens of microseconds), short enough for hundreds of requests in a window of a second.
DEFAULT_SERVICE_US = 2000.0


def spin(ns: int) -> None:
    """Busy-wait ``ns`` nanoseconds: compute-like (it holds a core), with no sleep overshoot."""
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


class FixedService:
    """Spins for a fixed time per call (``service_us``, else NPF_SERVICE_US, else 2 ms) and returns its input.

    A deterministic service time makes one copy with one worker an M/D/1 queue under Poisson arrivals,
    whose mean latency is known in closed form.
    """

    def __init__(self, service_us: float | None = None) -> None:
        us = service_us if service_us is not None else float(os.environ.get("NPF_SERVICE_US", DEFAULT_SERVICE_US))
        self.service_ns = int(us * 1000)

    def __call__(self, x: T) -> T:
        spin(self.service_ns)
        return x


def service_ms() -> float:
    """The service time FixedService is configured with here, in ms."""
    return FixedService().service_ns / 1e6
