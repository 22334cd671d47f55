from __future__ import annotations

import json
import math

import numpy as np
import numpy.typing as npt
import pytest

from pytest_neuronperf.stats import distributions, quantiles, rounds
from pytest_neuronperf.stats.rounds import RoundSummary


def ar1(rng: np.random.Generator, n: int, phi: float) -> npt.NDArray[np.float64]:
    noise = rng.normal(size=n)
    series = np.empty(n)
    series[0] = noise[0] / math.sqrt(1.0 - phi**2)
    for i in range(1, n):
        series[i] = phi * series[i - 1] + noise[i]
    return series


# ---------------------------------------------------------------- distributions


@pytest.mark.parametrize(
    ("p", "df", "expected"),
    [
        (0.975, 10, 2.228),
        (0.975, 1, 12.706),
        (0.95, 1, 6.314),
        (0.995, 4, 4.604),
        (0.975, 30, 2.042),
        (0.90, 5, 1.476),
        (0.99, 2, 6.965),
    ],
)
def test_t_ppf_matches_table(p: float, df: int, expected: float) -> None:
    assert distributions.t_ppf(p, df) == pytest.approx(expected, abs=1e-3)
    assert distributions.t_cdf(expected, df) == pytest.approx(p, abs=1e-4)


def test_t_distribution_symmetry_and_normal_limit() -> None:
    assert distributions.t_ppf(0.025, 7) == pytest.approx(-distributions.t_ppf(0.975, 7))
    assert distributions.t_cdf(0.0, 3.5) == pytest.approx(0.5)
    assert distributions.t_cdf(-1.3, 4.2) == pytest.approx(1.0 - distributions.t_cdf(1.3, 4.2))
    assert distributions.t_ppf(0.975, 1e9) == pytest.approx(1.959964, abs=1e-5)
    assert distributions.t_cdf(math.inf, 3) == 1.0
    with pytest.raises(ValueError):
        distributions.t_ppf(1.0, 3)
    with pytest.raises(ValueError):
        distributions.t_cdf(1.0, 0)


def test_betainc_identities() -> None:
    assert distributions.betainc(1.0, 1.0, 0.3) == pytest.approx(0.3)
    assert distributions.betainc(4.5, 4.5, 0.5) == pytest.approx(0.5)
    assert distributions.betainc(2.0, 3.0, 0.4) == pytest.approx(1.0 - distributions.betainc(3.0, 2.0, 0.6))
    assert distributions.betainc(2.0, 3.0, 0.0) == 0.0
    assert distributions.betainc(2.0, 3.0, 1.0) == 1.0


@pytest.mark.parametrize(("k", "n", "p"), [(0, 10, 0.3), (3, 10, 0.3), (45, 100, 0.5), (98, 100, 0.99)])
def test_binom_cdf_matches_direct_sum(k: int, n: int, p: float) -> None:
    direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
    assert distributions.binom_cdf(k, n, p) == pytest.approx(direct, rel=1e-9)


# ---------------------------------------------------------------- sample counts for quantiles


def test_min_samples_match_loadgen() -> None:
    assert quantiles.min_samples_for_quantile(0.90) == 64
    assert quantiles.min_samples_for_quantile(0.99) == 662
    assert quantiles.min_samples_for_quantile(0.50) < 64 < 662 < quantiles.min_samples_for_quantile(0.999)


def test_more_samples_needed() -> None:
    assert quantiles.more_samples_needed(0.99, 600.0) == 62
    assert quantiles.more_samples_needed(0.99, 5000.0) == 0
    assert quantiles.more_samples_needed(0.90, 0.5) == 64


def test_effective_sample_size_iid_is_close_to_n() -> None:
    x = np.random.default_rng(1).normal(size=10_000)
    assert quantiles.effective_sample_size(x, 0.5) > 0.75 * x.size
    assert quantiles.effective_sample_size(x, 0.99) > 0.75 * x.size


def test_effective_sample_size_shrinks_for_autocorrelated_samples() -> None:
    phi = 0.9
    x = ar1(np.random.default_rng(2), 10_000, phi)
    n_eff = quantiles.effective_sample_size(x, 0.5)
    # n (1 - phi) / (1 + phi) = 526; the median indicator is a little less correlated than x itself.
    assert 0.03 * x.size < n_eff < 0.15 * x.size
    assert quantiles.effective_sample_size(x, 0.99) < 0.6 * x.size


