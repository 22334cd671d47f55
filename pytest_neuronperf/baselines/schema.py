"""The baseline file format: records, files, and the checks that reject a damaged file.

Baselines are committed next to the code they measure, so the files are
written for people and for ``git diff``: JSON with two-space indents, sorted
keys, one trailing newline, and records in a stable order. One file holds the
baselines of one test module::

    {"schema_version": 1,
     "module": "<the test module's path, as in its node ids>",
     "entries": {"<test>::<measurement>::<config key>": [<record>, ...]}}

An entry holds one record per environment (see
:func:`pytest_neuronperf.baselines.environment.fingerprint`), so the same file can carry
baselines for several machine types side by side. ``module`` names the test module the entries
belong to, so that a lookup never judges one module's tests by another's; files written before
it existed have none and are accepted for any module.

What is checked when: parsing rejects anything that makes the file as a whole unusable (not
JSON, a wrong shape, NaN or Infinity, a key given twice, an entry with no rounds); the rounds of
a record are checked field by field (:func:`round_problem`) when that record is about to be
judged, so that a damaged entry fails the tests that would use it and no other.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Final, TypeGuard

from pytest_neuronperf.spec.fields import (
    CAPACITY_STEPS_KEY,
    CDF_KEY,
    GENERATIVE_KEYS,
    ITL_CDF_KEY,
    LATENCY_KEYS,
    LOAD_KEYS,
    SKETCHES_KEY,
    TTFT_CDF_KEY,
)

# 2 records the test module a file belongs to ("module"); files of version 1 still load, and an older
# plugin that meets a version 2 file says to upgrade instead of calling the file damaged.
SCHEMA_VERSION: Final = 2

# The report fields kept in a baseline file: enough for people reading a diff, not every detail.
BASELINE_REPORT_KEYS: tuple[str, ...] = (
    "model_name", "device_type", "batch_size", "n_models", "workers_per_model", "pipeline_size",
    "throughput_avg", "throughput_peak", *LATENCY_KEYS, "latency_samples", "duration", CDF_KEY,
)
# Kept too where the report has them (open-loop load, an SLO): what the load was and what came of it.
BASELINE_LOAD_KEYS: tuple[str, ...] = (
    *LOAD_KEYS, "offered_rps", "achieved_rps", "slo_met", "capacity_rps", "capacity_ms_p50", "capacity_ms_p99",
    CAPACITY_STEPS_KEY, *GENERATIVE_KEYS, TTFT_CDF_KEY, ITL_CDF_KEY,
)
# What identifies the configuration a record belongs to.
_CONFIG_FIELDS: Final = ("model_name", "device_type", "batch_size", "n_models", "workers_per_model", "pipeline_size")
_RECORD_KEYS: Final = frozenset({"fingerprint", "saved_at", "config", "rounds", "report"})
_TOP_KEYS: Final = frozenset({"schema_version", "module", "entries"})
# What a saved round says about where it came from: the session that measured it (that save's
# ``saved_at``) and the commit checked out then (null outside git). Rounds saved before these
# existed have neither and count as one untagged session.
SESSION_KEY: Final = "session"
COMMIT_KEY: Final = "commit"

FIX_HINT: Final = (
    "delete it, restore it from version control, or pass --npf-overwrite-corrupt to replace it "
    "(the bad file is then kept beside it as <name>.corrupt-<time>)"
)
# For one damaged record: the rest of the file is fine and stays.
ENTRY_FIX_HINT: Final = (
    "restore the file from version control, delete that entry, or record it again with "
    "--npf-save-baseline --npf-overwrite-corrupt (which replaces this environment's record of the entry)"
)


class BaselineFileError(ValueError):
    """A baseline file exists but cannot be used; the message names the file, the problem and the fixes."""

    def __init__(self, path: str | os.PathLike[str], problem: str, hint: str = FIX_HINT) -> None:
        self.path = Path(path)
        self.problem = problem
        self.hint = hint
        super().__init__(f"baseline file {self.path} is unusable: {problem}. To fix it, {hint}")


class _Malformed(Exception):
    """A problem found while validating a document; becomes a BaselineFileError with the path."""

    def __init__(self, problem: str, hint: str = FIX_HINT) -> None:
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


def utc_now() -> str:
    """The current time as ISO-8601 UTC with a ``Z`` suffix, to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- records ------------------------------------------------------------------------------------


