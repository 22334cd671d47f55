"""Plugin options: their parsers and the frozen Settings they produce.

Every option is described once, in :data:`pytest_neuronperf.config.options.OPTIONS`;
this module gives each its parser (:data:`PARSERS`). Values come from the
command line, else the ini file, else the default of the :class:`Settings`
field (a marker can still override per test, outside this module).

Parsers take the text and the name to blame (a flag such as
``--npf-duration`` or an ini key such as ``npf_duration (ini)``) and raise
:class:`SettingsError` for anything they cannot accept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from pytest_neuronperf.config.options import (
    DEFAULT_BASELINE_DIR,
    DEFAULT_CONFIRM,
    DEFAULT_ROUNDS,
    DEFAULT_TOLERANCE,
    OPTIONS,
    Option,
    ini_is_set,
)
from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS, FINGERPRINT_FIELDS


class SettingsError(ValueError):
    """An option value that cannot be used; ``str()`` reads ``<option>: <message>``."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message

    def __reduce__(self) -> tuple[type[SettingsError], tuple[str, str]]:
        return (type(self), (self.option, self.message))


MAX: Final = -1
"""A member of ``n_models`` meaning "as many copies as the device holds".

It is resolved where the device is known (the matrix divides the core count
by the pipeline size), never here.
"""

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_DURATION_RE = re.compile(rf"({_NUMBER})\s*(ms|s|m|h)?", re.ASCII)
_FRACTION_RE = re.compile(rf"({_NUMBER})\s*(%)?", re.ASCII)
_INT_RE = re.compile(r"[0-9]+", re.ASCII)
_DEVICE_RE = re.compile(r"[a-z][a-z0-9_-]*", re.ASCII)
_UNIT_S: Final[Mapping[str, float]] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_VERBOSITY: Final[Mapping[str, int]] = {"0": 0, "1": 1, "2": 2, "silent": 0, "error": 0, "info": 1, "debug": 2}

TOLERANCE_METRICS: Final[tuple[str, ...]] = ("throughput", "p50", "p99")
# Report fields a tolerance applies to, so the gate can ask with the names it holds.
_METRIC_ALIASES: Final[Mapping[str, str]] = {
    "throughput": "throughput",
    "throughput_avg": "throughput",
    "p50": "p50",
    "latency_ms_p50": "p50",
    "infer_ms_p50": "p50",
    "p99": "p99",
    "latency_ms_p99": "p99",
    "infer_ms_p99": "p99",
}


def _shown(text: str) -> str:
    # Quote what the user typed, but keep a pasted novel out of the message.
    return repr(text if len(text) <= 60 else text[:57] + "...")


# --- parsers ------------------------------------------------------------------------------------


def parse_duration(text: str, option: str = "--npf-duration") -> float:
    """Seconds from ``10``, ``10.5``, ``10s``, ``500ms``, ``2m`` or ``1h``; must be finite and above 0."""
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None:
        raise SettingsError(option, f"expected seconds such as 10, 10s, 2m or 500ms, got {_shown(text)}")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    if not math.isfinite(seconds):
        raise SettingsError(option, f"expected a finite duration, got {_shown(text)}")
    if seconds <= 0:
        raise SettingsError(option, f"expected a duration above 0, got {_shown(text)}")
    return seconds


def parse_timeout(text: str, option: str = "--npf-timeout") -> float:
    """How long a model copy may take to load and warm up, and to finish after its window closes."""
    return parse_duration(text, option)


def _parse_fraction(text: str, option: str, what: str) -> float:
    match = _FRACTION_RE.fullmatch(text.strip())
    if match is None:
        raise SettingsError(
            option, f"expected {what}a percentage such as 10% or a fraction such as 0.1, got {_shown(text)}"
        )
    value = float(match.group(1))
    if match.group(2):
        value /= 100
    if not 0 < value <= 1:
        raise SettingsError(option, f"expected {what}a tolerance above 0% and at most 100%, got {_shown(text)}")
    return value


@dataclass(frozen=True)
class Tolerance:
    """How far each metric may move against its baseline before it counts as a regression (fractions)."""

    throughput: float = DEFAULT_TOLERANCE
    p50: float = DEFAULT_TOLERANCE
    p99: float = DEFAULT_TOLERANCE

    def __post_init__(self) -> None:
        for name in TOLERANCE_METRICS:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
                raise SettingsError("tolerance", f"{name} must be a fraction above 0 and at most 1, got {value!r}")

    def for_metric(self, name: str) -> float:
        """The tolerance for ``throughput``, ``p50`` or ``p99``, or a report field such as ``latency_ms_p99``."""
        try:
            return float(getattr(self, _METRIC_ALIASES[name]))
        except KeyError:
            raise KeyError(f"no tolerance for {name!r}; known: {', '.join(_METRIC_ALIASES)}") from None

    def __str__(self) -> str:
        values = {name: getattr(self, name) for name in TOLERANCE_METRICS}
        if len(set(values.values())) == 1:
            return f"{self.throughput * 100:g}%"
        return ",".join(f"{name}={value * 100:g}%" for name, value in values.items())