def test_effective_sample_size_edge_cases() -> None:
    assert quantiles.effective_sample_size(np.full(500, 3.0), 0.5) == 500.0
    assert quantiles.effective_sample_size(np.array([1.0, 2.0, 3.0]), 0.5) == 3.0
    with pytest.raises(ValueError):
        quantiles.effective_sample_size(np.array([]), 0.5)
    with pytest.raises(ValueError):
        quantiles.effective_sample_size(np.arange(10.0), 1.0)


def test_quantile_rank_interval_matches_exact_order_statistics() -> None:
    # Textbook 95% intervals for the median: X(2)..X(9) of 10, X(40)..X(61) of 100 (1-based).
    assert quantiles.quantile_rank_interval(10, 10.0, 0.5) == (1, 8)
    assert quantiles.quantile_rank_interval(100, 100.0, 0.5) == (39, 60)


def test_quantile_rank_interval_widens_with_fewer_effective_samples() -> None:
    full = quantiles.quantile_rank_interval(1000, 1000.0, 0.5)
    reduced = quantiles.quantile_rank_interval(1000, 250.0, 0.5)
    assert full is not None and reduced is not None
    assert reduced[0] < full[0] <= 499 <= full[1] < reduced[1]


def test_quantile_rank_interval_refuses_too_few_samples() -> None:
    assert quantiles.quantile_rank_interval(100, 100.0, 0.99) is None
    assert quantiles.quantile_rank_interval(5000, 300.0, 0.99) is None
    assert quantiles.quantile_rank_interval(5000, 0.5, 0.5) is None
    assert quantiles.quantile_rank_interval(1000, 1000.0, 0.99) is not None


def test_quantile_interval_covers_under_autocorrelation() -> None:
    rng = np.random.default_rng(3)
    phi, hits, trials = 0.8, 0, 120
    for _ in range(trials):
        x = ar1(rng, 2000, phi)
        _, (lo, hi), _ = quantiles.quantile_with_ci(x, 0.5)
        hits += lo <= 0.0 <= hi
    # Nominal 95%; ignoring the autocorrelation would cover only about 60% here.
    assert hits / trials >= 0.88


def test_quantile_with_ci_falls_back_to_sample_range() -> None:
    x = np.random.default_rng(4).exponential(size=50)
    estimate, (lo, hi), n_eff = quantiles.quantile_with_ci(x, 0.99)
    assert (lo, hi) == (float(x.min()), float(x.max()))
    assert lo <= estimate <= hi
    assert 1.0 <= n_eff <= 50


# ---------------------------------------------------------------- throughput windows


def test_window_throughputs_group_bins() -> None:
    counts = np.full(16, 50)
    windows = rounds.window_throughputs(counts, 0.5)
    assert windows.size == 4
    np.testing.assert_allclose(windows, 100.0)
    assert rounds.window_throughputs(np.array([10, 20]), 1.0).tolist() == [10.0, 20.0]
    with pytest.raises(ValueError, match="no inference"):
        rounds.window_throughputs(np.zeros(8), 0.5)


def test_steady_throughput_is_stable() -> None:
    counts = np.random.default_rng(5).poisson(500, size=40)
    stable, cv = rounds.stability(counts, 0.5)
    assert stable
    assert 0.0 < cv < 0.05


def test_drifting_throughput_is_unstable() -> None:
    counts = np.linspace(600, 400, 40).round()
    stable, cv = rounds.stability(counts, 0.5)
    assert not stable
    assert cv > 0.05


def test_disagreeing_last_windows_are_unstable() -> None:
    counts = np.full(36, 500.0)
    counts[-6:] = 700.0  # only the last window jumps: no trend over thirds, but Triton's rule fails
    stable, _ = rounds.stability(counts, 0.5)
    assert not stable


def test_too_few_windows_cannot_be_shown_stable() -> None:
    assert rounds.stability(np.array([100, 100]), 1.0) == (False, 0.0)