def _to_json(value: object, where: str) -> object:
    """A JSON-ready copy of ``value``; non-finite floats become null, since JSON has no NaN."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: keys must be strings, got {key!r}")
            out[key] = _to_json(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [_to_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{where}: {type(value).__name__} cannot be stored in a baseline (value {value!r})")


@dataclass(frozen=True)
class BaselineRecord:
    """The baseline of one entry in one environment.

    ``rounds`` are the per-round summaries the comparison works from (their
    fields belong to the stats module); ``report`` is the summary report shown
    to people.
    """

    fingerprint: Mapping[str, str]
    config: Mapping[str, object]
    rounds: Sequence[Mapping[str, object]]
    report: Mapping[str, object]
    saved_at: str = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rounds", tuple(self.rounds))

    def tagged(self, commit: str | None) -> BaselineRecord:
        """This record with every round that has no session marked as this save's (see :func:`tag_rounds`)."""
        return replace(self, rounds=tag_rounds(self.rounds, self.saved_at, commit))

    def to_json(self) -> dict[str, object]:
        """A JSON-ready dict; TypeError if any value cannot be stored."""
        for key, value in self.fingerprint.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise TypeError(f"fingerprint values must be strings, got {key!r}: {value!r}")
        return {
            "fingerprint": dict(self.fingerprint),
            "saved_at": self.saved_at,
            "config": _to_json(self.config, "config"),
            "rounds": _to_json(list(self.rounds), "rounds"),
            "report": _to_json(self.report, "report"),
        }

    @classmethod
    def from_report(cls, report: Mapping[str, object], fingerprint: Mapping[str, str]) -> BaselineRecord:
        """The record of a finished report: its rounds for the gate, a summary for people.

        ValueError when the report has no rounds, or a round timed no inference: such a record
        would make every later comparison against it fail or divide by zero.
        """
        rounds = report.get("rounds")
        if not isinstance(rounds, (list, tuple)) or not rounds:
            raise ValueError("a baseline record needs the report's rounds")
        for i, r in enumerate(rounds):
            if not isinstance(r, Mapping):
                raise ValueError(f"round {i} of the report is not a round summary")
            n, throughput = r.get("n"), r.get("throughput")
            if not (_is_number(n) and n >= 1 and _is_number(throughput) and throughput > 0
                    and math.isfinite(throughput)):
                raise ValueError(
                    f"round {i} of the report completed no inference (n={n!r}, throughput={throughput!r}): "
                    "a baseline with zero samples is never saved; run longer (--npf-duration) or check "
                    "that the model finishes an inference within the window"
                )
        return cls(
            fingerprint=dict(fingerprint),
            config={k: report.get(k) for k in _CONFIG_FIELDS},
            # A stored comparison judges each round's own values; the sketches serve paired runs only.
            rounds=[{k: v for k, v in r.items() if k != SKETCHES_KEY} for r in rounds],
            report={**{k: report.get(k) for k in BASELINE_REPORT_KEYS},
                    **{k: report[k] for k in BASELINE_LOAD_KEYS if report.get(k) is not None}},
        )

    @classmethod
    def from_json(cls, data: object, where: str) -> BaselineRecord:
        if not isinstance(data, dict):
            raise _Malformed(f"{where} must be an object, got {_kind(data)}")
        missing = sorted(_RECORD_KEYS - data.keys())
        if missing:
            raise _Malformed(f"{where} lacks {', '.join(missing)}")
        unknown = sorted(data.keys() - _RECORD_KEYS)
        if unknown:
            raise _Malformed(f"{where} has unexpected keys {', '.join(map(repr, unknown))}")
        fp = data["fingerprint"]
        if not isinstance(fp, dict) or not all(isinstance(v, str) for v in fp.values()):
            raise _Malformed(f"{where}.fingerprint must be an object of strings")
        if not isinstance(data["saved_at"], str):
            raise _Malformed(f"{where}.saved_at must be a string, got {_kind(data['saved_at'])}")
        for name in ("config", "report"):
            if not isinstance(data[name], dict):
                raise _Malformed(f"{where}.{name} must be an object, got {_kind(data[name])}")
        rounds = data["rounds"]
        if not isinstance(rounds, list) or not all(isinstance(r, dict) for r in rounds):
            raise _Malformed(f"{where}.rounds must be a list of objects")
        if not rounds:
            raise _Malformed(f"{where}.rounds is empty: a baseline without rounds cannot judge anything")
        return cls(
            fingerprint=fp,
            config=data["config"],
            rounds=rounds,
            report=data["report"],
            saved_at=data["saved_at"],
        )


