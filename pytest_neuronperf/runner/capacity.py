"""Capacity at a latency objective: the highest request rate whose open-loop latency meets the SLO.

One round of a capacity search runs on one set of warm copies: a closed-loop window first, whose
completion rate (the peak) brackets the search from above, then open-loop windows that bisect
[0, peak] until the bracket [low, high] is narrower than ``resolution`` x high (the capacity is then
known to within that fraction), or, while no rate has met the SLO, until the rates tried fall below
``resolution`` x peak. Each step lasts long enough for
the highest percentile the SLO bounds to rest on its sample minimum. A step meets the SLO when every
bounded percentile of its latency (counted from the scheduled arrivals) is within its bound and it
was not overloaded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_neuronperf.runner.orchestrator import Window, WindowResult
from pytest_neuronperf.runner.protocol import CopyResult
from pytest_neuronperf.runner.recorder import StreamStats
from pytest_neuronperf.spec.load import OpenLoad
from pytest_neuronperf.spec.slo import Slo

DEFAULT_RESOLUTION = 0.05
SAMPLE_MARGIN = 1.15
# Below this share of the peak, a step whose service time alone breaks the SLO ends the search: no
# lower rate removes the model's own time.
_SERVICE_BOUND_SHARE = 0.25
# The most of a window a request of a queue that keeps up may take (see overloaded()).
_LATENCY_SHARE = 0.1


def merged(copies: Sequence[CopyResult]) -> StreamStats:
    total = StreamStats()
    for c in copies:
        total.merge(c.stats)
    return total


def overloaded(stats: StreamStats, window_s: float) -> bool:
    """Whether the copies fell behind the offered load (or dropped a share of it) in this window.

    A queue that keeps up ends the window with about L requests in the system (Little's law:
    arrival rate x mean latency) and drains them at once; one that cannot keep up ends it with a
    backlog that grows with the window, or leaves requests unfinished after the drain. A backlog
    also stretches the mean latency it is judged by, so that latency counts up to a share of the
    window only: a queue whose requests wait longer than that is not measured by this window anyway.
    """
    if stats.offered == 0:
        return False
    if stats.unfinished:
        return True
    mean_latency_s = stats.e2e.mean_ns() / 1e9 if stats.e2e.count else 0.0
    in_system = stats.offered / window_s * min(mean_latency_s, _LATENCY_SHARE * window_s)
    shortfall = stats.offered - stats.completed_in_window
    return shortfall > in_system + 3.0 * math.sqrt(in_system + 1.0) + 0.01 * stats.offered


@dataclass
class Step:
    """One open-loop window of a search: the rate offered and what came of it."""

    rate: float
    offered_rps: float
    achieved_rps: float
    percentiles_ms: dict[str, float]
    samples: int
    dropped: int
    overloaded: bool
    violations: list[str]

    @property
    def met(self) -> bool:
        return not self.overloaded and not self.violations

    def to_dict(self) -> dict[str, object]:
        return {"rate": round(self.rate, 3), "offered_rps": round(self.offered_rps, 3),
                "achieved_rps": round(self.achieved_rps, 3), **{k: round(v, 4) for k, v in self.percentiles_ms.items()},
                "samples": self.samples, "dropped": self.dropped, "overloaded": self.overloaded, "met": self.met,
                "violations": list(self.violations)}


@dataclass
class Capacity:
    """A round's answer. The search bisects the nominal rates [low, high]; what it reports is the rate the
    steps were actually offered (their arrivals / window), which a finite schedule makes differ a little."""

    slo: str
    peak_rps: float
    low: float
    high: float
    steps: list[Step] = field(default_factory=list)
    reason: str = ""

    @property
    def capacity_rps(self) -> float:
        """The offered rate of the highest step that met the SLO (0 when none did)."""
        met = [s for s in self.steps if s.met]
        return max(met, key=lambda s: s.rate).offered_rps if met else 0.0

    @property
    def bracket(self) -> tuple[float, float]:
        """(capacity, the offered rate of the lowest step above it that missed; the peak if none did)."""
        best = self.capacity_rps
        met_rates = [s.rate for s in self.steps if s.met]
        top = max(met_rates, default=0.0)
        missed = [s.offered_rps for s in self.steps if not s.met and s.rate > top]
        return best, min(missed, default=self.peak_rps)

    def at_capacity(self) -> Step | None:
        """The step at the capacity found, or the lowest rate tried when none met the SLO."""
        met = [s for s in self.steps if s.met]
        if met:
            return max(met, key=lambda s: s.rate)
        return min(self.steps, key=lambda s: s.rate) if self.steps else None


def step_of(result: WindowResult, slo: Slo) -> Step:
    assert result.window.load is not None
    stats = merged(result.copies)
    window_s = max(1e-9, (result.stop_ns - result.start_ns) / 1e9)
    qs = sorted({50.0, 99.0, *(c.percentile for c in slo.constraints)})
    values = stats.e2e.percentiles(tuple(qs))
    by_q = {q: v / 1e6 for q, v in zip(qs, values, strict=True)}
    return Step(
        rate=result.window.load.request_rate,
        offered_rps=stats.offered / window_s,
        achieved_rps=stats.completed_in_window / window_s,
        percentiles_ms={f"p{q:g}_ms": v for q, v in by_q.items()},
        samples=stats.e2e.count,
        dropped=stats.dropped,
        overloaded=overloaded(stats, window_s),
        violations=slo.violations(lambda q: by_q[q]),
    )


def _service_breaks(result: WindowResult, slo: Slo) -> bool:
    service = merged(result.copies).service
    if not service.count:
        return False
    qs = tuple(c.percentile for c in slo.constraints)
    return any(v / 1e6 > c.max_ms for v, c in zip(service.percentiles(qs), slo.constraints, strict=True))


class CapacitySearch:
    """Decides the windows of one capacity-search round (a ``NextWindow`` of the orchestrator)."""

    def __init__(self, slo: Slo, load: OpenLoad, step_s: float, *, resolution: float = DEFAULT_RESOLUTION,
                 round_index: int = 0, min_samples: int = 0) -> None:
        self.slo = slo
        self.load = load
        self.step_s = step_s
        self.resolution = resolution
        self.round_index = round_index
        self.min_samples = min_samples
        self.result: Capacity | None = None

    def __call__(self, windows: list[WindowResult]) -> Window | None:
        last = windows[-1]
        if self.result is None:
            stats = merged(last.copies)
            window_s = max(1e-9, (last.stop_ns - last.start_ns) / 1e9)
            peak = stats.e2e.count / window_s
            self.result = Capacity(self.slo.text(), peak, 0.0, peak)
            if peak <= 0:
                self.result.reason = "no request completed in the closed-loop window"
                return None
            return self._probe((self.result.low + self.result.high) / 2)
        found = self.result
        step = step_of(last, self.slo)
        found.steps.append(step)
        if step.met:
            found.low = step.rate
        else:
            found.high = step.rate
            if (found.low == 0.0 and step.rate <= _SERVICE_BOUND_SHARE * found.peak_rps
                    and _service_breaks(last, self.slo)):
                found.reason = (f"the model's own service time breaks {self.slo.text()} at {step.rate:.3g} req/s, "
                                "so no lower rate can meet it")
                return None
        if self._narrow_enough(found):
            if found.low == 0.0 and not found.reason:
                lowest = min(found.steps, key=lambda s: s.rate)
                found.reason = (f"no rate tried met {self.slo.text()}; at the lowest, {lowest.rate:.3g} req/s: "
                                f"{'overloaded' if lowest.overloaded else '; '.join(lowest.violations)}")
            return None
        return self._probe((found.low + found.high) / 2)

    def _narrow_enough(self, found: Capacity) -> bool:
        # Relative to the capacity, so a strict SLO whose capacity is a small share of the peak is found
        # as closely as a loose one; with no rate met yet, until the rates tried fall to that share of the peak.
        if found.low > 0:
            return found.high - found.low <= self.resolution * found.high
        return found.high <= self.resolution * found.peak_rps

    def _probe(self, rate: float) -> Window:
        # Poisson counts fall short of their mean about half the time: a margin, so that most steps hold
        # the percentile's sample minimum.
        duration = max(self.step_s, SAMPLE_MARGIN * self.min_samples / rate if rate > 0 else self.step_s)
        return Window(duration, self.load.with_rate(rate), self.round_index, drain_s=drain_seconds(duration))


def drain_seconds(window_s: float) -> float:
    """How long requests that arrived in an open-loop window may still finish after it: as long again, 1 s at least."""
    return max(1.0, window_s)
