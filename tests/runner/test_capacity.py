"""Capacity at a latency objective: the search on synthetic windows, its report fields, and ``benchmark(slo=...)``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

import pytest_neuronperf as npf
from pytest_neuronperf.runner.benchmark import prepare
from pytest_neuronperf.runner.capacity import Capacity, CapacitySearch, Step, overloaded, step_of
from pytest_neuronperf.runner.orchestrator import Window, WindowResult
from pytest_neuronperf.runner.protocol import CopyResult
from pytest_neuronperf.runner.recorder import Recorder, StreamStats
from pytest_neuronperf.runner.results import ConfigResult, RoundResult
from pytest_neuronperf.spec import fields
from pytest_neuronperf.spec.load import OpenLoad
from pytest_neuronperf.spec.slo import Slo, parse_slo
from tests.serving_models import FixedService, service_ms

S_MS = service_ms()
X = torch.zeros(1, 4)
ONE: dict[str, Any] = {"n_models": 1, "workers_per_model": 1, "warmup": 3}
PEAK = 1000.0
FAST_MS, SLOW_MS = 1.0, 50.0
STEP_KEYS = {"rate", "offered_rps", "achieved_rps", "p50_ms", "p99_ms", "samples", "dropped", "overloaded", "met",
             "violations"}
Report = dict[str, Any]


def one_report(**kwargs: Any) -> Report:
    """The report of FixedService's only configuration, one copy with one worker."""
    (report,) = npf.benchmark(FixedService, X, **{**ONE, **kwargs})
    assert isinstance(report, dict)
    return report


def one_result(**kwargs: Any) -> ConfigResult:
    (result,) = npf.benchmark(FixedService, X, return_timers=True, **{**ONE, **kwargs})
    assert isinstance(result, ConfigResult)
    return result


def objective(text: str) -> Slo:
    slo = parse_slo(text)
    assert slo is not None
    return slo


# -- synthetic windows --------------------------------------------------------------------------------


def stream(latency_ms: float, n: int, *, service: float | None = None, offered: int | None = None,
           completed: int | None = None, dropped: int = 0, unfinished: int = 0) -> StreamStats:
    """``n`` requests of ``latency_ms`` each; with ``service`` (ms) an open-loop window's, else a closed loop's."""
    stats = StreamStats()
    e2e = np.full(n, int(latency_ms * 1e6), dtype=np.int64)
    stats.e2e.add(e2e)
    stats.e2e.traces.append(e2e)
    if service is not None:
        stats.service.add(np.full(n, int(service * 1e6), dtype=np.int64))
        stats.offered = offered if offered is not None else n + dropped + unfinished
        stats.completed_in_window = completed if completed is not None else n
        stats.dropped, stats.unfinished = dropped, unfinished
    return stats


def window_result(window: Window, stats: StreamStats) -> WindowResult:
    copy = CopyResult(copy_index=0, cores=(0,), pid=1, load_ns=0, warmup_count=1, warmup_ns=1, stats=stats)
    return WindowResult(window, [copy], 0, int(window.duration_s * 1e9), {})


def closed_window(peak: float = PEAK) -> WindowResult:
    return window_result(Window(1.0), stream(FAST_MS, int(peak)))


def system(capacity: float, service: float = 0.5) -> Callable[[Window], WindowResult]:
    """A model that meets a tight SLO up to ``capacity`` requests/s and misses it above."""
    def respond(window: Window) -> WindowResult:
        assert window.load is not None
        rate = window.load.request_rate
        n = max(1, round(rate * window.duration_s))
        return window_result(window, stream(FAST_MS if rate <= capacity else SLOW_MS, n, service=service))
    return respond


def drive(search: CapacitySearch, respond: Callable[[Window], WindowResult], peak: float = PEAK) -> Capacity:
    windows = [closed_window(peak)]
    probe = search(windows)
    while probe is not None:
        assert len(windows) < 50, "the search does not end"
        windows.append(respond(probe))
        probe = search(windows)
    assert search.result is not None
    return search.result


