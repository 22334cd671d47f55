"""Stored baselines: the normal performance each test is compared with.

Baselines are committed next to the code they measure, so the files are
written for people and for ``git diff``: JSON with two-space indents, sorted
keys, one trailing newline, and records in a stable order. One file holds the
baselines of one test module::

    {"schema_version": 1,
     "entries": {"<test>::<measurement>::<config key>": [<record>, ...]}}

An entry holds one record per environment (see :func:`pytest_neuronperf.baselines.environment.fingerprint`), so the
same file can carry baselines for several machine types side by side.

Files are only ever replaced whole (temp file, fsync, ``os.replace``) and only
under an exclusive lock, so concurrent test sessions merge their entries
instead of overwriting each other, and an interrupted write leaves the old
file as it was.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Final

from pytest_neuronperf._util.atomic_write import remove_stale_temp_files, write_atomic
from pytest_neuronperf._util.filelock import FileLock
from pytest_neuronperf.baselines.environment import fingerprint_matches
from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS as DEFAULT_FINGERPRINT_KEYS
from pytest_neuronperf.spec.fields import FINGERPRINT_FIELDS as FINGERPRINT_FIELDS
from pytest_neuronperf.spec.fields import MATRIX_KEYS

SCHEMA_VERSION: Final = 1

DEFAULT_MAX_ROUNDS: Final = 30
# Long enough for any sane save by another session, short enough that a
# stuck process shows up as an error rather than a silent hang.
LOCK_TIMEOUT_S: Final = 120.0

# The config key reads "b1-n2-w1-p1": batch size first, as people say it.
_CONFIG_KEY_PARTS: Final[tuple[tuple[str, str], ...]] = (
    ("b", "batch_size"),
    ("n", "n_models"),
    ("w", "workers_per_model"),
    ("p", "pipeline_size"),
)

_RECORD_KEYS: Final = frozenset({"fingerprint", "saved_at", "config", "rounds", "report"})
_TOP_KEYS: Final = frozenset({"schema_version", "entries"})
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")
# Well under the 255-byte file-name limit, leaving room for ".json.lock" and
# the ".corrupt-<time>" suffix.
_MAX_COMPONENT = 150

FIX_HINT: Final = (
    "delete it, restore it from version control, or pass --npf-overwrite-corrupt to replace it "
    "(the bad file is then kept beside it as <name>.corrupt-<time>)"
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


# --- entry keys ---------------------------------------------------------------------------------


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """Split a pytest node id into (module path, test name within the module)."""
    module_path, sep, test_name = nodeid.partition("::")
    if not sep or not module_path or not test_name:
        raise ValueError(f"expected a test node id such as 'tests/test_x.py::test_y', got {nodeid!r}")
    return module_path, test_name


def config_key(config: Mapping[str, object]) -> str:
    """The matrix point of a configuration as a short key, e.g. ``b1-n2-w1-p1``."""
    parts = []
    for prefix, name in _CONFIG_KEY_PARTS:
        if name not in config:
            raise ValueError(f"config has no {name!r}; a config key needs {', '.join(MATRIX_KEYS)}")
        parts.append(f"{prefix}{config[name]}")
    return "-".join(parts)


def entry_key(test_name: str, measurement: str, config: Mapping[str, object] | str) -> str:
    """``<test name>::<measurement>::<config key>``; ``config`` is a config mapping or a ready key.

    The test name may itself contain ``::`` (class-based tests); the
    measurement and config key may not, so a key always splits from the right.
    """
    key = config if isinstance(config, str) else config_key(config)
    for what, value in (("test name", test_name), ("measurement", measurement), ("config key", key)):
        if not value:
            raise ValueError(f"{what} must not be empty")
    for what, value in (("measurement", measurement), ("config key", key)):
        if "::" in value:
            raise ValueError(f"{what} must not contain '::', got {value!r}")
    return f"{test_name}::{measurement}::{key}"


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
        return cls(
            fingerprint=fp,
            config=data["config"],
            rounds=rounds,
            report=data["report"],
            saved_at=data["saved_at"],
        )


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _record_order(record: BaselineRecord) -> str:
    return json.dumps(dict(record.fingerprint), sort_keys=True)


# --- files --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineFile:
    """The baselines of one test module; ``entries`` is empty when the file does not exist."""

    path: Path
    entries: Mapping[str, tuple[BaselineRecord, ...]] = field(default_factory=dict)

    def records(self, entry_key: str) -> tuple[BaselineRecord, ...]:
        return self.entries.get(entry_key, ())

    def to_json(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "entries": {key: [r.to_json() for r in records] for key, records in self.entries.items()},
        }

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
        doc = json.loads(text)
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
    return BaselineFile(path, entries)


def read_baseline(path: str | os.PathLike[str]) -> BaselineFile:
    """Load one baseline file; a missing file is an empty one, a malformed one a BaselineFileError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return BaselineFile(path)
    return parse_baseline(data, path)


