"""Open-loop load and the capacity search, measured against queueing theory.

    python benchmarks/serving.py            # full run (about 4 minutes on 2 cores)
    python benchmarks/serving.py --quick    # short windows, a smoke check (about a minute)
    python benchmarks/serving.py --duration 10 --service-us 1000 --md1-duration 120

Every figure is a ratio against a reference measured or computed in the same run:
1. Generator overhead: an identity model's closed-loop throughput is the reference; open-loop
   windows offered 10%, 25% and 50% of it should complete what they were offered.
2. Schedule accuracy: at 200 req/s on the idle identity model, how late a request starts after
   its scheduled arrival (``wait_ms_p50``, ``wait_ms_p99``).
3. M/D/1: a model that spins for a fixed service time S, under Poisson arrivals at rho = 0.5 and
   0.8, against Pollaczek-Khinchine (mean latency S + rho S / (2 (1 - rho))) from the nominal S and
   from the measured mean service time, and against a Lindley recursion over the very arrivals the
   run offered (the same sample path: what is left of the gap is the harness, not the sample).
   The same model closed loop shows latency ~ S: a closed loop never queues.
4. Capacity at ``p99<=3S``: the M/D/1 arrival rate whose sojourn-time p99 is 3S, from Erlang's
   waiting-time distribution (checked here against a 1e6-customer simulation), against the search's
   ``capacity_rps``; and the same bisection replayed by Lindley recursion over the arrivals each step
   offered.
5. Wall time: the capacity search of one configuration against a closed-loop ``benchmark()`` of it,
   both with ``duration=D``, in this process.

Windows: every closed-loop window, open-loop identity window and capacity-search step lasts D
(``--duration``; a step, and the 200 req/s window, longer where its p99 needs more samples); the
M/D/1 windows last ``--md1-duration`` (rho = 0.8) and half of it (rho = 0.5), since waiting times are
autocorrelated (at rho = 0.8 the mean of 10,000 requests still scatters by about 5%; 24,000 by
about 3%). It is a measurement, not a test: it exits 0 whatever it measured.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import numpy.typing as npt
import torch
from ratio_table import REFERENCE, Row, Target, ratio_row, table, within
from serving_models import SERVICE_ENV, FixedService, Identity

import pytest_neuronperf as npf
from pytest_neuronperf.runner.capacity import DEFAULT_RESOLUTION, SAMPLE_MARGIN, Capacity
from pytest_neuronperf.runner.results import ConfigResult
from pytest_neuronperf.spec.load import arrival_offsets_ns, open_load
from pytest_neuronperf.stats.quantiles import min_samples_for_quantile

F64 = npt.NDArray[np.float64]
IDLE_RATE = 200.0
SHARES = (0.10, 0.25, 0.50)
RHOS = (0.5, 0.8)
SLO_Q = 0.99
SLO_FACTOR = 3.0
THEORY_CUSTOMERS = 1_000_000


@dataclass(frozen=True)
class Settings:
    window_s: float
    service_s: float
    md1_s: float
    resolution: float
    seed: int

    @property
    def bound_s(self) -> float:
        return SLO_FACTOR * self.service_s

    @property
    def slo(self) -> str:
        return f"p99<={self.bound_s * 1e3:g}ms"


# --- queueing theory ------------------------------------------------------------------------------

def md1_mean_latency_s(rate: float, service_s: float) -> float:
    """Pollaczek-Khinchine for deterministic service: S + rho S / (2 (1 - rho))."""
    rho = rate * service_s
    if rho >= 1.0:
        return math.inf  # the queue grows without bound
    return service_s + rho * service_s / (2.0 * (1.0 - rho))


def md1_wait_cdf(rho: float, t: float) -> float:
    """P(W <= t S) in M/D/1 at load rho: Erlang's waiting-time distribution (exact; its alternating sum
    loses precision only for t of tens of service times, far beyond the 2 S of a p99 <= 3 S)."""
    if t < 0:
        return 0.0
    terms = (((rho * (k - t)) ** k) / math.factorial(k) * math.exp(-rho * (k - t)) for k in range(math.floor(t) + 1))
    return (1.0 - rho) * sum(terms)


def md1_rate_at_quantile(service_s: float, bound_s: float, q: float) -> float:
    """The arrival rate at which the q-quantile of the sojourn time (wait + S) is ``bound_s``."""
    t = bound_s / service_s - 1.0
    if t <= 0:
        return 0.0
    low, high = 0.0, 1.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if md1_wait_cdf(mid, t) >= q else (low, mid)
    return low / service_s


def sojourn_s(arrivals_s: F64, service_s: float) -> F64:
    """Lindley's recursion for one server and a fixed service time, vectorised: request i ends at
    (i + 1) S + max over j <= i of (a_j - j S)."""
    i = np.arange(arrivals_s.size, dtype=np.float64)
    ends = service_s * (i + 1.0) + np.maximum.accumulate(arrivals_s - service_s * i)
    out: F64 = ends - arrivals_s
    return out


def nearest_rank(values: F64, q: float) -> float:
    return float(np.percentile(values, q * 100.0, method="inverted_cdf"))


def simulated_p99_at_theory(service_s: float, bound_s: float, seed: int) -> tuple[float, float]:
    """(rate from Erlang's formula, the sojourn p99 of 1e6 simulated M/D/1 customers at that rate)."""
    rate = md1_rate_at_quantile(service_s, bound_s, SLO_Q)
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / rate, THEORY_CUSTOMERS))
    return rate, nearest_rank(sojourn_s(arrivals, service_s), SLO_Q)


