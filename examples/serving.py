"""Serving load on a small CPU model: open-loop requests at a rate, and the capacity at a latency SLO.

    python examples/serving.py [DURATION_SECONDS]

The first run offers 60% of the model's closed-loop peak as Poisson arrivals and shows the latency a
client sees (counted from each request's arrival) beside the service time. The second finds the
highest request rate whose p99 stays within 3 ms, for one and two copies, and names the better one.
"""

from __future__ import annotations

import sys

import torch
from models import SmallConv

import pytest_neuronperf as npf


def main() -> None:
    duration = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    x = torch.randn(1, 3, 32, 32)
    [closed] = npf.cpu.benchmark(SmallConv, x, n_models=1, workers_per_model=1, duration=duration)
    rate = 0.6 * float(closed["throughput_avg"])
    served = npf.cpu.benchmark(SmallConv, x, n_models=1, workers_per_model=1, duration=duration,
                               request_rate=rate, arrival="poisson", slo="p99<=3ms")
    npf.print_reports(served, cols=["offered_rps", "achieved_rps", "latency_ms_p50", "latency_ms_p99",
                                    "service_ms_p99", "wait_ms_p99", "slo_met", "status"])
    capacity = npf.cpu.benchmark(SmallConv, x, n_models=[1, 2], workers_per_model=1, duration=duration,
                                 slo="p99<=3ms", cost_per_hour=0.17)
    npf.print_reports(capacity)
    print("wrote", npf.write_json(served + capacity, "serving_results.json"))


if __name__ == "__main__":  # model copies import this module again; the guard keeps them from re-running it
    main()
