"""Open-loop load through ``benchmark``: requests on a seeded schedule, latency counted from each arrival.

One copy with one worker serving a model of fixed service time S under Poisson arrivals is an M/D/1
queue, whose mean latency is S + rho S / (2 (1 - rho)) at utilisation rho; that is what the
measurement must come close to, and what a closed loop (which never queues) cannot show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

import pytest_neuronperf as npf
from pytest_neuronperf.runner.results import ConfigResult
from pytest_neuronperf.spec import fields
from pytest_neuronperf.spec.load import OpenLoad, arrival_offsets_ns, share_of_copy
from tests import models
from tests.serving_models import FixedService, service_ms

pytestmark = pytest.mark.usefixtures("no_leftover_children")

S_MS = service_ms()
X = torch.zeros(1, 4)
ONE: dict[str, Any] = {"n_models": 1, "workers_per_model": 1, "warmup": 3}
# A busy machine stretches some service times; the M/D/1 figure holds only for a fixed one.
STEADY_SERVICE = 1.05
ATTEMPTS = 3

Report = dict[str, Any]


def serve(rate: float, duration: float, model: Any = FixedService, inputs: Any = X,
          **kwargs: Any) -> tuple[Report, ConfigResult]:
    """One configuration under open-loop load: its report, and the raw results it was built from."""
    options = {**ONE, **kwargs}
    results = npf.benchmark(model, inputs, duration=duration, request_rate=rate, return_timers=True, **options)
    assert isinstance(results, list) and len(results) == 1
    (result,) = results
    assert isinstance(result, ConfigResult)
    (report,) = npf.get_reports([result])
    return report, result


def schedule(rate: float, duration: float, seed: int = 0, arrival: str = "poisson") -> npt.NDArray[np.int64]:
    return arrival_offsets_ns(OpenLoad(rate, arrival, seed=seed), duration)


def md1_mean_ms(service: float, rho: float) -> float:
    return service * (1 + rho / (2 * (1 - rho)))


def fifo_mean_ms(arrivals_ns: npt.NDArray[np.int64], service_ns: npt.NDArray[np.int64] | int) -> float:
    """Mean latency of one FIFO server: each request starts at its arrival or when the one before it ends."""
    services = np.broadcast_to(np.asarray(service_ns, dtype=np.int64), arrivals_ns.shape)
    end, total = -(1 << 62), 0
    for arrival, service in zip(arrivals_ns.tolist(), services.tolist(), strict=True):
        end = max(arrival, end) + service
        total += end - arrival
    return total / arrivals_ns.size / 1e6


def timestamps(result: ConfigResult) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(start, end) of every request the only copy served, in the order it served them."""
    (copy,) = result.rounds[0].copies
    raw = np.concatenate(copy.stats.raw)
    return raw[:, 0], raw[:, 3]


def steady(report: Report) -> bool:
    # Without pre/postprocessing the model call is the service: infer_avg_ms is the mean service time.
    return bool(report["infer_avg_ms"] <= STEADY_SERVICE * report["service_ms_p50"])


def steady_run(run: Callable[[], tuple[Report, ConfigResult]]) -> tuple[Report, ConfigResult]:
    for _ in range(ATTEMPTS):
        report, result = run()
        if steady(report):
            return report, result
    pytest.skip(f"the machine was too busy for a fixed service time in {ATTEMPTS} runs (mean "
                f"{report['infer_avg_ms']} ms against a median of {report['service_ms_p50']} ms)")


def check_md1(rho: float, duration: float, seed: int) -> None:
    rate = rho / (S_MS / 1e3)
    arrivals = schedule(rate, duration, seed)
    offered_rho = arrivals.size / duration * S_MS / 1e3
    # The seed is one whose schedule, served in exactly S, lands near the formula: what is left is the runner's.
    assert fifo_mean_ms(arrivals, int(S_MS * 1e6)) == pytest.approx(md1_mean_ms(S_MS, offered_rho), rel=0.05)
    for _ in range(ATTEMPTS):
        report, result = serve(rate, duration, seed=seed)
        starts, ends = timestamps(result)
        # Served FIFO in the service times this run measured, would these arrivals queue as an M/D/1 queue
        # does? A busy machine that preempted a few requests for several S makes them queue longer; then
        # the formula no longer applies, whatever the runner does.
        replayed = fifo_mean_ms(arrivals + result.rounds[0].window_start_ns, ends - starts)
        if steady(report) and replayed == pytest.approx(md1_mean_ms(S_MS, offered_rho), rel=0.1):
            break
    else:
        pytest.skip(f"the machine was too busy for a fixed service time in {ATTEMPTS} runs (mean "
                    f"{report['infer_avg_ms']} ms against a median of {report['service_ms_p50']} ms; the "
                    f"measured service times queue for {replayed:.2f} ms on average)")
    service = report["service_ms_p50"]
    assert service == pytest.approx(S_MS, rel=0.05)
    rho_measured = report["offered_rps"] * service / 1e3
    assert report["e2e_avg_ms"] == pytest.approx(md1_mean_ms(service, rho_measured), rel=0.15)


