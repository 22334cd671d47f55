"""A latency objective (SLO) such as ``"p99<=20ms"``, ``"p50<=5ms,p99<=20ms"`` or ``"ttft<=200ms,tpot<=50ms"``.

Two kinds of constraint: a percentile of the latency (``p99<=20ms``: the configuration meets it or
not, and a capacity search finds the highest rate that does), and a bound on every request
(``ttft``, ``tpot``, ``e2e``: goodput counts the requests that meet all of them, as DistServe and
vLLM define it; ``ttft`` and ``tpot`` belong to generative models).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

_UNITS_MS: Final = {"ms": 1.0, "s": 1000.0, "us": 0.001}
_CONSTRAINT = re.compile(r"^p(?P<q>\d+(?:\.\d+)?)\s*<=\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|us)$")
_REQUEST = re.compile(r"^(?P<metric>ttft|tpot|e2e)\s*<=\s*(?P<value>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>ms|s|us)$")
REQUEST_METRICS: Final = {"ttft": "time to first token", "tpot": "time per output token", "e2e": "request latency"}
_FORM = ("write each constraint as a percentile (p99) or a per-request bound (ttft, tpot, e2e), <=, and a time "
         "with its unit (ms, s or us), separated by commas: slo=\"p99<=20ms\", slo=\"p50<=5ms,p99<=20ms\" or "
         "slo=\"ttft<=200ms,tpot<=50ms\"")


@dataclass(frozen=True)
class Constraint:
    """The q-th latency percentile (q in (0, 100)) at most ``max_ms``."""

    percentile: float
    max_ms: float

    @property
    def label(self) -> str:
        return f"p{self.percentile:g}"

    def text(self) -> str:
        return f"{self.label}<={self.max_ms:g}ms"


@dataclass(frozen=True)
class RequestLimit:
    """Every request's ``metric`` (ttft, tpot or e2e) at most ``max_ms``: what goodput counts."""

    metric: str
    max_ms: float

    def text(self) -> str:
        return f"{self.metric}<={self.max_ms:g}ms"


@dataclass(frozen=True)
class Slo:
    constraints: tuple[Constraint, ...]
    request_limits: tuple[RequestLimit, ...] = ()

    def text(self) -> str:
        return ",".join([*(c.text() for c in self.constraints), *(r.text() for r in self.request_limits)])

    @property
    def highest_percentile(self) -> float:
        return max(c.percentile for c in self.constraints)

    def violations(self, percentile_ms: Callable[[float], float]) -> list[str]:
        """What ``percentile_ms`` (q -> latency in ms) breaks, one text per constraint; empty when met."""
        out = []
        for c in self.constraints:
            value = percentile_ms(c.percentile)
            if not value <= c.max_ms:  # NaN (nothing measured) meets nothing
                out.append(f"{c.label} {value:.3g} ms > {c.max_ms:g} ms")
        return out


def parse_slo(value: object, name: str = "slo") -> Slo | None:
    """The SLO ``value`` states (None stays None); ValueError naming ``name`` and the form otherwise."""
    if value is None:
        return None
    if isinstance(value, Slo):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name}: expected text such as \"p99<=20ms\", got {value!r}; {_FORM}")
    constraints: list[Constraint] = []
    limits: list[RequestLimit] = []
    for part in value.split(","):
        text = part.strip().lower()
        per_request = _REQUEST.match(text)
        if per_request is not None:
            ms = float(per_request["value"]) * _UNITS_MS[per_request["unit"]]
            if ms <= 0:
                raise ValueError(f"{name}: {part.strip()!r} in {value!r} bounds the latency at 0; give a time > 0; "
                                 f"{_FORM}")
            if any(lim.metric == per_request["metric"] for lim in limits):
                raise ValueError(f"{name}: {value!r} bounds {per_request['metric']} twice; give it once; {_FORM}")
            limits.append(RequestLimit(per_request["metric"], ms))
            continue
        match = _CONSTRAINT.match(text)
        if match is None:
            raise ValueError(f"{name}: cannot read {part.strip()!r} in {value!r}; {_FORM}")
        q = float(match["q"])
        if q == 100:
            raise ValueError(f"{name}: p{match['q']} in {value!r} is the maximum, which no number of samples can "
                             f"state; bound a percentile below 100 such as p99.9; {_FORM}")
        if not 0 < q < 100:
            raise ValueError(f"{name}: percentile p{match['q']} in {value!r} is not in (0, 100); {_FORM}")
        ms = float(match["value"]) * _UNITS_MS[match["unit"]]
        if ms <= 0:
            raise ValueError(f"{name}: {part.strip()!r} in {value!r} bounds the latency at 0; give a time > 0; "
                             f"{_FORM}")
        constraints.append(Constraint(q, ms))
    seen = [c.percentile for c in constraints]
    if len(set(seen)) != len(seen):
        raise ValueError(f"{name}: {value!r} bounds the same percentile twice; give each percentile once; {_FORM}")
    return Slo(tuple(sorted(constraints, key=lambda c: c.percentile)), tuple(limits))
