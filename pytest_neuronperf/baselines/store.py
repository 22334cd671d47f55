"""The baseline store: one file per test module under a folder, looked up and merged safely.

Files are only ever replaced whole (temp file, fsync, ``os.replace``) and only
under an exclusive lock, so concurrent test sessions merge their entries
instead of overwriting each other, and an interrupted write leaves the old
file as it was. The lock is the folder the file lives in (see :func:`lock_path`).
The format is :mod:`pytest_neuronperf.baselines.schema`'s.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Final

from pytest_neuronperf._util.atomic_write import remove_stale_temp_files, write_atomic
from pytest_neuronperf._util.filelock import FileLock
from pytest_neuronperf.baselines.environment import NOT_RECORDED, fingerprint_differences, version_changes
from pytest_neuronperf.baselines.keys import config_key, entry_key
from pytest_neuronperf.baselines.schema import (
    BaselineFile,
    BaselineFileError,
    BaselineRecord,
    check_record,
    read_baseline,
    record_order,
)
from pytest_neuronperf.spec.fields import DEVICE_FINGERPRINT_FIELDS, LOAD_KEYS, STATUS_OK

DEFAULT_MAX_ROUNDS: Final = 30
# Long enough for any sane save by another session, short enough that a
# stuck process shows up as an error rather than a silent hang.
LOCK_TIMEOUT_S: Final = 120.0

_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._-]")
# Well under the 255-byte file-name limit, leaving room for ".json" and
# the ".corrupt-<time>" suffix.
_MAX_COMPONENT = 150
_HASH_LEN = 12
# The names this module gives to components it had to change: the readable part, "--" and a hash
# of the original. A real name of that shape is given a hash too, so that none can stand for another.
_HASHED = re.compile(rf".*--[0-9a-f]{{{_HASH_LEN}}}")
# How over-long names were shortened before hashes were added (kept, so that their files still load).
_LONG = re.compile(rf".{{{_MAX_COMPONENT - 17}}}-[0-9a-f]{{16}}")


def module_parts(module_path: str) -> list[str]:
    """The components of a module path: ``/`` and ``\\`` separate them, empty and ``.`` ones are dropped."""
    parts = [p for p in re.split(r"[/\\]", module_path) if p not in ("", ".")]
    if not parts:
        raise ValueError(f"module path {module_path!r} names no file")
    return parts


def canonical_module(module_path: str) -> str:
    """The form of a module path that a baseline file records: ``./tests//x.py`` -> ``tests/x.py``."""
    return "/".join(module_parts(module_path))


def baseline_relpath(module_path: str) -> PurePosixPath:
    """The baseline file for a test module, relative to the baseline directory.

    ``tests/models/test_mlp.py`` -> ``tests/models/test_mlp.json``. Every
    component is reduced to ``[A-Za-z0-9._-]`` (other characters become
    ``_``), components made only of dots become underscores and empty ones are
    dropped, so no module path can name a file outside the directory. A
    component that this changed (or that is too long) also gets ``--`` and a
    hash of the original (``test_é.py`` -> ``test__--<hash>.json``), so distinct
    module paths never share a file, while a path that needed no change keeps
    its plain name. A last component that is not ``*.py`` is always hashed, as
    its plain name is a ``.py`` module's.
    """
    parts = module_parts(module_path)
    last = parts[-1]
    names = [_safe_component(p, p) for p in parts[:-1]]
    if last.endswith(".py") and len(last) > len(".py"):
        names.append(_safe_component(last[: -len(".py")], last) + ".json")
    else:
        names.append(_hashed(_sanitised(last), last) + ".json")
    return PurePosixPath(*names)


def _sanitised(part: str) -> str:
    name = _UNSAFE_CHAR.sub("_", part)
    return "_" * len(name) if not name.strip(".") else name


def _safe_component(part: str, original: str) -> str:
    """``part`` made safe; ``original`` is what the hash, when one is needed, is taken of."""
    name = _sanitised(part)
    if name == part and not _HASHED.fullmatch(name):
        if len(name) <= _MAX_COMPONENT and not _LONG.fullmatch(name):
            return name
        if len(name) > _MAX_COMPONENT:
            digest = hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()[:16]
            return f"{name[: _MAX_COMPONENT - 17]}-{digest}"
    return _hashed(name, original)


def _hashed(name: str, original: str) -> str:
    digest = hashlib.sha256(original.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]
    return f"{name[: _MAX_COMPONENT - _HASH_LEN - 2]}--{digest}"


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
    matching = [r for r in existing if not fingerprint_differences(r.fingerprint, new.fingerprint, keys)]
    others = [r for r in existing if fingerprint_differences(r.fingerprint, new.fingerprint, keys)]
    rounds = tuple(new.rounds)
    if accumulate and matching:
        newest = max(matching, key=lambda r: r.saved_at)
        rounds = (*newest.rounds, *rounds)
    merged = replace(new, rounds=rounds[-max_rounds:])
    return tuple(sorted([*others, merged], key=record_order))