def new_search(slo: str = "p99<=5ms", resolution: float = 0.05, **kwargs: Any) -> CapacitySearch:
    return CapacitySearch(objective(slo), OpenLoad(1.0), 0.5, resolution=resolution, **kwargs)


# -- the search ---------------------------------------------------------------------------------------


def narrow_enough(low: float, high: float, resolution: float, peak: float = PEAK) -> bool:
    """The search's stopping rule: the capacity known to within ``resolution`` of itself, or, with no rate met
    yet, the rates tried down to ``resolution`` of the peak."""
    return high - low <= resolution * high if low > 0 else high <= resolution * peak


def brackets(found: Capacity) -> list[tuple[float, float]]:
    """The bracket [low, high] after each step of a search that did not stop on the service time."""
    low, high = 0.0, found.peak_rps
    out: list[tuple[float, float]] = []
    for s in found.steps:
        low, high = (s.rate, high) if s.met else (low, s.rate)
        out.append((low, high))
    return out


@pytest.mark.parametrize("resolution", [0.05, 0.1, 0.25])
@pytest.mark.parametrize("capacity", [31.0, 123.0, 637.0, 990.0])
def test_bisection_brackets_the_capacity_to_the_resolution(resolution: float, capacity: float) -> None:
    found = drive(new_search(resolution=resolution), system(capacity))
    assert found.peak_rps == PEAK
    assert found.low <= capacity < found.high
    met = [s for s in found.steps if s.met]
    assert found.low == max((s.rate for s in met), default=0.0)
    # What is reported is the rate the best step was actually offered, not the nominal one it bisected.
    assert found.capacity_rps == (max(met, key=lambda s: s.rate).offered_rps if met else 0.0)
    # The search stops at the first bracket that is narrow enough, and not before.
    steps = brackets(found)
    assert steps[-1] == (found.low, found.high)
    assert [narrow_enough(lo, hi, resolution) for lo, hi in steps] == [False] * (len(steps) - 1) + [True]
    # A capacity below the rates the search went down to is reported as none found, and says so.
    assert (found.reason == "") == (found.low > 0)


def test_a_small_capacity_is_found_as_closely_as_a_large_one() -> None:
    for capacity in (60.0, 900.0):
        found = drive(new_search(resolution=0.05), system(capacity))
        assert found.low > 0 and found.high - found.low <= 0.05 * found.high


def test_every_probe_lies_inside_the_bracket_the_steps_before_it_left() -> None:
    found = drive(new_search(resolution=0.01), system(637.0))
    before = [(0.0, PEAK), *brackets(found)[:-1]]
    for s, (low, high) in zip(found.steps, before, strict=True):
        assert low < s.rate < high and s.rate == pytest.approx((low + high) / 2)
    at = found.at_capacity()
    assert at is not None and at.met and at.rate == found.low and at.offered_rps == found.capacity_rps


def test_the_first_probe_offers_half_the_peak_for_long_enough_to_hold_the_percentile() -> None:
    load = OpenLoad(1.0, "gamma", 0.5, 4, 7)
    search = CapacitySearch(objective("p99<=5ms"), load, 0.5, round_index=3, min_samples=662)
    probe = search([closed_window()])
    assert probe is not None and probe.load == OpenLoad(500.0, "gamma", 0.5, 4, 7)
    assert probe.round_index == 3
    assert probe.duration_s == pytest.approx(1.15 * 662 / 500)
    assert probe.drain_s >= max(1.0, probe.duration_s)


def test_a_step_lasts_at_least_the_step_length_when_the_percentile_needs_fewer_samples() -> None:
    probe = new_search(min_samples=64)([closed_window()])
    assert probe is not None and probe.duration_s == 0.5 and probe.drain_s == 1.0


def test_service_time_alone_breaking_the_slo_stops_the_search_at_a_low_rate() -> None:
    # Every request takes 10 ms of service: no rate, however low, brings the p99 under 5 ms.
    found = drive(new_search(), system(0.0, service=10.0))
    assert [s.rate for s in found.steps] == [500.0, 250.0]
    assert found.capacity_rps == 0.0 and found.high == 250.0
    assert found.reason == "the model's own service time breaks p99<=5ms at 250 req/s, so no lower rate can meet it"
    assert found.at_capacity() is found.steps[-1]


