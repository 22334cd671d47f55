"""How far each gated metric may move against its reference before it counts as a regression."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from pytest_neuronperf.errors import SettingsError
from pytest_neuronperf.spec.metrics import BY_NAME, METRIC_NAMES, metric

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_FRACTION_RE = re.compile(rf"({_NUMBER})\s*(%)?", re.ASCII)


def shown(text: str) -> str:
    """What the user typed, quoted, with a pasted novel cut short."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


class Tolerance:
    """A fraction per gated metric (:data:`pytest_neuronperf.spec.metrics.METRICS`), immutable.

    ``Tolerance(0.05, 0.08, 0.1)`` gives the metrics in the table's order, ``Tolerance(p99=0.1)``
    by name; a metric not given keeps its default.
    """

    __slots__ = ("_values",)
    _values: Mapping[str, float]

    def __init__(self, *fractions: float, **by_name: float) -> None:
        if len(fractions) > len(METRIC_NAMES):
            raise TypeError(f"Tolerance takes at most {len(METRIC_NAMES)} fractions ({', '.join(METRIC_NAMES)})")
        values = dict(zip(METRIC_NAMES, fractions, strict=False))
        for name, value in by_name.items():
            if name not in BY_NAME:
                raise TypeError(f"Tolerance: unknown metric {name!r}; known: {', '.join(METRIC_NAMES)}")
            if name in values:
                raise TypeError(f"Tolerance: {name} given twice")
            values[name] = value
        for name in METRIC_NAMES:
            value = values.setdefault(name, BY_NAME[name].default_tolerance)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
                raise SettingsError("tolerance", f"{name} must be a fraction above 0 and at most 1, got {value!r}")
        object.__setattr__(self, "_values", {name: float(values[name]) for name in METRIC_NAMES})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Tolerance is immutable")

    def __getattr__(self, name: str) -> float:
        values = object.__getattribute__(self, "_values")
        if name in values:
            return float(values[name])
        raise AttributeError(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tolerance) and dict(self._values) == dict(other._values)

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        return "Tolerance(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"

    def __reduce__(self) -> tuple[type[Tolerance], tuple[float, ...]]:
        return (type(self), tuple(self._values.values()))

    def for_metric(self, name: str) -> float:
        """The tolerance of a metric by name (``p99``) or by a report field it covers (``latency_ms_p99``)."""
        try:
            return self._values[metric(name).name]
        except KeyError:
            raise KeyError(f"no tolerance for {name!r}; known: {', '.join(METRIC_NAMES)} and their report fields") \
                from None

    def __str__(self) -> str:
        if len(set(self._values.values())) == 1:
            return f"{next(iter(self._values.values())) * 100:g}%"
        # A metric few measurements have (capacity) is named only where it differs from its default.
        return ",".join(f"{name}={value * 100:g}%" for name, value in self._values.items()
                        if not BY_NAME[name].optional or value != BY_NAME[name].default_tolerance)


def _parse_fraction(text: str, option: str, what: str) -> float:
    match = _FRACTION_RE.fullmatch(text.strip())
    if match is None:
        raise SettingsError(
            option, f"expected {what}a percentage such as 10% or a fraction such as 0.1, got {shown(text)}"
        )
    value = float(match.group(1))
    if match.group(2):
        value /= 100
    if not 0 < value <= 1 or not math.isfinite(value):
        raise SettingsError(option, f"expected {what}a tolerance above 0% and at most 100%, got {shown(text)}")
    return value


def parse_tolerance(text: str, option: str = "--npf-tolerance") -> Tolerance:
    """One tolerance for every metric (``8%`` or ``0.08``), or per metric: ``throughput=5%,p99=10%``.

    Metrics left out keep their default, 5% (:data:`pytest_neuronperf.spec.fields.DEFAULT_TOLERANCE`).
    """
    if "=" not in text:
        value = _parse_fraction(text, option, "")
        return Tolerance(*(value for _ in METRIC_NAMES))
    values: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value_text = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in BY_NAME:
            raise SettingsError(
                option,
                f"expected metric=tolerance pairs with metrics {', '.join(METRIC_NAMES)} "
                f"(such as throughput=5%,p99=10%), got {shown(item.strip())}",
            )
        if name in values:
            raise SettingsError(option, f"{name} is given twice in {shown(text)}")
        values[name] = _parse_fraction(value_text, option, f"for {name} ")
    return Tolerance(**values)
