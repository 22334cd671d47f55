from __future__ import annotations

import numpy as np
import pytest

from pytest_neuronperf.runner.recorder import CHUNK, TRACE_CAP, LatencySummary, Recorder, bucket_index, bucket_value


def test_buckets_are_exact_below_2048_ns_and_within_0_1_percent_above() -> None:
    values = np.array([1, 7, 2047, 2048, 4095, 10_000, 1_000_000, 123_456_789, 10**12], dtype=np.int64)
    back = bucket_value(bucket_index(values))
    assert list(back[:3]) == [1, 7, 2047]
    assert np.all(np.abs(back - values) / values <= 1 / 1024)


def test_bucket_index_is_monotonic() -> None:
    values = np.arange(1, 200_000, 7, dtype=np.int64)
    idx = bucket_index(values)
    assert np.all(np.diff(idx) >= 0)


def test_percentiles_are_nearest_rank_when_every_sample_is_kept() -> None:
    s = LatencySummary()
    data = np.random.default_rng(1).integers(1000, 5_000_000, size=10_001).astype(np.int64)
    s.add(data)
    s.traces.append(data)
    got = s.percentiles((0, 50, 99, 100))
    assert got == [float(v) for v in np.percentile(data, [0, 50, 99, 100], method="inverted_cdf")]


def test_histogram_percentiles_when_the_trace_is_incomplete() -> None:
    s = LatencySummary(complete=False)
    data = np.random.default_rng(2).lognormal(12, 0.5, size=50_000).astype(np.int64)
    s.add(data)
    exact = np.percentile(data, [50, 90, 99], method="inverted_cdf")
    got = s.percentiles((50, 90, 99))
    assert np.allclose(got, exact, rtol=1 / 1024)
    assert s.percentiles((0, 100)) == [float(data.min()), float(data.max())]


def test_recorder_folds_chunks_and_bins_by_end_time() -> None:
    rec = Recorder(window_start_ns=0, bin_ns=100, n_bins=4, keep_raw=True)
    for i in range(10):
        t0 = i * 40
        rec.start.append(t0)
        rec.infer_start.append(t0 + 1)
        rec.infer_end.append(t0 + 11)
        rec.end.append(t0 + 13)
    rec.flush()
    s = rec.stats
    assert s.e2e.count == 10 and s.e2e.total_ns == 130
    assert s.infer.total_ns == 100 and s.preprocess_ns == 10 and s.postprocess_ns == 20
    assert s.bins.tolist() == [3, 2, 3, 2]
    assert s.raw[0].shape == (10, 4)
    assert not rec.end  # the lists are emptied, so memory stays bounded


def test_trace_is_capped() -> None:
    rec = Recorder(0, 10**9, 1, keep_raw=False)
    n = TRACE_CAP + CHUNK
    for start in range(0, n, CHUNK):
        rec.start.extend(range(start, start + CHUNK))
        rec.infer_start.extend(range(start, start + CHUNK))
        rec.infer_end.extend(range(start + 5, start + CHUNK + 5))
        rec.end.extend(range(start + 5, start + CHUNK + 5))
        rec.flush()
    assert sum(t.size for t in rec.stats.e2e.traces) == TRACE_CAP
    assert rec.stats.e2e.complete is False
    assert rec.stats.e2e.percentiles((50,)) == [pytest.approx(5)]


def test_merge_adds_counts_and_keeps_extremes() -> None:
    a, b = LatencySummary(), LatencySummary()
    a.add(np.array([5, 10], dtype=np.int64))
    b.add(np.array([1, 20], dtype=np.int64))
    a.merge(b)
    assert (a.count, a.min_ns, a.max_ns, a.total_ns) == (4, 1, 20, 36)