def baseline_relpath(module_path: str) -> PurePosixPath:
    """The baseline file for a test module, relative to the baseline directory.

    ``tests/models/test_mlp.py`` -> ``tests/models/test_mlp.json``. Every
    component is reduced to ``[A-Za-z0-9._-]`` (other characters become
    ``_``), components made only of dots become underscores and empty ones are
    dropped, so no module path can name a file outside the directory. Distinct
    odd names may share a file; entries inside it stay distinct by test name.
    """
    parts = [p for p in re.split(r"[/\\]", module_path) if p not in ("", ".")]
    if not parts:
        raise ValueError(f"module path {module_path!r} names no file")
    last = parts[-1]
    if last.endswith(".py") and len(last) > len(".py"):
        last = last[: -len(".py")]
    names = [_safe_component(p) for p in parts[:-1]]
    names.append(_safe_component(last) + ".json")
    return PurePosixPath(*names)


def _safe_component(part: str) -> str:
    name = _UNSAFE_CHAR.sub("_", part)
    if not name.strip("."):
        name = "_" * len(name)
    if len(name) > _MAX_COMPONENT:
        digest = hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = f"{name[: _MAX_COMPONENT - 17]}-{digest}"
    return name


def _move_aside(path: Path) -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.rename(path, target)
    return target


def _merge(
    existing: Sequence[BaselineRecord],
    new: BaselineRecord,
    keys: Sequence[str],
    accumulate: bool,
    max_rounds: int,
) -> tuple[BaselineRecord, ...]:
    matching = [r for r in existing if not fingerprint_matches(r.fingerprint, new.fingerprint, keys)]
    others = [r for r in existing if fingerprint_matches(r.fingerprint, new.fingerprint, keys)]
    rounds = tuple(new.rounds)
    if accumulate and matching:
        newest = max(matching, key=lambda r: r.saved_at)
        rounds = (*newest.rounds, *rounds)
    merged = replace(new, rounds=rounds[-max_rounds:])
    return tuple(sorted([*others, merged], key=_record_order))


# --- the store ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """A stored environment that did not match, and the fields that differ."""

    fingerprint: Mapping[str, str]
    differing: tuple[str, ...]


@dataclass(frozen=True)
class Lookup:
    """The outcome of looking up one entry for one environment."""

    path: Path
    entry_key: str
    fingerprint: Mapping[str, str]
    record: BaselineRecord | None
    mismatches: tuple[Mismatch, ...] = ()

    @property
    def found(self) -> bool:
        return self.record is not None

    def explain(self) -> str:
        """One line for people: what was found, or why nothing matched."""
        if self.record is not None:
            return f"baseline saved {self.record.saved_at} in {self.path}"
        if not self.mismatches:
            return f"no baseline saved for {self.entry_key} in {self.path}"
        reasons = []
        for mismatch in self.mismatches:
            theirs = ", ".join(f"{k}={mismatch.fingerprint.get(k, '(none)')}" for k in mismatch.differing)
            if len(mismatch.differing) == 1:
                ours = self.fingerprint.get(mismatch.differing[0], "(none)")
            else:
                ours = ", ".join(f"{k}={self.fingerprint.get(k, '(none)')}" for k in mismatch.differing)
            reasons.append(f"baseline exists for {theirs}, not this machine's {ours}")
        return f"no baseline for this environment in {self.path}: {'; '.join(reasons)}"


@dataclass(frozen=True)
class SaveResult:
    """Where a save wrote, and where an unusable old file was moved, if it was."""

    path: Path
    moved_aside: Path | None = None


def lock_path(path: Path) -> Path:
    """The lock guarding one baseline file's read-merge-write.

    It lives in the temporary folder, keyed by the file's absolute path, so the
    committed baseline folder holds nothing but baselines; every saver on this
    machine computes the same name.
    """
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / "pytest-neuronperf-locks"
    folder.mkdir(exist_ok=True)
    return folder / f"{digest}.lock"