# --- the store ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mismatch:
    """A stored environment that did not match, and the fields that differ."""

    fingerprint: Mapping[str, str]
    differing: tuple[str, ...]


@dataclass(frozen=True)
class Lookup:
    """The outcome of looking up one entry for one environment.

    ``other_module`` is set when the file belongs to another test module than the one looked
    up; nothing in it is then used.
    """

    path: Path
    entry_key: str
    fingerprint: Mapping[str, str]
    record: BaselineRecord | None
    mismatches: tuple[Mismatch, ...] = ()
    module: str | None = None
    other_module: str | None = None
    # A record of this environment measured under another load than this run's: why it is not compared.
    other_load: str = ""

    @property
    def found(self) -> bool:
        return self.record is not None

    def explain(self) -> str:
        """One line for people: what was found, or why nothing matched."""
        if self.record is not None:
            return f"baseline saved {self.record.saved_at} in {self.path}"
        if self.other_module is not None:
            return (f"no baseline for {self.module} in {self.path}: that file holds the baselines of "
                    f"{self.other_module}, which are not compared with another module's tests")
        if self.other_load:
            return (f"the baseline in {self.path} was measured under other load ({self.other_load}), so it is not "
                    "compared; record this load's with --npf-save-baseline")
        if not self.mismatches:
            return f"no baseline saved for {self.entry_key} in {self.path}"
        reasons = [_mismatch_reason(mismatch, self.fingerprint) for mismatch in self.mismatches]
        return f"no baseline for this environment in {self.path}: {'; '.join(reasons)}"


def _mismatch_reason(mismatch: Mismatch, ours: Mapping[str, str]) -> str:
    """Why one stored environment does not apply here; SDK, driver and GPU fields say what changed."""
    versions = [k for k in mismatch.differing if k in DEVICE_FINGERPRINT_FIELDS]
    others = [k for k in mismatch.differing if k not in DEVICE_FINGERPRINT_FIELDS]
    parts = []
    if others:
        theirs = ", ".join(f"{k}={mismatch.fingerprint.get(k, '(none)')}" for k in others)
        if len(others) == 1:
            mine = ours.get(others[0], "(none)")
        else:
            mine = ", ".join(f"{k}={ours.get(k, '(none)')}" for k in others)
        parts.append(f"baseline exists for {theirs}, not this machine's {mine}")
    if versions:
        kinds = sorted({DEVICE_FINGERPRINT_FIELDS[k] for k in versions})
        what = " and ".join("Neuron SDK" if kind == "neuron" else "GPU or CUDA software" for kind in kinds)
        changes = ", ".join(version_changes(mismatch.fingerprint, ours, versions))
        lead = "recorded" if others else "baseline recorded"
        text = f"{lead} under another {what}: {changes} (baseline -> this machine)"
        if any(k not in mismatch.fingerprint for k in versions):
            text += (f"; {NOT_RECORDED}: saved before these versions were recorded, so not known to be this "
                     "SDK's; save it again here (--npf-save-baseline) to compare against it")
        parts.append(text)
    return ", and ".join(parts)


@dataclass(frozen=True)
class SaveResult:
    """Where a save wrote, and where an unusable old file was moved, if it was."""

    path: Path
    moved_aside: Path | None = None


def _find(
    baseline: BaselineFile,
    key: str,
    fingerprint: Mapping[str, str],
    keys: Sequence[str],
    module_path: str | None = None,
    check_rounds: bool = False,
    report: Mapping[str, object] | None = None,
) -> Lookup:
    """The record of ``key`` for this environment.

    With ``check_rounds``, a record the gate cannot use (see :func:`schema.round_problem`) raises
    BaselineFileError naming the file, the entry and the round.
    """
    module = None if module_path is None else canonical_module(module_path)
    if module is not None and baseline.module is not None and baseline.module != module:
        return Lookup(baseline.path, key, dict(fingerprint), None, module=module, other_module=baseline.module)
    records = baseline.records(key)
    matches = [r for r in records if not fingerprint_differences(r.fingerprint, fingerprint, keys)]
    if matches:
        every = sorted({*fingerprint, *(k for r in matches for k in r.fingerprint)})
        best = max(
            matches,
            key=lambda r: (-len(fingerprint_differences(r.fingerprint, fingerprint, every)), r.saved_at),
        )
        if check_rounds:
            check_record(best, baseline.path, f"entries[{key!r}][{records.index(best)}]")
        other = load_difference(best.report, report) if report is not None else ""
        if other:
            return Lookup(baseline.path, key, dict(fingerprint), None, module=module, other_load=other)
        return Lookup(baseline.path, key, dict(fingerprint), best, module=module)
    mismatches = tuple(
        Mismatch(r.fingerprint, tuple(fingerprint_differences(r.fingerprint, fingerprint, keys))) for r in records
    )
    return Lookup(baseline.path, key, dict(fingerprint), None, mismatches, module=module)