def test_when_no_rate_meets_the_slo_the_search_ends_at_the_bottom_with_the_lowest_rates_violations() -> None:
    found = drive(new_search(), system(0.0, service=0.5))
    assert [s.rate for s in found.steps] == [500.0, 250.0, 125.0, 62.5, 31.25]
    assert found.capacity_rps == 0.0 and found.high == 31.25
    assert found.reason == "no rate tried met p99<=5ms; at the lowest, 31.2 req/s: p99 50 ms > 5 ms"
    at = found.at_capacity()
    assert at is not None and at.rate == 31.25 and not at.met


def test_a_rate_that_met_the_slo_is_never_discarded_by_a_later_service_time_stop() -> None:
    search = new_search()
    windows = [closed_window()]
    # Up to 125 req/s meets; above it misses, and 187.5 with a service time over the bound (a noisy window).
    def answer(rate: float) -> tuple[float, float]:
        return (FAST_MS, 0.5) if rate <= 125.0 else (SLOW_MS, 10.0 if rate == 187.5 else 0.5)

    probe = search(windows)
    while probe is not None:
        assert probe.load is not None
        latency, service = answer(probe.load.request_rate)
        windows.append(window_result(probe, stream(latency, 100, service=service)))
        probe = search(windows)
    found = search.result
    assert found is not None and found.reason == ""
    assert 187.5 in [s.rate for s in found.steps]
    assert found.low >= 125.0 and found.capacity_rps > 0


def test_a_closed_loop_window_without_completions_ends_the_search_with_a_reason() -> None:
    search = new_search()
    assert search([window_result(Window(1.0), StreamStats())]) is None
    assert search.result is not None and search.result.capacity_rps == 0.0 and search.result.steps == []
    assert search.result.reason == "no request completed in the closed-loop window"
    assert search.result.at_capacity() is None


def test_an_overloaded_step_misses_the_slo_whatever_its_latency() -> None:
    window = Window(1.0, OpenLoad(500.0))
    step = step_of(window_result(window, stream(FAST_MS, 400, service=0.5, unfinished=100)), objective("p99<=5ms"))
    assert step.overloaded and step.violations == [] and not step.met
    assert step.to_dict()["met"] is False and step.to_dict()["overloaded"] is True


def test_a_step_records_every_bounded_percentile_and_what_was_offered_and_achieved() -> None:
    window = Window(2.0, OpenLoad(100.0))
    stats = stream(3.0, 190, service=1.0, offered=200, completed=188, dropped=10)
    step = step_of(window_result(window, stats), objective("p90<=5ms,p99.9<=2ms"))
    assert set(step.percentiles_ms) == {"p50_ms", "p90_ms", "p99_ms", "p99.9_ms"}
    assert step.percentiles_ms["p90_ms"] == pytest.approx(3.0)
    assert step.offered_rps == 100.0 and step.achieved_rps == 94.0
    assert step.samples == 190 and step.dropped == 10
    assert step.violations == ["p99.9 3 ms > 2 ms"]
    as_dict = step.to_dict()
    assert set(as_dict) == STEP_KEYS | {"p90_ms", "p99.9_ms"}
    assert as_dict["rate"] == 100.0 and as_dict["violations"] == ["p99.9 3 ms > 2 ms"]


# -- overloaded ---------------------------------------------------------------------------------------


def open_stats(offered: int, completed: int, mean_latency_ms: float, *, unfinished: int = 0,
               dropped: int = 0) -> StreamStats:
    served = offered - dropped - unfinished
    return stream(mean_latency_ms, served, service=0.5, offered=offered, completed=completed, dropped=dropped,
                  unfinished=unfinished)