class BaselineStore:
    """Baseline files under ``root``, one per test module."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"BaselineStore({str(self.root)!r})"

    def path_for(self, module_path: str) -> Path:
        """The file for a test module's node-id path; always inside ``root`` (see baseline_relpath)."""
        path = self.root.joinpath(baseline_relpath(module_path))
        root = os.path.normpath(os.path.abspath(self.root))
        if os.path.commonpath([root, os.path.normpath(os.path.abspath(path))]) != root:
            raise ValueError(f"module path {module_path!r} maps outside {self.root}")
        return path

    def load(self, module_path: str) -> BaselineFile:
        return read_baseline(self.path_for(module_path))

    def lookup(
        self,
        module_path: str,
        entry_key: str,
        fingerprint: Mapping[str, str],
        keys: Sequence[str],
    ) -> Lookup:
        """The record of ``entry_key`` whose fingerprint matches on ``keys``.

        When several match (``keys`` being a subset of the recorded fields),
        the one agreeing on the most recorded fields wins, then the newest.
        """
        baseline = self.load(module_path)
        records = baseline.records(entry_key)
        matches = [r for r in records if not fingerprint_matches(r.fingerprint, fingerprint, keys)]
        if matches:
            every = sorted({*fingerprint, *(k for r in matches for k in r.fingerprint)})
            best = max(
                matches,
                key=lambda r: (-len(fingerprint_matches(r.fingerprint, fingerprint, every)), r.saved_at),
            )
            return Lookup(baseline.path, entry_key, dict(fingerprint), best)
        mismatches = tuple(
            Mismatch(r.fingerprint, tuple(fingerprint_matches(r.fingerprint, fingerprint, keys))) for r in records
        )
        return Lookup(baseline.path, entry_key, dict(fingerprint), None, mismatches)

    def save(
        self,
        module_path: str,
        updates: Mapping[str, BaselineRecord],
        keys: Sequence[str],
        accumulate_rounds: Mapping[str, bool] | None = None,
        max_rounds: int = DEFAULT_MAX_ROUNDS,
        overwrite_corrupt: bool = False,
    ) -> SaveResult:
        """Merge ``updates`` (entry key -> record) into the module's file, leaving other entries as they are.

        In each updated entry the record whose fingerprint matches on ``keys``
        is replaced; with ``accumulate_rounds[key]`` true its rounds are kept
        and the new ones appended, the newest ``max_rounds`` surviving. The
        file is re-read under the lock, so sessions saving at the same time
        all keep their entries. An unusable existing file raises
        BaselineFileError unless ``overwrite_corrupt``, which moves it aside.
        """
        if max_rounds < 1:
            raise ValueError(f"max_rounds must be at least 1, got {max_rounds}")
        accumulate = accumulate_rounds or {}
        for key, record in updates.items():
            if not isinstance(key, str) or not key:
                raise ValueError(f"entry keys must be non-empty strings, got {key!r}")
            record.to_json()  # fail on unstorable values before touching any file
        path = self.path_for(module_path)
        if not updates:
            return SaveResult(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        moved: Path | None = None
        with FileLock(lock_path(path), timeout=LOCK_TIMEOUT_S):
            try:
                current = read_baseline(path)
            except BaselineFileError:
                if not overwrite_corrupt:
                    raise
                moved = _move_aside(path)
                current = BaselineFile(path)
            entries = dict(current.entries)
            for key, record in updates.items():
                entries[key] = _merge(entries.get(key, ()), record, keys, accumulate.get(key, False), max_rounds)
            remove_stale_temp_files(path)
            write_atomic(path, BaselineFile(path, entries).dumps())
        return SaveResult(path, moved)


def iter_baselines(
    root: str | os.PathLike[str],
    on_error: Callable[[BaselineFileError], None] | None = None,
) -> Iterator[tuple[str, BaselineFile]]:
    """Every baseline file under ``root`` as (module path, contents), in path order.

    The module path is rebuilt from the file name (``x.json`` -> ``x.py``), so
    for names that were sanitised it is the sanitised form. Unusable files
    raise, or, with ``on_error``, are reported to it and skipped.
    """
    base = Path(root)
    if not base.is_dir():
        return
    for path in sorted(base.rglob("*.json")):
        if not path.is_file():
            continue
        try:
            baseline = read_baseline(path)
        except BaselineFileError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        yield path.relative_to(base).with_suffix(".py").as_posix(), baseline
