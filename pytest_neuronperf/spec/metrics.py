"""The gated metrics, described once: what the gate compares, the reports show, limits bound and
tolerances name.

Adding a metric is one entry here plus its producer (a field of the round summary in
:mod:`pytest_neuronperf.stats.rounds` and a report field). The gate, the tolerance parser, the
absolute limits, the baseline files, the terminal table, the result files and the CLI all read this
table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pytest_neuronperf.spec.fields import DEFAULT_TOLERANCE


@dataclass(frozen=True)
class Metric:
    """One gated metric.

    ``name`` is what people type and read (``--npf-tolerance=p99=10%``, "p99 12.3 ms vs baseline
    ..."); ``report_field`` is the report's key for the configuration's value; ``round_value``,
    ``round_ci`` and ``round_n_eff`` are the round summary's fields the gate works from (``round_n_eff``
    only for a percentile, whose sample minimum the gate checks); ``distribution`` names the round's
    sketch a percentile is taken from, which a paired comparison pools over rounds.
    """

    name: str
    report_field: str
    round_value: str
    round_ci: str
    higher_is_better: bool
    unit: str
    limit_keyword: str
    quantile: float | None = None
    round_n_eff: str | None = None
    # Other report fields the metric's tolerance applies to (model-only latency, say).
    aliases: tuple[str, ...] = ()
    default_tolerance: float = DEFAULT_TOLERANCE
    # Measured only by some configurations (capacity: those with an SLO): judged where both sides have it.
    optional: bool = False
    # An optional metric: what measures it (for a limit on a report without it), and what a value of 0 means.
    needs: str = ""
    none_found: str = ""
    distribution: str | None = None

    @property
    def limit_is_minimum(self) -> bool:
        return self.higher_is_better

    def describe_limit(self, value: float) -> str:
        """``>= 500/s`` or ``<= 5 ms``."""
        return f"{'>=' if self.limit_is_minimum else '<='} {value:g}{self.unit}"


_STREAMING: Final = "a generative model measures it: give streaming=True"

METRICS: Final[tuple[Metric, ...]] = (
    Metric("throughput", "throughput_avg", "throughput", "throughput_ci", True, "/s", "min_throughput"),
    Metric("p50", "latency_ms_p50", "p50_ms", "p50_ci", False, " ms", "max_p50_ms", 0.50, "n_eff_p50",
           ("infer_ms_p50",), distribution="latency"),
    Metric("p99", "latency_ms_p99", "p99_ms", "p99_ci", False, " ms", "max_p99_ms", 0.99, "n_eff_p99",
           ("infer_ms_p99",), distribution="latency"),
    # The highest open-loop request rate that meets the SLO (a capacity search only).
    Metric("capacity", "capacity_rps", "capacity_rps", "capacity_ci", True, " req/s", "min_capacity_rps",
           optional=True, needs="a capacity search measures it: give slo= and no request_rate",
           none_found="no rate tried met the SLO"),
    # Generative (streaming) models: time to first token, time per output token after the first, output
    # tokens/s, and the rate of requests that met every per-request objective of the SLO.
    *(Metric(f"{m}_p{q}", f"{m}_ms_p{q}", f"{m}_p{q}_ms", f"{m}_p{q}_ci", False, " ms", f"max_{m}_p{q}_ms",
             q / 100, f"n_eff_{m}_p{q}", optional=True, needs=_STREAMING, distribution=m)
      for m in ("ttft", "tpot") for q in (50, 99)),
    Metric("tokens_per_s", "output_tokens_per_s", "tokens_per_s", "tokens_per_s_ci", True, " tok/s",
           "min_output_tokens_per_s", optional=True, needs=_STREAMING, none_found="no token came in the window"),
    Metric("goodput", "goodput", "goodput", "goodput_ci", True, " req/s", "min_goodput", optional=True,
           needs="per-request objectives measure it: give slo=\"ttft<=200ms,tpot<=50ms\" (or e2e<=...)",
           none_found="no request met the SLO"),
)
"""Every gated metric, in the order tolerances are written and judgements are listed."""

BY_NAME: Final[Mapping[str, Metric]] = {m.name: m for m in METRICS}
METRIC_NAMES: Final[tuple[str, ...]] = tuple(BY_NAME)
LIMIT_KEYWORDS: Final[tuple[str, ...]] = tuple(m.limit_keyword for m in METRICS)

_BY_FIELD: Final[Mapping[str, Metric]] = {
    key: m for m in METRICS for key in (m.name, m.report_field, *m.aliases)
}


def metric(name: str) -> Metric:
    """The metric called ``name``, or whose report field (or alias) is ``name``; KeyError listing the known."""
    try:
        return _BY_FIELD[name]
    except KeyError:
        raise KeyError(f"no metric {name!r}; known: {', '.join(_BY_FIELD)}") from None


def best(metric_field: str, values: list[float]) -> float:
    """The best of ``values`` of a report field: highest throughput, lowest latency."""
    higher = _BY_FIELD[metric_field].higher_is_better if metric_field in _BY_FIELD else metric_field.startswith(
        "throughput")
    return max(values) if higher else min(values)