@pytest.mark.parametrize(("completed", "latency_ms"), [(1000, 1.0), (997, 3.0), (950, 50.0), (910, 80.0)])
def test_a_queue_that_keeps_up_ends_the_window_with_about_littles_law_in_the_system(completed: int,
                                                                                    latency_ms: float) -> None:
    # 1000 requests/s for 1 s: the ones still in the system at the close number about 1000 x the mean latency.
    assert not overloaded(open_stats(1000, completed, latency_ms), 1.0)


@pytest.mark.parametrize(("completed", "latency_ms"), [(700, 3.0), (900, 50.0), (800, 80.0)])
def test_a_queue_whose_backlog_grows_is_overloaded(completed: int, latency_ms: float) -> None:
    assert overloaded(open_stats(1000, completed, latency_ms), 1.0)


def test_requests_left_unfinished_after_the_drain_mean_overloaded() -> None:
    assert overloaded(open_stats(1000, 999, 1.0, unfinished=1), 1.0)


def test_dropping_a_share_of_the_requests_is_overloaded() -> None:
    assert overloaded(open_stats(1000, 900, 1.0, dropped=100), 1.0)
    assert not overloaded(open_stats(1000, 1000, 1.0, dropped=0), 1.0)


def test_nothing_offered_is_not_overloaded() -> None:
    assert not overloaded(StreamStats(), 1.0)


def test_three_times_the_capacity_is_overloaded_even_when_the_drain_finishes_every_request() -> None:
    # 1500 requests/s into a server of 500/s for 1 s: 1000 behind at the close. A request arriving at t
    # waits for the 1000 t ahead of it, 2 t seconds: 1 s on average, so "Little's law" expects 1500 in the system.
    assert overloaded(open_stats(1500, 500, 1000.0), 1.0)


# -- the report fields of a search --------------------------------------------------------------------


