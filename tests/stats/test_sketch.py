"""Round sketches: a round's latencies on a log grid, pooled over rounds, with each round's influence."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from pytest_neuronperf.runner.recorder import LatencySummary
from pytest_neuronperf.stats.rounds import LatencySamples, sketch_of
from pytest_neuronperf.stats.sketch import RESOLUTION, Sketch, bandwidth, exceedance_differences, pooled_quantile


def preempted_round(rng: np.random.Generator, n: int = 3000, bursts: float = 1.0, base_ms: float = 0.5,
                    burst_len: int = 30, stall_ms: float = 3.0) -> npt.NDArray[np.float64]:
    """A round of a model that takes ``base_ms`` with 0.2% jitter, where Poisson(``bursts``) bursts of
    preemption each stall ``burst_len`` requests in a row by about ``stall_ms``: its p99 sits at the edge of
    the stalled mode, as on a shared CI machine."""
    lat = base_ms * (1.0 + 0.002 * rng.standard_normal(n))
    for _ in range(rng.poisson(bursts)):
        start = int(rng.integers(0, n - burst_len))
        lat[start:start + burst_len] += stall_ms * rng.uniform(0.5, 1.5, size=burst_len)
    return lat


def test_a_pooled_quantile_is_within_a_grid_step_of_the_exact_one() -> None:
    rng = np.random.default_rng(1)
    rounds = [np.exp(rng.normal(0.0, 0.3, size=4000)) * 2.0 for _ in range(5)]
    sketches = [Sketch.of(r) for r in rounds]
    everything = np.concatenate(rounds)
    for q in (0.5, 0.9, 0.99):
        exact = float(np.quantile(everything, q))
        assert pooled_quantile(sketches, q).value == pytest.approx(exact, rel=RESOLUTION)


def test_the_recorder_histogram_and_the_samples_give_the_same_sketch_figures() -> None:
    rng = np.random.default_rng(2)
    ns = (rng.lognormal(math.log(800_000), 0.2, size=5000)).astype(np.int64)
    recorded = LatencySummary()
    recorded.add(ns)
    from_histogram, from_samples = sketch_of(recorded, 1e-6), sketch_of(LatencySamples(ns), 1e-6)
    assert from_histogram.total == from_samples.total == 5000
    for q in (0.5, 0.99):
        assert pooled_quantile([from_histogram] * 2, q).value == pytest.approx(
            pooled_quantile([from_samples] * 2, q).value, rel=2 * RESOLUTION)
    # One entry per occupied grid step: fewer than the latencies, however many a round times.
    assert len(from_samples.keys) < 1000


def test_one_slow_round_moves_the_pooled_p99_by_its_share_only() -> None:
    rng = np.random.default_rng(3)
    quiet = [preempted_round(rng, bursts=0.0) for _ in range(5)]
    stalled = preempted_round(rng, bursts=0.0)
    stalled[:150] += 3.0  # 5% of one round's requests stalled by 3 ms: its own p99 is 3.5 ms
    assert np.quantile(stalled, 0.99) > 3.0
    pooled = pooled_quantile([Sketch.of(r) for r in [*quiet, stalled]], 0.99)
    # 150 of 18,000 requests (0.8%) are stalled: the pooled p99 stays in the unstalled mode.
    assert pooled.value == pytest.approx(0.501, rel=0.01)
    # And the stalled round is the one that pulls it up.
    assert int(np.argmax(pooled.influences)) == 5


def test_the_influences_give_the_standard_error_seen_over_reruns() -> None:
    """Over seeded reruns of 8 rounds with bursts of preemption, the spread of log(pooled p99) is what each
    run's own influences estimate: their root mean square variance, within sampling error."""
    rng = np.random.default_rng(4)
    logs, ses = [], []
    for _ in range(300):
        pooled = pooled_quantile([Sketch.of(preempted_round(rng, bursts=4.0)) for _ in range(8)], 0.99)
        logs.append(math.log(pooled.value))
        ses.append(pooled.log_se)
    seen = float(np.std(logs, ddof=1))
    assert seen > 0.02  # a p99 that moves run to run
    assert math.sqrt(float(np.mean(np.square(ses)))) / seen == pytest.approx(1.0, abs=0.3)


def test_exceedance_differences_are_centred_at_the_true_ratio() -> None:
    rng = np.random.default_rng(6)
    reference = [Sketch.of(preempted_round(rng, bursts=2.0)) for _ in range(6)]
    slower = [Sketch.of(preempted_round(rng, bursts=2.0) * 1.2) for _ in range(6)]
    threshold = pooled_quantile(reference, 0.5).value
    # The current side is 1.2x the reference: above 1.2x the reference's median it has about as many
    # latencies as the reference above its median; above the median itself, nearly all of them.
    assert abs(float(exceedance_differences(reference, slower, threshold, 1.2).mean())) < 0.05
    assert float(exceedance_differences(reference, slower, threshold, 1.0).mean()) > 0.4
    with pytest.raises(ValueError, match="round pairs"):
        exceedance_differences(reference, slower[:5], threshold, 1.0)


def test_the_bandwidth_narrows_with_the_samples_and_stays_inside_the_tail() -> None:
    assert bandwidth(10_000, 0.99) > bandwidth(100_000, 0.99) > 0
    assert bandwidth(10, 0.99) == pytest.approx(0.005)  # never past the 100th percentile
    assert 0 < bandwidth(10_000, 0.5) < 0.25


def test_json_round_trip_and_errors_name_the_field() -> None:
    sketch = Sketch.of([0.5, 0.5, 0.51, 2.0])
    assert Sketch.from_json(sketch.to_json(), "x") == sketch and sketch.total == 4
    for bad in ([[1, 2], [3]], [[2, 1], [1, 1]], [[1], [0]], [["a"], [1]], "[]", [[1.5], [1]]):
        with pytest.raises(ValueError, match=r"round 3 sketches\.latency"):
            Sketch.from_json(bad, "round 3 sketches.latency")
    with pytest.raises(ValueError, match="at least one round"):
        pooled_quantile([], 0.99)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        pooled_quantile([sketch], 1.0)
