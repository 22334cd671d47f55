"""Per-worker latency recording with memory that does not grow with the duration.

The timed loop only appends integer nanosecond timestamps to short Python
lists (the cheapest thing it can do); every ``CHUNK`` inferences they are
folded with numpy into fixed-size state: log-linear histograms (values below
2048 ns exact, above that buckets 1/1024 wide relative to the value), a
count of completions per time bin, phase sums, and the first ``TRACE_CAP``
end-to-end latencies in time order. While a run fits in the trace,
percentiles are exact nearest-rank values; past it they come from the
histogram, within 0.1%.

Under open-loop load (:mod:`pytest_neuronperf.spec.load`) each request also has a scheduled
arrival: its end-to-end latency is counted from the arrival, the service time (from the start of
its processing) and the wait before it are kept beside it, and only completions inside the
window count towards the achieved rate (the latencies of requests that arrived in the window and
finished after it still count).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from pytest_neuronperf.spec.load import LATE_NS

if TYPE_CHECKING:
    from pytest_neuronperf.runner.tokens import TokenStats

SUB_BITS = 11
_HALF = 1 << (SUB_BITS - 1)
N_BUCKETS = (64 - SUB_BITS + 1) * _HALF + _HALF
CHUNK = 4096
TRACE_CAP = 1 << 20

I64 = npt.NDArray[np.int64]


def bucket_index(values: I64) -> I64:
    v = np.maximum(values, 0)
    exponent = np.frexp(v.astype(np.float64))[1].astype(np.int64)
    shift = np.maximum(exponent - SUB_BITS, 0)
    out: I64 = (shift * _HALF + (v >> shift)).astype(np.int64)
    return out


def bucket_value(index: I64) -> I64:
    """A representative value (the bucket's midpoint) for each histogram bucket index."""
    shift = np.maximum(index // _HALF - 1, 0)
    lower = (index - shift * _HALF) << shift
    out: I64 = (lower + ((1 << shift) >> 1)).astype(np.int64)
    return out


@dataclass
class LatencySummary:
    """Mergeable latency state of one stream of inferences (one worker, or a merge of several)."""

    count: int = 0
    total_ns: int = 0
    min_ns: int = 0
    max_ns: int = 0
    hist: I64 = field(default_factory=lambda: np.zeros(N_BUCKETS, dtype=np.int64))
    traces: list[I64] = field(default_factory=list)
    complete: bool = True

    def add(self, values: I64) -> None:
        if values.size == 0:
            return
        lo, hi = int(values.min()), int(values.max())
        self.min_ns = lo if self.count == 0 else min(self.min_ns, lo)
        self.max_ns = max(self.max_ns, hi)
        self.count += int(values.size)
        self.total_ns += int(values.sum())
        self.hist += np.bincount(bucket_index(values), minlength=N_BUCKETS)

    def merge(self, other: LatencySummary) -> None:
        if other.count == 0:
            return
        self.min_ns = other.min_ns if self.count == 0 else min(self.min_ns, other.min_ns)
        self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.total_ns += other.total_ns
        self.hist += other.hist
        self.traces.extend(other.traces)
        self.complete = self.complete and other.complete

    def percentiles(self, qs: tuple[float, ...]) -> list[float]:
        """Nearest-rank percentiles (numpy's ``inverted_cdf``), q in [0, 100]."""
        if self.count == 0:
            return [float("nan")] * len(qs)
        if self.complete and sum(t.size for t in self.traces) == self.count:
            data = np.concatenate(self.traces)
            return [float(v) for v in np.percentile(data, qs, method="inverted_cdf")]
        cumulative = np.cumsum(self.hist)
        out: list[float] = []
        for q in qs:
            if q <= 0:
                out.append(float(self.min_ns))
            elif q >= 100:
                out.append(float(self.max_ns))
            else:
                rank = max(1, int(np.ceil(q / 100.0 * self.count)))
                idx = int(np.searchsorted(cumulative, rank))
                value = int(bucket_value(np.array([idx], dtype=np.int64))[0])
                out.append(float(min(max(value, self.min_ns), self.max_ns)))
        return out

    def value_counts(self) -> tuple[npt.NDArray[np.float64], I64]:
        """Each occupied bucket's midpoint (ns; exact below 2048 ns) and its count."""
        occupied = np.flatnonzero(self.hist)
        values = bucket_value(occupied.astype(np.int64)).astype(np.float64)
        counts: I64 = self.hist[occupied].astype(np.int64)
        return values, counts

    def mean_ns(self) -> float:
        return self.total_ns / self.count if self.count else float("nan")


@dataclass
class StreamStats:
    """What one worker (or a merge of workers) measured inside the timed window."""

    e2e: LatencySummary = field(default_factory=LatencySummary)
    infer: LatencySummary = field(default_factory=LatencySummary)
    # The model call's own time on the device, where the backend times it (CUDA events); empty elsewhere.
    device: LatencySummary = field(default_factory=LatencySummary)
    preprocess_ns: int = 0
    postprocess_ns: int = 0
    bins: I64 = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    last_end_ns: int = 0
    raw: list[I64] = field(default_factory=list)
    # Open-loop load only: time from the start of processing to the end, and the wait before it.
    service: LatencySummary = field(default_factory=LatencySummary)
    wait: LatencySummary = field(default_factory=LatencySummary)
    offered: int = 0  # requests scheduled to arrive in the window
    completed_in_window: int = 0
    dropped: int = 0  # at the concurrency cap
    late: int = 0  # started more than LATE_NS after their arrival
    unfinished: int = 0  # arrived in the window, not finished by the end of the drain
    # A streaming (generative) model's requests, token by token; None for other models.
    tokens: TokenStats | None = None

    def merge(self, other: StreamStats) -> None:
        if other.tokens is not None:
            if self.tokens is None:
                from pytest_neuronperf.runner.tokens import TokenStats

                self.tokens = TokenStats()
            self.tokens.merge(other.tokens)
        self.e2e.merge(other.e2e)
        self.service.merge(other.service)
        self.wait.merge(other.wait)
        self.offered += other.offered
        self.completed_in_window += other.completed_in_window
        self.dropped += other.dropped
        self.late += other.late
        self.unfinished += other.unfinished
        self.infer.merge(other.infer)
        self.device.merge(other.device)
        self.preprocess_ns += other.preprocess_ns
        self.postprocess_ns += other.postprocess_ns
        if self.bins.size < other.bins.size:
            self.bins = np.pad(self.bins, (0, other.bins.size - self.bins.size))
        self.bins[: other.bins.size] += other.bins
        self.last_end_ns = max(self.last_end_ns, other.last_end_ns)
        self.raw.extend(other.raw)


class Recorder:
    """Collects one worker's timestamps; ``flush`` folds them into a :class:`StreamStats`.

    Without pre/postprocessing the model call *is* the inference, so the loop
    records only ``start`` and ``end`` and the phase lists stay empty.
    """

    def __init__(self, window_start_ns: int, bin_ns: int, n_bins: int, keep_raw: bool,
                 window_stop_ns: int | None = None) -> None:
        self.arrival: list[int] = []  # open-loop load only
        self.start: list[int] = []
        self.infer_start: list[int] = []
        self.infer_end: list[int] = []
        self.end: list[int] = []
        # Device nanoseconds of each recorded call, where the backend times them (appended with ``end``).
        self.device: list[int] = []
        self.stats = StreamStats(bins=np.zeros(n_bins, dtype=np.int64))
        self._window_start_ns = window_start_ns
        self._bin_ns = bin_ns
        self._keep_raw = keep_raw
        self._window_stop_ns = window_stop_ns
        self._traced = 0
        self._infer_is_e2e = False

    def finish(self) -> StreamStats:
        """Fold what is left; the stats are final after this."""
        self.flush()
        s = self.stats
        if self._infer_is_e2e:
            # The model call is the whole of the processing: under open-loop load that is the service time.
            e = s.service if s.service.count else s.e2e
            s.infer = LatencySummary(count=e.count, total_ns=e.total_ns, min_ns=e.min_ns, max_ns=e.max_ns,
                                     hist=e.hist.copy())
        # Model-only percentiles come from the histogram; only end-to-end latencies keep a trace.
        s.infer.complete = False
        s.device.complete = False
        return s

    def flush(self) -> None:
        if not self.end:
            return
        t0 = np.array(self.start, dtype=np.int64)
        t3 = np.array(self.end, dtype=np.int64)
        split = bool(self.infer_end)
        t1 = np.array(self.infer_start, dtype=np.int64) if split else t0
        t2 = np.array(self.infer_end, dtype=np.int64) if split else t3
        arrival = np.array(self.arrival, dtype=np.int64) if self.arrival else None
        device = np.array(self.device, dtype=np.int64) if self.device else None
        for buffer in (self.arrival, self.start, self.infer_start, self.infer_end, self.end, self.device):
            buffer.clear()
        s = self.stats
        if device is not None:
            s.device.add(device)
        if arrival is not None:
            wait = t0 - arrival
            s.wait.add(wait)
            s.service.add(t3 - t0)
            s.late += int((wait > LATE_NS).sum())
            e2e = t3 - arrival
        else:
            e2e = t3 - t0
        s.e2e.add(e2e)
        if split:
            s.infer.add(t2 - t1)
            s.preprocess_ns += int((t1 - t0).sum())
            s.postprocess_ns += int((t3 - t2).sum())
        else:
            self._infer_is_e2e = True
        s.last_end_ns = max(s.last_end_ns, int(t3[-1]))
        ended = t3
        if self._window_stop_ns is not None:
            # Drained after the window closed: their latency counts, their completion does not.
            ended = t3[t3 <= self._window_stop_ns]
            s.completed_in_window += int(ended.size)
        bins = (ended - self._window_start_ns) // self._bin_ns
        np.clip(bins, 0, s.bins.size - 1, out=bins)
        s.bins += np.bincount(bins, minlength=s.bins.size)
        room = TRACE_CAP - self._traced
        if room > 0:
            s.e2e.traces.append(e2e[:room].copy())
            self._traced += min(room, e2e.size)
        if self._traced >= TRACE_CAP and s.e2e.count > TRACE_CAP:
            s.e2e.complete = False
        if self._keep_raw:
            s.raw.append(np.stack([t0, t1, t2, t3], axis=1))