@pytest.fixture(scope="module")
def half_load() -> tuple[Report, ConfigResult]:
    """Poisson arrivals at half the model's capacity for 1.5 s (seed 0: about 350 requests)."""
    return serve(0.5 / (S_MS / 1e3), 1.5)


def test_every_request_starts_at_its_arrival_or_when_the_one_before_it_ends(
        half_load: tuple[Report, ConfigResult]) -> None:
    report, result = half_load
    starts, ends = timestamps(result)
    arrivals = schedule(0.5 / (S_MS / 1e3), 1.5) + result.rounds[0].window_start_ns
    assert starts.size == arrivals.size == report["latency_samples"]
    assert np.all(starts >= arrivals)
    free = np.maximum(arrivals, np.concatenate([[0], ends[:-1]]))
    assert float(np.median(starts - free)) < 100_000  # ns: at once, not a scheduler tick later


def test_latency_counts_from_the_scheduled_arrival_so_it_includes_the_queue(
        half_load: tuple[Report, ConfigResult]) -> None:
    report, result = half_load
    starts, ends = timestamps(result)
    arrivals = schedule(0.5 / (S_MS / 1e3), 1.5) + result.rounds[0].window_start_ns
    assert report["e2e_avg_ms"] == pytest.approx(float((ends - arrivals).mean()) / 1e6, abs=1e-3)
    # Served FIFO in the service times measured, the same arrivals wait as long as the report says.
    assert report["e2e_avg_ms"] == pytest.approx(fifo_mean_ms(arrivals, ends - starts), rel=0.1)
    assert report["wait_ms_p99"] > 0.5 * S_MS and report["late_requests"] > 0
    assert report["latency_ms_p99"] >= report["service_ms_p99"] and report["latency_ms_p50"] >= report["service_ms_p50"]


def test_the_rates_offered_and_achieved_are_those_of_the_schedule(half_load: tuple[Report, ConfigResult]) -> None:
    report, result = half_load
    arrivals = schedule(0.5 / (S_MS / 1e3), 1.5)
    assert result.rounds[0].copies[0].stats.offered == arrivals.size
    assert report["offered_rps"] == pytest.approx(arrivals.size / 1.5, abs=1e-3)
    assert report["offered_rps"] == pytest.approx(report["request_rate"], rel=0.1)
    assert report["achieved_rps"] == pytest.approx(report["offered_rps"], rel=0.03)
    assert report["request_rate"] == pytest.approx(0.5 / (S_MS / 1e3)) and report["arrival"] == "poisson"
    assert report["status"] == fields.STATUS_OK and report["overloaded"] is False
    assert report["dropped_requests"] == 0 and report["unfinished_requests"] == 0


def test_the_mean_latency_at_half_load_is_that_of_an_m_d_1_queue() -> None:
    check_md1(rho=0.5, duration=1.5, seed=0)


@pytest.mark.slow
def test_the_mean_latency_at_eight_tenths_load_is_that_of_an_m_d_1_queue() -> None:
    check_md1(rho=0.8, duration=4.0, seed=2)


def test_open_loop_latency_exceeds_the_closed_loop_latency_of_the_same_model(
        half_load: tuple[Report, ConfigResult]) -> None:
    (closed,) = npf.benchmark(FixedService, X, duration=0.5, **ONE)
    assert isinstance(closed, dict)
    assert closed["status"] == fields.STATUS_OK and closed["request_rate"] is None
    assert closed["latency_ms_p50"] == pytest.approx(S_MS, rel=0.1)
    assert half_load[0]["e2e_avg_ms"] > 1.2 * closed["latency_ms_p50"]


def test_constant_arrivals_below_capacity_never_queue() -> None:
    report, _ = serve(0.5 / (S_MS / 1e3), 0.4, arrival="constant")
    assert report["status"] == fields.STATUS_OK and report["arrival"] == "constant"
    assert report["latency_samples"] == schedule(0.5 / (S_MS / 1e3), 0.4, arrival="constant").size == 100
    if report["service_ms_p99"] > 1.5 * S_MS:
        # Other work preempted the spinning model past the gap between arrivals: then they do queue.
        pytest.skip(f"a busy machine stretched the service time (p99 {report['service_ms_p99']} ms for {S_MS} ms)")
    assert report["wait_ms_p50"] < 0.1 * S_MS
    assert report["latency_ms_p50"] == pytest.approx(S_MS, rel=0.1)


def test_a_rerun_with_the_same_seed_replays_the_same_requests() -> None:
    first, _ = serve(200, 0.4, seed=3)
    again, _ = serve(200, 0.4, seed=3)
    expected = schedule(200, 0.4, seed=3).size
    assert first["offered_rps"] == again["offered_rps"] == pytest.approx(expected / 0.4, abs=1e-3)
    assert schedule(200, 0.4, seed=4).size != expected  # another seed would have offered another count