def offered_arrivals_s(rate: float, duration_s: float, seed: int) -> F64:
    """The arrivals a window of ``duration_s`` at ``rate`` offers (round 0), as the copies draw them."""
    load = open_load(rate, seed=seed)
    assert load is not None
    window_s = int(duration_s * 1e9) / 1e9
    out: F64 = arrival_offsets_ns(load, window_s, 0).astype(np.float64) / 1e9
    return out


def step_seconds(rate: float, step_s: float) -> float:
    """How long the capacity search runs a step at ``rate`` (enough samples for its p99)."""
    return max(step_s, SAMPLE_MARGIN * min_samples_for_quantile(SLO_Q) / rate)


def same_arrivals_p99_s(rate: float, cfg: Settings, service_s: float) -> float:
    arrivals = offered_arrivals_s(rate, step_seconds(rate, cfg.window_s), cfg.seed)
    return nearest_rank(sojourn_s(arrivals, service_s), SLO_Q) if arrivals.size else math.inf


def replayed_search(peak_rps: float, resolution: float, cfg: Settings, service_s: float) -> float:
    """The capacity search's bisection, each step judged by Lindley's recursion over that step's arrivals."""
    low, high = 0.0, peak_rps
    while high > 0:
        rate = (low + high) / 2
        if same_arrivals_p99_s(rate, cfg, service_s) <= cfg.bound_s:
            low = rate
        else:
            high = rate
        if high - low <= resolution * peak_rps:
            break
    return low


# --- runs -----------------------------------------------------------------------------------------

def run(model: type, duration_s: float, **kw: Any) -> dict[str, Any]:
    """One configuration, 1 copy x 1 worker: its report."""
    report, _ = run_raw(model, duration_s, **kw)
    return report


def run_raw(model: type, duration_s: float, **kw: Any) -> tuple[dict[str, Any], ConfigResult]:
    """One configuration, 1 copy x 1 worker: its report and the raw result behind it."""
    x = torch.zeros(1, 8) if model is Identity else torch.zeros(1)
    results = npf.benchmark(model, x, duration=duration_s, n_models=1, workers_per_model=1, verbosity=0,
                            return_timers=True, **kw)
    result = results[0]
    assert isinstance(result, ConfigResult)
    (report,) = npf.get_reports([result])
    return report, result


def mean_service_s(result: ConfigResult) -> float:
    count = sum(c.stats.service.count for r in result.rounds for c in r.copies)
    total = sum(c.stats.service.total_ns for r in result.rounds for c in r.copies)
    return total / count / 1e9 if count else math.nan


def capacity_of(result: ConfigResult) -> Capacity:
    found = result.rounds[0].capacity
    assert found is not None, f"no capacity search ran: {result.status} {result.reason}"
    return found


# --- the five measurements ------------------------------------------------------------------------

WITHIN_10 = within(0.10)


def generator_overhead(cfg: Settings) -> list[Row]:
    closed = run(Identity, cfg.window_s)
    peak = float(closed["throughput_avg"])
    print(f"[1] identity closed loop: {peak:.0f} inf/s")
    rows = [Row("identity closed-loop throughput (reference)", f"{peak:.0f} /s", "-", None, "-", None)]
    for share in SHARES:
        r = run(Identity, cfg.window_s, request_rate=share * peak, seed=cfg.seed)
        achieved, offered = float(r["achieved_rps"]), float(r["offered_rps"])
        print(f"[1] open loop at {share:.0%} of it: offered {offered:.0f}/s, achieved {achieved:.0f}/s, "
              f"wait p50 {r['wait_ms_p50'] * 1e3:.1f} us, late {r['late_requests']}, status {r['status']}")
        rows.append(ratio_row(f"open loop {share:.0%} of peak: achieved / offered", achieved, offered, "/s",
                              Target(">= 0.99", lambda r: r >= 0.99), digits=0))
    return rows


