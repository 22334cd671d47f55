"""Raw results of a benchmark: what ``return_timers=True`` hands back and ``get_reports`` reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_neuronperf.runner.protocol import CopyResult

if TYPE_CHECKING:
    from pytest_neuronperf.runner.capacity import Capacity
    from pytest_neuronperf.spec.generation import Generation
    from pytest_neuronperf.spec.load import OpenLoad
    from pytest_neuronperf.spec.slo import Slo


@dataclass
class RoundResult:
    """One round: fresh copies, one timed window."""

    window_start_ns: int
    window_stop_ns: int
    bin_ns: int
    copies: list[CopyResult]
    resources: dict[str, float | None] = field(default_factory=dict)
    # The open-loop load of the window (None: closed loop).
    load: OpenLoad | None = None
    # A capacity search's answer; the window above is then its closed-loop one.
    capacity: Capacity | None = None
    # What the device reported during the window (neuron-monitor, NVML), and why it is no measurement.
    telemetry: dict[str, Any] = field(default_factory=dict)
    invalid: str | None = None

    @property
    def window_ns(self) -> int:
        """The window's length; a dataset that ran out early closes it at the last completion."""
        if self.copies and all(c.exhausted for c in self.copies):
            last = max((c.stats.last_end_ns for c in self.copies), default=self.window_start_ns)
            return max(1, min(self.window_stop_ns, last) - self.window_start_ns)
        return self.window_stop_ns - self.window_start_ns


@dataclass
class ConfigResult:
    """Everything measured (or why nothing was) for one configuration of the matrix."""

    config: dict[str, Any]
    status: str
    reason: str | None = None
    rounds: list[RoundResult] = field(default_factory=list)
    cost_per_hour: float | None = None
    # The latency objective the configuration is held to (slo=), if any.
    slo: Slo | None = None
    # A streaming model's request shape (streaming=True), if any.
    generation: Generation | None = None