def load_difference(stored: Mapping[str, object], current: Mapping[str, object]) -> str:
    """How the load a baseline was measured under differs from this run's ('' when it is the same).

    Open-loop latency counts queueing and closed-loop latency does not, and a capacity exists only
    for its SLO: figures measured under another request rate, arrival process or SLO are not comparable.
    """
    differing = [k for k in LOAD_KEYS if stored.get(k) != current.get(k)]
    if not differing:
        return ""

    def described(report: Mapping[str, object]) -> str:
        parts = [f"{k}={report.get(k)}" for k in differing if report.get(k) is not None]
        return ", ".join(parts) or "closed loop, no slo"

    return f"{described(stored)}, not this run's {described(current)}"


def lock_path(path: Path) -> Path:
    """The lock guarding one baseline file's read-merge-write: the folder the file (a link's target) lives in.

    Every writer of the file meets there, whatever its temporary folder, user or
    container (the lock of a folder is the kernel's, on the folder's inode, which
    replacing files inside it does not change), and the committed baseline folder
    gets no lock files. Files of one folder are saved one at a time, which costs
    nothing: a save takes milliseconds.
    """
    return Path(os.path.realpath(path)).parent


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

    def _writable_path(self, module_path: str) -> tuple[Path, Path]:
        """(the module's file, the file a write lands in); a link leading out of ``root`` is refused.

        A link inside the folder is written through (the link stays); one that leads
        elsewhere would let a committed baseline folder overwrite any file its user can.
        """
        path = self.path_for(module_path)
        real = Path(os.path.realpath(path))
        root = os.path.realpath(self.root)
        if os.path.commonpath([root, str(real)]) != root:
            raise BaselineFileError(
                path, f"it leads (through a symbolic link) to {real}, outside the baseline folder {root}",
                "replace the link by the file itself, or point --npf-baseline-dir at the folder the file is in",
            )
        return path, real

    def lookup(
        self,
        module_path: str,
        key: str,
        fingerprint: Mapping[str, str],
        keys: Sequence[str],
    ) -> Lookup:
        """The record of entry ``key`` whose fingerprint matches on ``keys``.

        When several match (``keys`` being a subset of the recorded fields),
        the one agreeing on the most recorded fields wins, then the newest. A
        file that belongs to another module finds nothing. The record's rounds
        are returned as stored; :meth:`lookup_reports` checks them.
        """
        return _find(self.load(module_path), key, fingerprint, keys, module_path)

    def lookup_reports(
        self,
        module_path: str,
        test_name: str,
        measurement: str,
        reports: Sequence[Mapping[str, object]],
        fingerprint: Mapping[str, str],
        keys: Sequence[str],
    ) -> dict[str, Lookup]:
        """The lookup of every finished report of one measurement, by config key (the file read once).

        This is the lookup the gate judges by, so a found record whose rounds the gate cannot
        use raises BaselineFileError, naming the file, the entry, the round and the problem.
        """
        baseline = self.load(module_path)
        return {
            config_key(r): _find(baseline, entry_key(test_name, measurement, r), fingerprint, keys, module_path,
                                 check_rounds=True, report=r)
            for r in reports if r.get("status") == STATUS_OK
        }

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
        and the new ones appended, the newest ``max_rounds`` surviving, each
        with the session tags it was saved with (:meth:`BaselineRecord.tagged`). The
        file is re-read under the lock, so sessions saving at the same time
        all keep their entries. An unusable existing file raises
        BaselineFileError unless ``overwrite_corrupt``, which moves it aside;
        so does a file of another module, or a link that leads out of ``root``.
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
        module = canonical_module(module_path)
        # Checked before any folder is made: a linked folder must not get new folders outside ``root`` either.
        path, real = self._writable_path(module_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        moved: Path | None = None
        with FileLock(lock_path(path), timeout=LOCK_TIMEOUT_S):
            try:
                current = read_baseline(path)
            except BaselineFileError:
                if not overwrite_corrupt:
                    raise
                moved = _move_aside(real)  # the file itself: a link to it stays and is written through
                current = BaselineFile(path)
            if current.module is not None and current.module != module:
                raise BaselineFileError(path, f"it holds the baselines of {current.module}, not of {module}",
                                        f"move it to {current.module}'s baseline file, or delete it")
            entries = dict(current.entries)
            for key, record in updates.items():
                entries[key] = _merge(entries.get(key, ()), record, keys, accumulate.get(key, False), max_rounds)
            remove_stale_temp_files(real)
            write_atomic(path, BaselineFile(path, entries, module).dumps())
        return SaveResult(path, moved)


def iter_baselines(
    root: str | os.PathLike[str],
    on_error: Callable[[BaselineFileError], None] | None = None,
) -> Iterator[tuple[str, BaselineFile]]:
    """Every baseline file under ``root`` as (module path, contents), in path order.

    The module path is the one the file records; for files written before it
    was recorded it is rebuilt from the file name (``x.json`` -> ``x.py``), so
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
        yield baseline.module or path.relative_to(base).with_suffix(".py").as_posix(), baseline