def tag_rounds(rounds: Sequence[Mapping[str, object]], session: str,
               commit: str | None) -> list[dict[str, object]]:
    """Copies of ``rounds``, each without a session given ``session`` and ``commit``.

    A round that has a session keeps it and its commit: it was measured by that earlier session,
    and relabelling it would hide the offset between the two.
    """
    if not isinstance(session, str):
        raise TypeError(f"a session must be a string, got {session!r}")
    if commit is not None and not isinstance(commit, str):
        raise TypeError(f"a commit must be a string or None, got {commit!r}")
    return [dict(r) if SESSION_KEY in r else {**r, SESSION_KEY: session, COMMIT_KEY: commit} for r in rounds]


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _is_number(value: object) -> TypeGuard[int | float]:
    # bool is an int subclass, but true/false in a numeric field is not a count.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def round_problem(data: Mapping[str, object]) -> str | None:
    """What makes one stored round summary unusable for the gate, or None when it is usable.

    The round must read back as a :class:`~pytest_neuronperf.stats.rounds.RoundSummary` (every
    field present, of its type), with finite values, at least one inference and a throughput
    and latencies above zero: the gate takes logarithms of them. Its optional tags must be a
    string ``session`` and a string-or-null ``commit``.
    """
    # Imported here: the stats module needs numpy, which reading a baseline file does not.
    from pytest_neuronperf.stats.rounds import RoundSummary

    if SESSION_KEY in data and not isinstance(data[SESSION_KEY], str):
        return (f"round field {SESSION_KEY!r} (the session that measured it) must be a string, "
                f"got {_kind(data[SESSION_KEY])}")
    if COMMIT_KEY in data and data[COMMIT_KEY] is not None and not isinstance(data[COMMIT_KEY], str):
        return (f"round field {COMMIT_KEY!r} (the commit measured) must be a string or null, "
                f"got {_kind(data[COMMIT_KEY])}")

    try:
        summary = RoundSummary.from_dict(data)
    except ValueError as exc:
        return str(exc)
    for name in ("throughput", "p50_ms", "p99_ms", "n_eff_p50", "n_eff_p99", "duration_s", "throughput_cv"):
        value = getattr(summary, name)
        if not math.isfinite(value):
            return f"round summary field {name!r} must be a finite number, got {value!r}"
    if summary.n < 1:
        return f"round summary field 'n' is {summary.n}: the round completed no inference"
    for name in ("throughput", "p50_ms", "p99_ms"):
        if getattr(summary, name) <= 0:
            return f"round summary field {name!r} must be above zero, got {getattr(summary, name)!r}"
    return None


def check_record(record: BaselineRecord, path: str | os.PathLike[str], where: str) -> None:
    """Raise a BaselineFileError naming ``path``, ``where`` and the round when a round of ``record`` is unusable."""
    for i, data in enumerate(record.rounds):
        problem = round_problem(data)
        if problem is not None:
            raise BaselineFileError(path, f"{where}.rounds[{i}]: {problem}", ENTRY_FIX_HINT)


def record_order(record: BaselineRecord) -> str:
    return json.dumps(dict(record.fingerprint), sort_keys=True)


# --- files --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineFile:
    """The baselines of one test module; ``entries`` is empty when the file does not exist."""

    path: Path
    entries: Mapping[str, tuple[BaselineRecord, ...]] = field(default_factory=dict)
    module: str | None = None  # the test module the entries belong to; None in files written before

    def records(self, entry_key: str) -> tuple[BaselineRecord, ...]:
        return self.entries.get(entry_key, ())

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "schema_version": SCHEMA_VERSION,
            "entries": {key: [r.to_json() for r in records] for key, records in self.entries.items()},
        }
        if self.module is not None:
            doc["module"] = self.module
        return doc

    def dumps(self) -> bytes:
        """The file's bytes: the same content always gives the same bytes."""
        doc = self.to_json()
        try:
            text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
            return (text + "\n").encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (possible from a "\ud800" escape in a loaded file)
            # have no UTF-8 form; escaped ASCII keeps the file loadable.
            text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False)
            return (text + "\n").encode("ascii")


