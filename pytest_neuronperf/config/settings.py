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
    DEFAULT_MAX_ROUNDS,
    DEFAULT_ROUNDS,
    OPTIONS,
    Option,
    ini_is_set,
)
from pytest_neuronperf.errors import SettingsError
from pytest_neuronperf.gate.tolerance import Tolerance, parse_tolerance, shown
from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS, FINGERPRINT_FIELDS, MAX

__all__ = ["MAX", "PARSERS", "Settings", "SettingsError", "Tolerance", "convert", "parse_tolerance"]

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_DURATION_RE = re.compile(rf"({_NUMBER})\s*(ms|s|m|h)?", re.ASCII)
_INT_RE = re.compile(r"[0-9]+", re.ASCII)
_DEVICE_RE = re.compile(r"[a-z][a-z0-9_-]*", re.ASCII)
_MODULE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", re.ASCII)
_UNIT_S: Final[Mapping[str, float]] = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_VERBOSITY: Final[Mapping[str, int]] = {"0": 0, "1": 1, "2": 2, "silent": 0, "error": 0, "info": 1, "debug": 2}

# --- parsers ------------------------------------------------------------------------------------


def parse_duration(text: str, option: str = "--npf-duration") -> float:
    """Seconds from ``10``, ``10.5``, ``10s``, ``500ms``, ``2m`` or ``1h``; must be finite and above 0."""
    match = _DURATION_RE.fullmatch(text.strip().lower())
    if match is None:
        raise SettingsError(option, f"expected seconds such as 10, 10s, 2m or 500ms, got {shown(text)}")
    seconds = float(match.group(1)) * _UNIT_S[match.group(2) or "s"]
    if not math.isfinite(seconds):
        raise SettingsError(option, f"expected a finite duration, got {shown(text)}")
    if seconds <= 0:
        raise SettingsError(option, f"expected a duration above 0, got {shown(text)}")
    return seconds


def parse_timeout(text: str, option: str = "--npf-timeout") -> float:
    """How long a model copy may take to load and warm up, and to finish after its window closes."""
    return parse_duration(text, option)


def parse_int_list(text: str, option: str, allow_max: bool = False) -> tuple[int | str, ...]:
    """Positive integers separated by commas or spaces (``1,2``, ``1 2``, ``4``), duplicates dropped.

    With ``allow_max`` the word ``max`` may appear and becomes :data:`MAX`.
    """
    words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
    expected = "positive integers such as 1,2" + (" or the word max" if allow_max else "")
    if not words:
        raise SettingsError(option, f"expected {expected}, got {shown(text)}")
    values: list[int | str] = []
    for word in words:
        value: int | str
        if allow_max and word.lower() == MAX:
            value = MAX
        elif _INT_RE.fullmatch(word) and len(word) <= 9 and int(word) > 0:
            value = int(word)
        else:
            raise SettingsError(option, f"expected {expected}, got {shown(word)} in {shown(text)}")
        if value not in values:
            values.append(value)
    return tuple(values)


def _parse_count(text: str, option: str, minimum: int, what: str) -> int:
    word = text.strip()
    if not _INT_RE.fullmatch(word) or len(word) > 9 or int(word) < minimum:
        raise SettingsError(option, f"expected {what}, got {shown(text)}")
    return int(word)


def parse_rounds(text: str, option: str = "--npf-rounds") -> int:
    """How many rounds each configuration is measured: an integer of at least 1."""
    return _parse_count(text, option, 1, "a whole number of rounds, at least 1")


def parse_max_rounds(text: str, option: str = "--npf-max-rounds") -> int:
    """The most rounds a configuration is measured: an integer of at least 1."""
    return _parse_count(text, option, 1, "a whole number of rounds, at least 1")


def parse_revision(text: str, option: str = "--npf-against") -> str:
    """A git revision to compare against; whether it exists is checked against the repository later."""
    ref = text.strip()
    if not ref or ref.startswith("-") or any(c.isspace() for c in ref):
        raise SettingsError(option, f"expected a git revision such as origin/main, a tag or a sha, got {text!r}")
    return ref


