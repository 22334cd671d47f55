"""Validation of the runner's parameters: every bad value gets a message naming it and the fix."""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from typing import Any, Final

from pytest_neuronperf.spec.fields import MAX


def positive_int_list(name: str, value: object, *, allow_max: bool = False) -> list[int | str] | None:
    """A scalar or list of positive ints (and "max" where allowed); None stays None."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, range)) else [value]
    if not items:
        raise ValueError(f"{name}: got an empty list; give at least one positive integer")
    out: list[int | str] = []
    for item in items:
        if allow_max and isinstance(item, str) and item.lower() == MAX:
            out.append(MAX)
        elif isinstance(item, bool) or not isinstance(item, int) or item < 1:
            hint = ' or "max"' if allow_max else ""
            raise ValueError(f"{name}: expected positive integers{hint}, got {item!r}")
        else:
            out.append(item)
    return out


def int_list(name: str, value: object) -> list[int] | None:
    items = positive_int_list(name, value)
    return None if items is None else [int(i) for i in items]


def positive_seconds(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name}: expected a number of seconds, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name}: must be {bound} seconds, got {value!r}")
    return float(value)


def non_negative_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a whole number >= 0, got {value!r}")
    return value


def positive_int(name: str, value: object) -> int:
    """A whole number of at least 1 (rounds, say)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: must be at least 1 (a whole number), got {value!r}")
    return value


def optional_callable(name: str, fn: object, *, must_pickle: bool) -> Callable[..., Any] | None:
    if fn is None:
        return None
    if not callable(fn):
        raise ValueError(f"{name}: expected a function, got {type(fn).__name__}")
    if must_pickle:
        try:
            pickle.dumps(fn)
        except Exception as exc:
            raise ValueError(
                f"{name}: {getattr(fn, '__qualname__', fn)!r} cannot be sent to a model-copy process "
                f"({type(exc).__name__}); define it at the top level of a module (lambdas and nested "
                "functions cannot be), or pass multiprocess=False"
            ) from exc
    return fn


def verbosity_level(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise ValueError(f"verbosity: expected 0 (silent), 1 (info) or 2 (debug), got {value!r}")
    return int(value)


def check_cost(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 or math.isinf(value):
        raise ValueError(f"cost_per_hour: expected a price >= 0 per instance-hour, got {value!r}")
    return float(value)


def check_workers(value: Sequence[int] | None) -> None:
    if value is not None and any(w > 1024 for w in value):
        raise ValueError(f"workers_per_model: at most 1024 threads per copy, got {list(value)}")


# torch.compile's modes, as the ``compile_mode`` parameter takes them.
COMPILE_MODES: Final[tuple[str, ...]] = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_mode(value: object) -> str | None:
    """``compile_mode`` as given (None: no torch.compile); ValueError naming the choices otherwise."""
    if value is None or (isinstance(value, str) and value in COMPILE_MODES):
        return value
    raise ValueError(
        f"compile_mode: expected one of {', '.join(repr(m) for m in COMPILE_MODES)} (torch.compile's mode), "
        f"or None to benchmark the model as it loads, got {value!r}"
    )


def capacity_resolution(value: object) -> float:
    """A capacity search's resolution: the fraction of the capacity it is found to, in (0, 0.5]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 0.5:
        raise ValueError(f"capacity_resolution: expected the fraction of the capacity to find it to, in (0, 0.5], "
                         f"such as 0.05, got {value!r}")
    return float(value)