def test_at_max_concurrency_arrivals_are_dropped_and_the_admitted_never_queue() -> None:
    rho = 0.9
    report, result = serve(rho / (S_MS / 1e3), 0.5, max_concurrency=1)
    stats = result.rounds[0].copies[0].stats
    assert stats.offered == stats.e2e.count + stats.dropped + stats.unfinished
    assert report["dropped_requests"] == stats.dropped > 0
    # One place in the system: a loss system, which turns away rho / (1 + rho) of the arrivals.
    assert 0.25 < stats.dropped / stats.offered < 0.7
    assert report["wait_ms_p50"] < 0.25 * S_MS and report["latency_ms_p50"] < 1.5 * S_MS
    assert report["e2e_avg_ms"] < 3 * S_MS
    # Turning away a share of the load is not keeping up with it.
    assert report["status"] == fields.STATUS_OVERLOADED and "dropped at max_concurrency" in report["reason"]


def test_a_rate_far_above_capacity_is_overloaded_never_finished_and_misses_any_slo() -> None:
    # 0.8 s at 3x: a backlog of about 800 requests, more than the 1 s drain serves.
    rate = 3 / (S_MS / 1e3)
    report, _ = serve(rate, 0.8, slo="p99<=10s")
    assert report["status"] == fields.STATUS_OVERLOADED and report["overloaded"] is True
    assert f"request_rate={rate:g}" in report["reason"] and report["reason"].startswith("overloaded: ")
    assert report["achieved_rps"] < 0.5 * report["offered_rps"]
    assert report["slo"] == "p99<=10000ms" and report["slo_met"] is False


def test_a_rate_far_above_capacity_is_overloaded_even_when_the_drain_clears_the_backlog() -> None:
    # 0.1 s at 3x: about 100 requests behind at the close, served in a fifth of the 1 s drain.
    rate = 3 / (S_MS / 1e3)
    report, _ = serve(rate, 0.1, slo="p99<=10s")
    assert report["unfinished_requests"] == 0
    assert report["status"] == fields.STATUS_OVERLOADED and f"request_rate={rate:g}" in report["reason"]
    assert report["slo_met"] is False


@pytest.mark.parametrize(("inputs", "pre", "post"), [
    (models.PairDataset(7), models.first_item, models.argmax),
    (torch.ones(1, 16), models.times_two, models.argmax),
], ids=["dataset", "fixed-input"])
def test_inputs_and_pre_and_postprocessing_work_under_open_loop_load(inputs: Any, pre: Callable[..., Any],
                                                                     post: Callable[..., Any]) -> None:
    report, _ = serve(200, 0.4, inputs=inputs, preprocess_fn=pre, postprocess_fn=post)
    offered = schedule(200, 0.4).size
    assert report["status"] == fields.STATUS_OK
    assert report["latency_samples"] == offered > 7  # a dataset is dealt out in turn, round after round
    assert report["preprocess_avg_ms"] > 0 and report["postprocess_avg_ms"] > 0
    assert report["infer_ms_p50"] == pytest.approx(S_MS, rel=0.1)
    assert report["service_ms_p50"] >= report["infer_ms_p50"]


def test_open_loop_load_runs_in_process() -> None:
    report, result = serve(200, 0.4, multiprocess=False)
    assert report["status"] == fields.STATUS_OK and report["multiprocess"] is False
    assert result.rounds[0].copies[0].stats.offered == report["latency_samples"] == schedule(200, 0.4).size
    assert report["service_ms_p50"] == pytest.approx(S_MS, rel=0.1)


def test_the_copies_share_the_requests_in_turn() -> None:
    rate, duration = 0.4 / (S_MS / 1e3) * 2, 0.5
    report, result = serve(rate, duration, n_models=2)
    arrivals = schedule(rate, duration)
    copies = sorted(result.rounds[0].copies, key=lambda c: c.copy_index)
    assert [c.stats.offered for c in copies] == [share_of_copy(arrivals, i, 2).size for i in range(2)]
    assert sum(c.stats.offered for c in copies) == arrivals.size
    assert abs(copies[0].stats.offered - copies[1].stats.offered) <= 1
    assert all(c.stats.e2e.count == c.stats.offered for c in copies)
    assert report["status"] == fields.STATUS_OK and report["n_models"] == 2
    assert report["offered_rps"] == pytest.approx(arrivals.size / duration, abs=1e-3)


def test_poisson_arrivals_that_the_copies_keep_up_with_make_a_stable_round() -> None:
    # The completions follow the arrivals; their Poisson spread over the sub-windows is no drift of the model.
    (report,) = npf.benchmark(FixedService, torch.zeros(1, 4), n_models=1, workers_per_model=1, warmup=3,
                              duration=1.0, request_rate=0.3 / (service_ms() / 1e3))
    assert isinstance(report, dict) and report["status"] == "finished"
    assert report["stable"] is True and report["rounds"][0]["stable"] is True