def test_mean_ci_known_values() -> None:
    lo, hi = distributions.mean_ci(np.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert lo == pytest.approx(3.0 - half, abs=1e-5)
    assert hi == pytest.approx(3.0 + half, abs=1e-5)
    with pytest.raises(ValueError):
        distributions.mean_ci(np.array([1.0]))


def test_throughput_ci_covers_the_rate() -> None:
    rng = np.random.default_rng(6)
    hits = 0
    for _ in range(100):
        counts = rng.poisson(200, size=60)
        lo, hi = rounds.throughput_ci(counts, 0.5)
        hits += lo <= 400.0 <= hi
    assert hits >= 90
    with pytest.raises(ValueError):
        rounds.throughput_ci(np.array([100]), 0.5)


# ---------------------------------------------------------------- round summary


def sample_summary() -> RoundSummary:
    rng = np.random.default_rng(7)
    latencies = 5.0 + rng.gamma(2.0, 0.5, size=4000)
    counts = rng.poisson(200, size=40)
    return rounds.summarize_round(latencies, counts, 0.25, duration_s=10.0)


def test_summarize_round() -> None:
    summary = sample_summary()
    assert summary.n == 4000
    assert summary.throughput == pytest.approx(800.0, rel=0.05)
    assert summary.throughput_ci[0] < summary.throughput < summary.throughput_ci[1]
    assert summary.p50_ci[0] <= summary.p50_ms <= summary.p50_ci[1]
    assert summary.p99_ci[0] <= summary.p99_ms <= summary.p99_ci[1]
    assert summary.p50_ms < summary.p99_ms
    assert summary.n_eff_p99 > quantiles.min_samples_for_quantile(0.99)
    assert summary.stable
    assert summary.duration_s == 10.0


def test_round_summary_json_round_trip() -> None:
    summary = sample_summary()
    data = json.loads(json.dumps(summary.to_dict()))
    again = RoundSummary.from_dict(data)
    assert again == summary and again.sketches == summary.sketches and set(summary.sketches) == {"latency"}
    assert all(type(v) in (float, int, bool, list) for k, v in summary.to_dict().items() if k != "sketches")


def test_round_summary_ignores_unknown_keys() -> None:
    data = sample_summary().to_dict()
    data["field_from_a_newer_version"] = "x"
    assert RoundSummary.from_dict(data) == sample_summary()


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("throughput", "fast"),
        ("throughput", True),
        ("p99_ci", [1.0]),
        ("p50_ci", "1..2"),
        ("n", 10.0),
        ("n", False),
        ("stable", 1),
        ("throughput_cv", None),
    ],
)
def test_round_summary_rejects_bad_types(field: str, bad: object) -> None:
    data = sample_summary().to_dict()
    data[field] = bad
    with pytest.raises(ValueError, match=field):
        RoundSummary.from_dict(data)


def test_round_summary_rejects_missing_keys() -> None:
    data = sample_summary().to_dict()
    del data["n_eff_p99"]
    with pytest.raises(ValueError, match="n_eff_p99"):
        RoundSummary.from_dict(data)


@pytest.mark.parametrize("bins", [1, 2, 3, 5, 9, 17])
def test_a_round_with_one_inference_is_summarised_without_dividing_by_zero(bins: int) -> None:
    import warnings

    for where in range(bins):
        counts = np.zeros(bins)
        counts[where] = 1
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy's divide-by-zero and invalid-value warnings too
            stable, cv = rounds.stability(counts, 0.1)
            summary = rounds.summarize_round([2.5], counts, 0.1)
        assert stable is False and math.isfinite(cv)
        assert summary.n == 1 and summary.throughput > 0 and summary.p99_ms == 2.5


def test_every_gated_metric_names_round_summary_fields_that_exist() -> None:
    from dataclasses import fields as dataclass_fields

    from pytest_neuronperf.spec.metrics import METRICS

    names = {f.name for f in dataclass_fields(RoundSummary)}
    for m in METRICS:
        wanted = [m.round_value, m.round_ci] + ([m.round_n_eff] if m.round_n_eff else [])
        assert set(wanted) <= names, (m.name, sorted(set(wanted) - names))
        assert (m.quantile is None) == (m.round_n_eff is None), m.name