def parse_tolerance(text: str, option: str = "--npf-tolerance") -> Tolerance:
    """``10%`` or ``0.1`` for every metric, or per metric: ``throughput=5%,p99=10%``.

    Metrics left out keep the default of 10%.
    """
    if "=" not in text:
        value = _parse_fraction(text, option, "")
        return Tolerance(value, value, value)
    values: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value_text = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in TOLERANCE_METRICS:
            raise SettingsError(
                option,
                f"expected metric=tolerance pairs with metrics {', '.join(TOLERANCE_METRICS)} "
                f"(such as throughput=5%,p99=10%), got {_shown(item.strip())}",
            )
        if name in values:
            raise SettingsError(option, f"{name} is given twice in {_shown(text)}")
        values[name] = _parse_fraction(value_text, option, f"for {name} ")
    return Tolerance(**values)


def parse_int_list(text: str, option: str, allow_max: bool = False) -> tuple[int, ...]:
    """Positive integers separated by commas or spaces (``1,2``, ``1 2``, ``4``), duplicates dropped.

    With ``allow_max`` the word ``max`` may appear and becomes :data:`MAX`.
    """
    words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
    expected = "positive integers such as 1,2" + (" or the word max" if allow_max else "")
    if not words:
        raise SettingsError(option, f"expected {expected}, got {_shown(text)}")
    values: list[int] = []
    for word in words:
        if allow_max and word.lower() == "max":
            value = MAX
        elif _INT_RE.fullmatch(word) and len(word) <= 9 and int(word) > 0:
            value = int(word)
        else:
            raise SettingsError(option, f"expected {expected}, got {_shown(word)} in {_shown(text)}")
        if value not in values:
            values.append(value)
    return tuple(values)


def _parse_count(text: str, option: str, minimum: int, what: str) -> int:
    word = text.strip()
    if not _INT_RE.fullmatch(word) or len(word) > 9 or int(word) < minimum:
        raise SettingsError(option, f"expected {what}, got {_shown(text)}")
    return int(word)


def parse_rounds(text: str, option: str = "--npf-rounds") -> int:
    """How many rounds each configuration is measured: an integer of at least 1."""
    return _parse_count(text, option, 1, "a whole number of rounds, at least 1")


def parse_confirm(text: str, option: str = "--npf-confirm") -> int:
    """How many extra rounds confirm a suspected regression: an integer of at least 0."""
    return _parse_count(text, option, 0, "a whole number of confirmation rounds, 0 or more")