def schedule_accuracy(cfg: Settings) -> list[Row]:
    # Long enough for the wait's p99 to rest on its sample minimum.
    duration = step_seconds(IDLE_RATE, cfg.window_s)
    r = run(Identity, duration, request_rate=IDLE_RATE, seed=cfg.seed)
    p50_us, p99_us = float(r["wait_ms_p50"]) * 1e3, float(r["wait_ms_p99"]) * 1e3
    print(f"[2] idle identity at {IDLE_RATE:g} req/s: wait p50 {p50_us:.1f} us, p99 {p99_us:.1f} us "
          f"({r['late_requests']} of {r['latency_samples']} late)")
    return [ratio_row(f"start - scheduled arrival, p50 ({IDLE_RATE:g} req/s, idle)", p50_us, 50.0, "us",
                      Target("< 50 us", lambda r: r < 1.0), digits=1),
            Row(f"start - scheduled arrival, p99 ({IDLE_RATE:g} req/s, idle)", f"{p99_us:.1f} us", "-", None, "-",
                None)]


def md1(cfg: Settings) -> list[Row]:
    s = cfg.service_s
    rows: list[Row] = []
    for rho, duration in zip(RHOS, (cfg.md1_s / 2, cfg.md1_s), strict=True):
        rate = rho / s
        report, result = run_raw(FixedService, duration, request_rate=rate, seed=cfg.seed)
        measured_ms = float(report["e2e_avg_ms"])
        s_meas = mean_service_s(result)
        nominal_ms = md1_mean_latency_s(rate, s) * 1e3
        from_meas_ms = md1_mean_latency_s(rate, s_meas) * 1e3
        same_ms = float(sojourn_s(offered_arrivals_s(rate, duration, cfg.seed), s_meas).mean()) * 1e3
        print(f"[3] M/D/1 rho={rho}: {report['latency_samples']} requests, mean latency {measured_ms:.3f} ms; "
              f"theory {nominal_ms:.3f} ms (S = {s * 1e3:g} ms), {from_meas_ms:.3f} ms (measured mean service "
              f"{s_meas * 1e3:.4f} ms, p50 {report['service_ms_p50']} ms); same arrivals {same_ms:.3f} ms; "
              f"status {report['status']}")
        rows += [
            ratio_row(f"M/D/1 rho={rho} e2e_avg vs theory, nominal S", measured_ms, nominal_ms, "ms", WITHIN_10),
            ratio_row(f"M/D/1 rho={rho} e2e_avg vs theory, measured S", measured_ms, from_meas_ms, "ms", WITHIN_10),
            ratio_row(f"M/D/1 rho={rho} e2e_avg vs Lindley on its arrivals", measured_ms, same_ms, "ms", REFERENCE),
            ratio_row(f"M/D/1 rho={rho} service_ms_p50 vs S", float(report["service_ms_p50"]), s * 1e3, "ms",
                      REFERENCE, digits=4),
        ]
    closed = run(FixedService, cfg.window_s)
    mean_ms = float(closed["e2e_avg_ms"])
    print(f"[3] closed loop: mean latency {mean_ms:.4f} ms, p99 {closed['latency_ms_p99']} ms, "
          f"{closed['throughput_avg']:.0f} inf/s")
    rows.append(ratio_row("closed loop e2e_avg vs S (no queueing seen)", mean_ms, s * 1e3, "ms", WITHIN_10,
                          digits=4))
    return rows


def search(cfg: Settings, resolution: float) -> tuple[dict[str, Any], ConfigResult, float]:
    t0 = time.perf_counter()
    report, result = run_raw(FixedService, cfg.window_s, slo=cfg.slo, seed=cfg.seed, capacity_resolution=resolution)
    return report, result, time.perf_counter() - t0