def closed_round(capacity: Capacity, n: int = 500, latency_ns: int = 2_000_000) -> RoundResult:
    """A round whose closed-loop window timed ``n`` inferences of ``latency_ns`` in 1 s, and its search."""
    window_ns, bins = 1_000_000_000, 5
    recorder = Recorder(0, window_ns // bins, bins, keep_raw=False)
    for i in range(n):
        recorder.start.append(i * latency_ns)
        recorder.end.append((i + 1) * latency_ns)
    copy = CopyResult(copy_index=0, cores=(0,), pid=1, load_ns=1, warmup_count=1, warmup_ns=latency_ns,
                      stats=recorder.finish(), worker_counts=[n])
    return RoundResult(0, window_ns, window_ns // bins, [copy], capacity=capacity)


def a_step(rate: float, met: bool, p50: float = 2.0, p99: float = 4.0) -> Step:
    return Step(rate, rate, rate, {"p50_ms": p50, "p99_ms": p99}, 100, 0, False, [] if met else ["p99 9 ms > 5 ms"])


def searched_report(capacity: Capacity, slo: str = "p99<=5ms", cost: float | None = 2.0) -> Report:
    config = {"batch_size": 1, "n_models": 1, "workers_per_model": 1, "pipeline_size": 1, "duration": 1.0}
    result = ConfigResult(config=config, status=fields.STATUS_OK, rounds=[closed_round(capacity)],
                          cost_per_hour=cost, slo=objective(slo))
    (report,) = npf.get_reports([result])
    return report


def test_a_search_reports_its_capacity_bracket_latency_cost_and_steps() -> None:
    steps = [a_step(250.0, False), a_step(125.0, True, 2.1, 3.5), a_step(187.5, True, 2.2, 4.5), a_step(218.75, False)]
    report = searched_report(Capacity("p99<=5ms", 500.0, 187.5, 218.75, steps))
    assert report["slo"] == "p99<=5ms" and report["slo_met"] is True  # the closed loop's 2 ms
    assert (report["capacity_rps"], report["capacity_low_rps"], report["capacity_high_rps"]) == (187.5, 187.5,
                                                                                                218.75)
    assert (report["capacity_ms_p50"], report["capacity_ms_p99"]) == (2.2, 4.5)
    assert report["cost_per_1m_inf_at_capacity"] == pytest.approx(2.0 / (187.5 * 3600) * 1e6, rel=1e-5)
    assert report[fields.CAPACITY_STEPS_KEY] == [s.to_dict() for s in steps]
    assert report["throughput_avg"] == 500.0 and report["request_rate"] is None
    assert report["rounds"][0]["capacity_rps"] == 187.5


def test_a_search_that_found_no_rate_reports_zero_its_reason_and_the_lowest_rates_latency() -> None:
    steps = [a_step(250.0, False), a_step(125.0, False, 2.5, 9.0)]
    report = searched_report(Capacity("p99<=5ms", 500.0, 0.0, 125.0, steps, reason="no rate tried met it"))
    assert report["capacity_rps"] == 0.0 and report["capacity_low_rps"] == 0.0
    assert report["reason"] == "no rate tried met it" and report["status"] == fields.STATUS_OK
    assert (report["capacity_ms_p50"], report["capacity_ms_p99"]) == (2.5, 9.0)
    assert report["cost_per_1m_inf_at_capacity"] is None


def test_the_closed_loop_latency_decides_slo_met_of_a_search() -> None:
    report = searched_report(Capacity("p99<=1ms", 500.0, 0.0, 125.0, [a_step(125.0, False)]), slo="p99<=1ms")
    assert report["latency_ms_p99"] == pytest.approx(2.0) and report["slo_met"] is False


def test_the_capacity_of_one_round_is_its_highest_rate_that_met_the_slo() -> None:
    steps = [a_step(249.5, False), a_step(124.75, True), a_step(187.125, False), a_step(155.9375, True),
             a_step(171.53125, False)]
    report = searched_report(Capacity("p99<=5ms", 499.0, 155.9375, 171.53125, steps))
    assert report["capacity_low_rps"] <= report["capacity_rps"] <= report["capacity_high_rps"]
    assert report["capacity_rps"] == round(155.9375, 3) == report[fields.CAPACITY_STEPS_KEY][3]["rate"]


# -- benchmark(slo=...) -------------------------------------------------------------------------------

# Four service times at the 90th percentile: met up to about 70% of the peak by an M/D/1 queue.
SLO = f"p90<={4 * S_MS:g}ms"
RESOLUTION = 0.1
COST = 3.0


@pytest.fixture(scope="module")
def search() -> Report:
    return one_report(duration=0.5, slo=SLO, capacity_resolution=RESOLUTION, cost_per_hour=COST)


def met_and_missed(report: Report) -> tuple[list[float], list[float]]:
    steps = report[fields.CAPACITY_STEPS_KEY]
    return [s["rate"] for s in steps if s["met"]], [s["rate"] for s in steps if not s["met"]]


@pytest.mark.usefixtures("no_leftover_children")
def test_a_search_reports_a_capacity_within_its_bracket(search: Report) -> None:
    assert search["status"] == fields.STATUS_OK and search["slo"] == SLO
    # 1e-3: the report's rates are rounded to three decimals.
    assert search["capacity_low_rps"] - 1e-3 <= search["capacity_rps"] <= search["capacity_high_rps"]
    peak = search["throughput_avg"]  # batch size 1: the closed-loop window's completion rate
    assert search["capacity_high_rps"] <= peak + 1e-3
    met, missed = met_and_missed(search)
    if met:  # the nominal rates bisected: known to within the resolution of the capacity
        high = min((r for r in missed if r > max(met)), default=peak)
        assert high - max(met) <= RESOLUTION * high + 1e-3
    else:  # none met, down to the resolution of the peak (or stopped on the service time)
        assert min(missed) <= max(RESOLUTION, 0.25) * peak + 1e-3


@pytest.mark.usefixtures("no_leftover_children")
def test_a_search_brackets_monotonically(search: Report) -> None:
    steps = search[fields.CAPACITY_STEPS_KEY]
    assert steps and all(STEP_KEYS | {"p90_ms"} <= set(s) for s in steps)
    assert steps[0]["rate"] == pytest.approx(search["throughput_avg"] / 2, abs=1e-3)
    met, missed = met_and_missed(search)
    # Bisection: every rate that met lies below every rate that missed.
    assert not met or not missed or max(met) < min(missed)
    best = max((s for s in steps if s["met"]), key=lambda s: s["rate"], default=None)
    assert search["capacity_rps"] == pytest.approx(best["offered_rps"] if best else 0.0, abs=1e-3)
    assert search["capacity_low_rps"] == pytest.approx(search["capacity_rps"], abs=1e-3)
    for s in steps:
        assert s["met"] == (not s["overloaded"] and not s["violations"])
        assert s["met"] == (s["p90_ms"] <= 4 * S_MS and not s["overloaded"])


@pytest.mark.usefixtures("no_leftover_children")
def test_a_search_reports_the_latency_and_cost_at_its_capacity(search: Report) -> None:
    steps = search[fields.CAPACITY_STEPS_KEY]
    met = [s for s in steps if s["met"]]
    at = max(met, key=lambda s: s["rate"]) if met else min(steps, key=lambda s: s["rate"])
    assert (search["capacity_ms_p50"], search["capacity_ms_p99"]) == (at["p50_ms"], at["p99_ms"])
    if search["capacity_rps"] > 0:
        assert search["cost_per_1m_inf_at_capacity"] == pytest.approx(
            COST / (search["capacity_rps"] * 3600) * 1e6, rel=1e-4)
    else:
        assert search["cost_per_1m_inf_at_capacity"] is None and search["reason"]
    # The usual fields are the closed-loop window's, and so is slo_met.
    assert search["request_rate"] is None and search["offered_rps"] is None
    assert search["slo_met"] == (search["latency_ms_p90"] <= 4 * S_MS)
    assert search["rounds"][0]["capacity_rps"] == pytest.approx(search["capacity_rps"], abs=1e-3)


@pytest.mark.usefixtures("no_leftover_children")
def test_an_slo_below_the_service_time_finds_no_capacity_and_says_why() -> None:
    slo = f"p90<={S_MS / 4:g}ms"
    report = one_report(duration=0.5, slo=slo, cost_per_hour=COST)
    assert report["status"] == fields.STATUS_OK and report["slo_met"] is False
    assert report["capacity_rps"] == 0.0 and report["capacity_low_rps"] == 0.0
    assert "service time breaks" in report["reason"] or "no rate tried met" in report["reason"]
    steps = report[fields.CAPACITY_STEPS_KEY]
    assert steps and not any(s["met"] for s in steps)
    lowest = min(steps, key=lambda s: s["rate"])
    assert (report["capacity_ms_p50"], report["capacity_ms_p99"]) == (lowest["p50_ms"], lowest["p99_ms"])
    assert report["capacity_ms_p50"] >= 0.9 * S_MS
    assert report["cost_per_1m_inf_at_capacity"] is None


@pytest.mark.parametrize("slo", ["p99<20", "p99<=20", "99<=20ms", "p101<=1ms", "p0<=1ms", "p99<=0ms", "", 20,
                                 "p99<=1ms,p99<=2ms"])
def test_a_bad_slo_is_refused_by_name_before_anything_runs(slo: Any) -> None:
    with pytest.raises(ValueError, match=r"^slo: "):
        npf.benchmark(FixedService, X, duration=0.5, slo=slo, **ONE)


@pytest.mark.parametrize("resolution", [0, -0.1, 0.6, 1, math.nan, True, "0.1", None])
def test_a_bad_capacity_resolution_is_refused_by_name_before_anything_runs(resolution: Any) -> None:
    with pytest.raises(ValueError, match=r"^capacity_resolution: expected "):
        npf.benchmark(FixedService, X, duration=0.5, slo="p99<=20ms", capacity_resolution=resolution, **ONE)


@pytest.mark.usefixtures("no_leftover_children")
def test_with_a_request_rate_an_slo_is_judged_on_the_open_loop_latency_without_a_search() -> None:
    result = one_result(duration=0.5, request_rate=0.3 / (S_MS / 1e3), slo="p99<=10s")
    (report,) = npf.get_reports([result])
    assert report["status"] == fields.STATUS_OK and report["slo"] == "p99<=10000ms" and report["slo_met"] is True
    assert report["capacity_rps"] is None and report[fields.CAPACITY_STEPS_KEY] is None
    assert report["capacity_low_rps"] is None and report["cost_per_1m_inf_at_capacity"] is None
    assert result.rounds[0].capacity is None
    p99 = report["latency_ms_p99"]  # counted from the arrivals, so it holds the queueing
    for bound, met in ((p99 * 1.01, True), (p99 * 0.99, False), (report["service_ms_p50"] / 2, False)):
        result.slo = objective(f"p99<={bound:.6f}ms")
        (judged,) = npf.get_reports([result])
        assert judged["slo_met"] is met, (bound, p99)


def test_a_p100_slo_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match=r"^slo: p100 in 'p100<=1s' is the maximum"):
        prepare(FixedService, X, duration=0.3, slo="p100<=1s", **ONE)


@pytest.mark.parametrize("keywords", [{"arrival": "constant"}, {"arrival": "gamma", "burstiness": 0.5},
                                      {"max_concurrency": 4}])
def test_a_search_offers_the_arrival_process_it_is_given(keywords: dict[str, Any]) -> None:
    plan = prepare(FixedService, X, duration=0.5, slo="p99<=20ms", **ONE, **keywords)
    assert plan.load is None and plan.search_load is not None
    assert plan.search_load == OpenLoad(1.0, keywords.get("arrival", "poisson"), keywords.get("burstiness", 1.0),
                                        keywords.get("max_concurrency"))


def test_open_loop_keywords_without_an_slo_or_a_request_rate_are_refused() -> None:
    with pytest.raises(ValueError, match=r"^arrival: applies to open-loop load only"):
        npf.benchmark(FixedService, X, duration=0.5, arrival="constant", **ONE)



def test_the_time_left_counts_a_searchs_steps() -> None:
    # The progress line's time left: a closed-loop round is its window, a search round about eight of them.
    closed = prepare(FixedService, X, duration=1.0, rounds=2, **ONE)
    searched = prepare(FixedService, X, duration=1.0, rounds=2, slo="p99<=20ms", **ONE)
    served = prepare(FixedService, X, duration=1.0, rounds=2, slo="p99<=20ms", request_rate=100, **ONE)
    assert closed.round_wall_s == served.round_wall_s == 0.5
    assert searched.round_wall_s == pytest.approx(0.5 * (1 + math.ceil(math.log2(1 / 0.05)) + 2))
    assert searched.wall_s == pytest.approx(2 * searched.round_wall_s)


def test_a_resolution_without_a_search_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^capacity_resolution: applies to a capacity search"):
        prepare(FixedService, X, duration=0.5, request_rate=100, slo="p99<=20ms", capacity_resolution=0.1, **ONE)
    with pytest.raises(ValueError, match=r"^capacity_resolution: applies to a capacity search"):
        prepare(FixedService, X, duration=0.5, capacity_resolution=0.1, **ONE)


@pytest.mark.parametrize(("report", "failures"), [
    ({"slo": "p99<=1ms", "request_rate": 200.0, "slo_met": False, "slo_missed": "p99 19.9 ms > 1 ms"},
     ["slo p99<=1ms missed at request_rate=200: p99 19.9 ms > 1 ms"]),
    ({"slo": "p99<=1ms", "request_rate": 200.0, "slo_met": True}, []),
    ({"slo": "p99<=1ms", "request_rate": None, "slo_met": False, "capacity_rps": 0.0, "reason": "too slow"},
     ["slo p99<=1ms: capacity 0, no request rate meets it (too slow)"]),
    # A search is judged on its capacity, not on its closed-loop latency.
    ({"slo": "p99<=1ms", "request_rate": None, "slo_met": False, "capacity_rps": 120.0}, []),
    ({"slo": None, "request_rate": 200.0}, []),
])
def test_a_missed_slo_is_a_failure_as_an_absolute_limit_is(report: Report, failures: list[str]) -> None:
    from pytest_neuronperf.gate.evaluate import slo_failures

    assert slo_failures(report) == failures