def parse_bool(text: str, option: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no`` or ``on/off``, in any case."""
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise SettingsError(option, f"expected true or false (also 1/0, yes/no, on/off), got {shown(text)}")


def parse_verbosity(text: str, option: str = "--npf-verbosity") -> int:
    """0 (errors only), 1 (info) or 2 (debug); also ``silent``, ``error``, ``info``, ``debug``."""
    word = text.strip().lower()
    if word not in _VERBOSITY:
        raise SettingsError(option, f"expected 0 (silent), 1 (info) or 2 (debug), got {shown(text)}")
    return _VERBOSITY[word]


def parse_device(text: str, option: str = "--npf-device") -> str:
    """A device type name such as ``neuron``, ``cpu`` or ``cuda``, lower-cased.

    Whether a backend exists for it is for the backend registry to say:
    backends can come from other packages, and looking them up is not free.
    """
    word = text.strip().lower()
    if not _DEVICE_RE.fullmatch(word):
        raise SettingsError(option, f"expected a device type such as neuron, cpu or cuda, got {shown(text)}")
    return word


def parse_path(text: str, option: str) -> str:
    """A file or folder path, kept as written (relative paths are resolved by the plugin)."""
    if not text.strip():
        raise SettingsError(option, "expected a path, got an empty value")
    if "\0" in text:
        raise SettingsError(option, f"a path cannot contain a NUL character, got {shown(text)}")
    return text


def parse_fingerprint_keys(text: str, option: str = "--npf-fingerprint-keys") -> tuple[str, ...]:
    """Environment fields that must match for a baseline to apply, or ``none`` to compare across all."""
    words = [w for w in re.split(r"[\s,]+", text.strip().lower()) if w]
    if words == ["none"]:
        return ()
    known = ", ".join(FINGERPRINT_FIELDS)
    if not words:
        raise SettingsError(option, f"expected field names from {known}, or none, got {shown(text)}")
    keys: list[str] = []
    for word in words:
        if word not in FINGERPRINT_FIELDS:
            raise SettingsError(option, f"unknown environment field {shown(word)}; use some of {known}, or none")
        if word not in keys:
            keys.append(word)
    return tuple(keys)


def parse_preload(text: str, option: str = "--npf-preload") -> tuple[str, ...]:
    """Module names separated by commas or spaces (``transformers,mypkg.models``); ``off`` among them turns
    the automatic preloading of the model's own modules off."""
    words = [w for w in re.split(r"[\s,]+", text.strip()) if w]
    bad = [w for w in words if not _MODULE_RE.fullmatch(w)]
    if not words or bad:
        raise SettingsError(option, "expected module names such as transformers,mypkg.models, or off, got "
                            f"{shown(bad[0] if bad else text)}")
    return tuple(dict.fromkeys("off" if w.lower() == "off" else w for w in words))


def _parse_n_models(text: str, option: str) -> tuple[int | str, ...]:
    return parse_int_list(text, option, allow_max=True)


def _parse_workers(text: str, option: str) -> tuple[int, ...]:
    return tuple(int(n) for n in parse_int_list(text, option))


# --- settings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Every plugin option, resolved. ``None`` where a test's own value (or the runner's) applies."""

    duration: float | None = None
    save_baseline: bool = False
    baseline_dir: str = DEFAULT_BASELINE_DIR
    tolerance: Tolerance = Tolerance()  # noqa: RUF009 (immutable, so one shared default is safe)
    compare: bool = True
    require_baseline: bool = False
    device: str | None = None
    n_models: tuple[int | str, ...] | None = None
    workers: tuple[int, ...] | None = None
    json_path: str | None = None
    csv_path: str | None = None
    md_path: str | None = None
    html_path: str | None = None
    skip: bool = False
    only: bool = False
    verbosity: int | None = None
    rounds: int = DEFAULT_ROUNDS
    max_rounds: int = DEFAULT_MAX_ROUNDS
    against: str | None = None
    strict: bool = False
    timeout: float | None = None
    overwrite_corrupt: bool = False
    recompile: bool = False
    fingerprint_keys: tuple[str, ...] = DEFAULT_FINGERPRINT_KEYS
    preload: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.skip and self.only:
            raise SettingsError(
                "--npf-skip",
                "cannot be combined with --npf-only (one skips the performance tests, the other runs only them)",
            )
        if self.rounds < 1:
            raise SettingsError("--npf-rounds", f"expected at least 1 round, got {self.rounds}")
        if self.max_rounds < 1:
            raise SettingsError("--npf-max-rounds", f"expected at least 1 round, got {self.max_rounds}")
        if self.against is not None and self.save_baseline:
            raise SettingsError("--npf-against", "cannot be combined with --npf-save-baseline (a comparison "
                                "against a revision neither needs nor writes stored baselines)")
        unknown = [k for k in self.fingerprint_keys if k not in FINGERPRINT_FIELDS]
        if unknown:
            raise SettingsError("--npf-fingerprint-keys", f"unknown environment fields {', '.join(unknown)}")

    @property
    def most_rounds(self) -> int:
        """The sequential gate's bound on rounds per configuration (per side): never fewer than ``rounds``."""
        return max(self.rounds, self.max_rounds)

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
    "max_rounds": parse_max_rounds,
    "against": parse_revision,
    "strict": parse_bool,
    "timeout": parse_timeout,
    "overwrite_corrupt": parse_bool,
    "recompile": parse_bool,
    "fingerprint_keys": parse_fingerprint_keys,
    "preload": parse_preload,
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