def parse_bool(text: str, option: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no`` or ``on/off``, in any case."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise SettingsError(option, f"expected true or false (also 1/0, yes/no, on/off), got {_shown(text)}")


def parse_verbosity(text: str, option: str = "--npf-verbosity") -> int:
    """0 (errors only), 1 (info) or 2 (debug); also ``silent``, ``error``, ``info``, ``debug``."""
    word = text.strip().lower()
    if word not in _VERBOSITY:
        raise SettingsError(option, f"expected 0 (silent), 1 (info) or 2 (debug), got {_shown(text)}")
    return _VERBOSITY[word]


def parse_device(text: str, option: str = "--npf-device") -> str:
    """A device type name such as ``neuron``, ``cpu`` or ``cuda``, lower-cased.

    Whether a backend exists for it is for the backend registry to say:
    backends can come from other packages, and looking them up is not free.
    """
    word = text.strip().lower()
    if not _DEVICE_RE.fullmatch(word):
        raise SettingsError(option, f"expected a device type such as neuron, cpu or cuda, got {_shown(text)}")
    return word


def parse_path(text: str, option: str) -> str:
    """A file or folder path, kept as written (relative paths are resolved by the plugin)."""
    if not text.strip():
        raise SettingsError(option, "expected a path, got an empty value")
    if "\0" in text:
        raise SettingsError(option, f"a path cannot contain a NUL character, got {_shown(text)}")
    return text


def parse_fingerprint_keys(text: str, option: str = "--npf-fingerprint-keys") -> tuple[str, ...]:
    """Environment fields that must match for a baseline to apply, or ``none`` to compare across all."""
    words = [w for w in re.split(r"[\s,]+", text.strip().lower()) if w]
    if words == ["none"]:
        return ()
    known = ", ".join(FINGERPRINT_FIELDS)
    if not words:
        raise SettingsError(option, f"expected field names from {known}, or none, got {_shown(text)}")
    keys: list[str] = []
    for word in words:
        if word not in FINGERPRINT_FIELDS:
            raise SettingsError(option, f"unknown environment field {_shown(word)}; use some of {known}, or none")
        if word not in keys:
            keys.append(word)
    return tuple(keys)


def _parse_n_models(text: str, option: str) -> tuple[int, ...]:
    return parse_int_list(text, option, allow_max=True)


def _parse_workers(text: str, option: str) -> tuple[int, ...]:
    return parse_int_list(text, option)


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Every plugin option, resolved. ``None`` where a test's own value (or the runner's) applies."""

    duration: float | None = None
    save_baseline: bool = False
    baseline_dir: str = DEFAULT_BASELINE_DIR
    tolerance: Tolerance = Tolerance()
    compare: bool = True
    require_baseline: bool = False
    device: str | None = None
    n_models: tuple[int, ...] | None = None
    workers: tuple[int, ...] | None = None
    json_path: str | None = None
    csv_path: str | None = None
    md_path: str | None = None
    html_path: str | None = None
    skip: bool = False
    only: bool = False
    verbosity: int | None = None
    rounds: int = DEFAULT_ROUNDS
    confirm: int = DEFAULT_CONFIRM
    strict: bool = False
    timeout: float | None = None
    overwrite_corrupt: bool = False
    recompile: bool = False
    fingerprint_keys: tuple[str, ...] = DEFAULT_FINGERPRINT_KEYS

    def __post_init__(self) -> None:
        if self.skip and self.only:
            raise SettingsError(
                "--npf-skip",
                "cannot be combined with --npf-only (one skips the performance tests, the other runs only them)",
            )
        if self.rounds < 1:
            raise SettingsError("--npf-rounds", f"expected at least 1 round, got {self.rounds}")
        if self.confirm < 0:
            raise SettingsError("--npf-confirm", f"expected 0 or more confirmation rounds, got {self.confirm}")
        unknown = [k for k in self.fingerprint_keys if k not in FINGERPRINT_FIELDS]
        if unknown:
            raise SettingsError("--npf-fingerprint-keys", f"unknown environment fields {', '.join(unknown)}")

    @classmethod
    def from_sources(
        cls,
        cli: Mapping[str, object | None],
        ini: Mapping[str, str | list[str] | bool | None],
    ) -> Settings:
        """Resolve every option: command line, else ini, else the field's default.

        Both mappings are keyed by Settings field name. ``None`` (and, in the
        ini, an empty string or list, which is what an unset ini key reads as)
        means "not given". Errors name the flag, or the ini key for ini values.
        """
        for source, values in (("command line", cli), ("ini", ini)):
            unknown = sorted(set(values) - _OPTION_FIELDS)
            if unknown:
                raise ValueError(f"{source} values for unknown settings {', '.join(unknown)}")
        resolved: dict[str, Any] = {}
        for option in OPTIONS:
            cli_value = cli.get(option.field)
            ini_value = ini.get(option.field)
            if cli_value is not None:
                resolved[option.field] = convert(option, cli_value, option.flag)
            elif ini_is_set(ini_value):
                resolved[option.field] = convert(option, ini_value, f"{option.ini} (ini)")
        return cls(**resolved)


# --- from option values to Settings fields ------------------------------------------------------

PARSERS: Final[Mapping[str, Callable[[str, str], object]]] = {
    "duration": parse_duration,
    "save_baseline": parse_bool,
    "baseline_dir": parse_path,
    "tolerance": parse_tolerance,
    "compare": parse_bool,
    "require_baseline": parse_bool,
    "device": parse_device,
    "n_models": _parse_n_models,
    "workers": _parse_workers,
    "json_path": parse_path,
    "csv_path": parse_path,
    "md_path": parse_path,
    "html_path": parse_path,
    "skip": parse_bool,
    "only": parse_bool,
    "verbosity": parse_verbosity,
    "rounds": parse_rounds,
    "confirm": parse_confirm,
    "strict": parse_bool,
    "timeout": parse_timeout,
    "overwrite_corrupt": parse_bool,
    "recompile": parse_bool,
    "fingerprint_keys": parse_fingerprint_keys,
}
"""The parser of each option, by Settings field."""


def convert(option: Option, value: object, source: str) -> object:
    """Turn a command-line or ini value into the field's type; SettingsError naming ``source``."""
    parse = PARSERS[option.field]
    if isinstance(value, bool):
        if parse is parse_bool:
            return value
        raise SettingsError(source, f"expected a value, got {value}")
    if isinstance(value, Tolerance) and parse is parse_tolerance:
        return value
    if isinstance(value, (list, tuple)):
        # An ini "linelist" or a programmatic sequence: one member per item.
        text = ",".join(str(item).strip() for item in value)
    elif isinstance(value, (str, int, float)):
        text = str(value)
    else:
        raise SettingsError(source, f"expected text, got {type(value).__name__} {value!r}")
    return parse(text, source)


_OPTION_FIELDS: Final = frozenset(option.field for option in OPTIONS)