def capacity_accuracy(cfg: Settings, found: tuple[dict[str, Any], ConfigResult, float]) -> list[Row]:
    report, result, _ = found
    s = cfg.service_s
    theory_rate, sim_p99 = simulated_p99_at_theory(s, cfg.bound_s, cfg.seed)
    s_meas = float(report["e2e_avg_ms"]) / 1e3
    theory_meas = md1_rate_at_quantile(s_meas, cfg.bound_s, SLO_Q)
    capacity = capacity_of(result)
    replayed = replayed_search(capacity.peak_rps, cfg.resolution, cfg, s_meas)
    print(f"[4] theory: p99 of the sojourn = {cfg.bound_s * 1e3:g} ms at {theory_rate:.2f} req/s "
          f"(rho {theory_rate * s:.4f}); simulated {THEORY_CUSTOMERS:.0e} customers there: p99 {sim_p99 * 1e3:.4f} ms")
    print(f"[4] search {cfg.slo}, resolution {cfg.resolution:g}: peak {capacity.peak_rps:.1f} req/s, capacity "
          f"{report['capacity_rps']} req/s in [{report['capacity_low_rps']}, {report['capacity_high_rps']}]; "
          f"replayed on its arrivals {replayed:.2f}; closed-loop mean service {s_meas * 1e3:.4f} ms")
    for step in capacity.steps:
        same = same_arrivals_p99_s(step.rate, cfg, s_meas) * 1e3
        print(f"[4]   step {step.rate:8.2f} req/s: p99 {step.percentiles_ms['p99_ms']:.3f} ms "
              f"(same arrivals {same:.3f} ms), {step.samples} samples, met {step.met}")
    got = float(report["capacity_rps"])
    return [
        ratio_row(f"capacity_rps at {cfg.slo} vs M/D/1, nominal S", got, theory_rate, "/s", WITHIN_10, digits=1),
        ratio_row(f"capacity_rps at {cfg.slo} vs M/D/1, measured S", got, theory_meas, "/s", WITHIN_10, digits=1),
        ratio_row("capacity_rps vs the search replayed on its arrivals", got, replayed, "/s", REFERENCE, digits=1),
        ratio_row("M/D/1 theory check: simulated p99 at the formula's rate", sim_p99 * 1e3, cfg.bound_s * 1e3, "ms",
                  Target("within 1%", lambda r: abs(r - 1.0) <= 0.01), digits=4),
    ]


def wall_time(cfg: Settings, found: tuple[dict[str, Any], ConfigResult, float]) -> list[Row]:
    report, _, search_s = found
    t0 = time.perf_counter()
    run(FixedService, cfg.window_s)
    plain_s = time.perf_counter() - t0
    steps = len(report.get("capacity_steps") or [])
    print(f"[5] capacity search {search_s:.1f} s ({steps} steps, capacity {report['capacity_rps']} req/s at the "
          f"default resolution {DEFAULT_RESOLUTION:g}); closed-loop benchmark() {plain_s:.1f} s; "
          f"D = {cfg.window_s:g} s")
    got = float(report["capacity_rps"])
    theory = md1_rate_at_quantile(cfg.service_s, cfg.bound_s, SLO_Q)
    return [ratio_row(f"wall: capacity search vs closed-loop benchmark(), D={cfg.window_s:g} s", search_s, plain_s,
                      "s", Target("<= 8x", lambda r: r <= 8.0), digits=1),
            ratio_row(f"capacity_rps of that search (resolution {DEFAULT_RESOLUTION:g}) vs M/D/1, nominal S", got,
                      theory, "/s", REFERENCE, digits=1)]


# --- output ---------------------------------------------------------------------------------------

def parse(argv: list[str] | None) -> Settings:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short windows: a smoke check, not a measurement")
    ap.add_argument("--duration", type=float, help="D: closed-loop windows, identity windows, search steps "
                    "(default 5 s; 1 s with --quick)")
    ap.add_argument("--md1-duration", type=float, help="the M/D/1 window at rho=0.8; rho=0.5 gets half "
                    "(default 60 s; 8 s with --quick)")
    ap.add_argument("--service-us", type=float, default=2000.0, help="S, the fixed service time (default 2000)")
    ap.add_argument("--resolution", type=float, help="capacity_resolution of the accuracy search (default 0.02; "
                    f"{DEFAULT_RESOLUTION:g}, the library's, with --quick, which then times that same search)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    window = a.duration if a.duration is not None else (1.0 if a.quick else 5.0)
    md1_s = a.md1_duration if a.md1_duration is not None else (8.0 if a.quick else 60.0)
    resolution = a.resolution if a.resolution is not None else (DEFAULT_RESOLUTION if a.quick else 0.02)
    return Settings(window, a.service_us / 1e6, md1_s, resolution, a.seed)


def main(argv: list[str] | None = None) -> int:
    cfg = parse(argv)
    # The copies read it when they build the model (they inherit this process's environment).
    os.environ[SERVICE_ENV] = f"{cfg.service_s * 1e6:g}"
    t0 = time.perf_counter()
    rows = generator_overhead(cfg) + schedule_accuracy(cfg) + md1(cfg)
    accurate = search(cfg, cfg.resolution)
    timed = accurate if cfg.resolution == DEFAULT_RESOLUTION else search(cfg, DEFAULT_RESOLUTION)
    rows += capacity_accuracy(cfg, accurate) + wall_time(cfg, timed)
    print()
    print(f"S = {cfg.service_s * 1e3:g} ms, D = {cfg.window_s:g} s, M/D/1 windows {cfg.md1_s / 2:g} s / "
          f"{cfg.md1_s:g} s, torch {torch.__version__}, {os.cpu_count()} CPUs, total {time.perf_counter() - t0:.0f} s")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