def parse_baseline(data: bytes, path: str | os.PathLike[str]) -> BaselineFile:
    """Parse and validate a baseline file's bytes; BaselineFileError is the only error raised."""
    try:
        return _parse(data, Path(path))
    except _Malformed as exc:
        raise BaselineFileError(path, exc.problem, exc.hint) from None


def _parse(data: bytes, path: Path) -> BaselineFile:
    try:
        text = data.decode("utf-8-sig")  # tolerate the BOM some Windows editors add
    except UnicodeDecodeError as exc:
        raise _Malformed(f"it is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise _Malformed("it is empty")
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise _Malformed(
            f"it is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}; truncated or mis-edited?)"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise _Malformed(f"it is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise _Malformed(f"the top level must be an object, got {_kind(doc)}")
    if "schema_version" not in doc:
        raise _Malformed("it has no schema_version")
    version = doc["schema_version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Malformed(f"schema_version must be an integer, got {json.dumps(version)[:40]}")
    if version > SCHEMA_VERSION:
        raise _Malformed(
            f"it has schema_version {version}, written by a newer pytest-neuronperf "
            f"(this one reads up to {SCHEMA_VERSION})",
            hint=f"upgrade pytest-neuronperf, or {FIX_HINT}",
        )
    if version < 1:
        raise _Malformed(f"schema_version {version} is not one any pytest-neuronperf writes")
    unknown = sorted(doc.keys() - _TOP_KEYS)
    if unknown:
        raise _Malformed(f"it has unexpected top-level keys {', '.join(map(repr, unknown))}")
    module = doc.get("module")
    if module is not None and (not isinstance(module, str) or not module):
        raise _Malformed(f"'module' must be the test module's path, got {json.dumps(module)[:40]}")
    raw_entries = doc.get("entries")
    if not isinstance(raw_entries, dict):
        raise _Malformed(f"'entries' must be an object, got {_kind(raw_entries)}")
    entries: dict[str, tuple[BaselineRecord, ...]] = {}
    for key, records in raw_entries.items():
        if not isinstance(records, list):
            raise _Malformed(f"entries[{key!r}] must be a list of records, got {_kind(records)}")
        entries[key] = tuple(
            BaselineRecord.from_json(record, f"entries[{key!r}][{i}]") for i, record in enumerate(records)
        )
    return BaselineFile(path, entries, module)


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            # json.loads would keep the last silently: after a bad merge that is a lost baseline.
            raise _Malformed(f"the key {key!r} appears twice in one object (a merge gone wrong?); keep one")
        out[key] = value
    return out


def _no_constant(name: str) -> object:
    raise _Malformed(f"it holds {name}, which is not a JSON number (a value that could not be measured "
                     "is stored as null)")


_NOT_A_FILE_HINT: Final = "remove or rename what is there; a baseline file is a regular file named <module>.json"


def read_baseline(path: str | os.PathLike[str]) -> BaselineFile:
    """Load one baseline file; a missing file is an empty one, a malformed or unreadable one a BaselineFileError."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return BaselineFile(path)
    except NotADirectoryError:
        raise BaselineFileError(path, "a folder on its path is a file", _NOT_A_FILE_HINT) from None
    except OSError as exc:
        raise BaselineFileError(path, f"it cannot be examined ({exc.strerror or exc})",
                                "check the permissions of its folder") from None
    if stat.S_ISDIR(mode):
        raise BaselineFileError(path, "it is a directory, not a file", _NOT_A_FILE_HINT)
    if not stat.S_ISREG(mode):
        # Reading a FIFO would block the session; a device is nobody's baseline.
        raise BaselineFileError(path, "it is not a regular file (a FIFO, socket or device)", _NOT_A_FILE_HINT)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return BaselineFile(path)  # removed between the two looks
    except OSError as exc:
        raise BaselineFileError(path, f"it cannot be read ({exc.strerror or exc})",
                                "give this user read access to it, or restore it from version control") from None
    return parse_baseline(data, path)
