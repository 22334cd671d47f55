"""Baselines the gate cannot use are reported by file and problem, never judged by (issue 12, items 7-9).

An entry with no rounds passed every test "measured", even under --npf-require-baseline
--npf-strict; NaN, Infinity and missing round fields gave bare ValueErrors without the file or
the --npf-overwrite-corrupt hint; a baseline path that is a directory gave a raw
IsADirectoryError; a key given twice was silently last-wins; a baseline saved from rounds that
timed nothing (p50 null, throughput 0) broke every later run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.baselines.schema import ENTRY_FIX_HINT, FIX_HINT, parse_baseline, round_problem
from tests.reliability import harness

ENTRY = "test_it::default::b1-n1-w1-p1"
ONE_TEST = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_it():
    pass
"""


def _rounds(doc: dict[str, Any]) -> list[dict[str, Any]]:
    rounds: list[dict[str, Any]] = doc["entries"][ENTRY][0]["rounds"]
    return rounds


def _empty_rounds(doc: dict[str, Any]) -> str:
    doc["entries"][ENTRY][0]["rounds"] = []
    return json.dumps(doc, indent=2)


def _nan(doc: dict[str, Any]) -> str:
    _rounds(doc)[0]["throughput"] = float("nan")
    return json.dumps(doc, indent=2)


def _infinity(doc: dict[str, Any]) -> str:
    _rounds(doc)[0]["p99_ms"] = float("inf")
    return json.dumps(doc, indent=2)


def _missing_field(doc: dict[str, Any]) -> str:
    del _rounds(doc)[0]["p99_ms"]
    return json.dumps(doc, indent=2)


def _zero_samples(doc: dict[str, Any]) -> str:
    # What a window with no completed inference used to save.
    _rounds(doc)[0].update(p50_ms=None, p99_ms=None, throughput=0.0, n=0)
    return json.dumps(doc, indent=2)


def _duplicate_key(doc: dict[str, Any]) -> str:
    # A merge conflict resolved by keeping both sides.
    record = json.dumps(doc["entries"][ENTRY])
    rest = {k: v for k, v in doc.items() if k != "entries"}
    return json.dumps(rest)[:-1] + f', "entries": {{{json.dumps(ENTRY)}: {record}, {json.dumps(ENTRY)}: {record}}}}}'


CASES: dict[str, tuple[Callable[[dict[str, Any]], str], str, str]] = {
    "empty_rounds": (_empty_rounds, f"entries[{ENTRY!r}][0].rounds is empty: a baseline without rounds cannot "
                                    "judge anything", FIX_HINT),
    "nan": (_nan, "it holds NaN, which is not a JSON number", FIX_HINT),
    "infinity": (_infinity, "it holds Infinity, which is not a JSON number", FIX_HINT),
    "missing_field": (_missing_field, f"entries[{ENTRY!r}][0].rounds[0]: round summary is missing 'p99_ms'",
                      ENTRY_FIX_HINT),
    "zero_samples": (_zero_samples, f"entries[{ENTRY!r}][0].rounds[0]: round summary field 'p50_ms' must be a "
                                    "number, got None", ENTRY_FIX_HINT),
    "duplicate_key": (_duplicate_key, f"the key {ENTRY!r} appears twice in one object", FIX_HINT),
}


def _setup(pytester: pytest.Pytester) -> tuple[dict[str, Path], Path]:
    """Save a real baseline for one module per case, then damage each; the last module's path becomes a folder."""
    for kind in [*CASES, "directory"]:
        pytester.makepyfile(**{f"test_{kind}": ONE_TEST})
    saved = harness.run(pytester, "--npf-save-baseline", "--npf-no-compare")
    assert saved.result.ret == 0, saved.output
    folder = pytester.path / ".neuronperf" / "baselines"
    files = {}
    for kind, (damage, _, _) in CASES.items():
        path = folder / f"test_{kind}.json"
        path.write_text(damage(json.loads(path.read_text())), encoding="utf-8")
        files[kind] = path
    directory = folder / "test_directory.json"
    directory.unlink()
    (directory / "notes").mkdir(parents=True)
    return files, directory


@pytest.mark.slow
def test_unusable_baselines_fail_their_tests_by_file_and_problem_and_are_kept(pytester: pytest.Pytester) -> None:
    files, directory = _setup(pytester)
    before = {kind: path.read_bytes() for kind, path in files.items()}
    done = harness.run(pytester, "--npf-require-baseline", "--npf-strict")
    done.result.assert_outcomes(failed=len(files) + 1)
    for kind, path in files.items():
        _, problem, hint = CASES[kind]
        assert f"baseline file {path} is unusable: {problem}" in done.output, kind
        assert hint in done.output, kind
    assert f"baseline file {directory} is unusable: it is a directory, not a file" in done.output
    assert "--npf-overwrite-corrupt" in done.output
    assert "Traceback" not in done.output and "INTERNALERROR" not in done.output
    assert {kind: path.read_bytes() for kind, path in files.items()} == before
    assert (directory / "notes").is_dir()
    assert not done.leftovers, done.describe_leftovers()

    # The fix the messages name works, for a damaged file and for a damaged entry alike.
    repaired = harness.run(pytester, "--npf-save-baseline", "--npf-overwrite-corrupt")
    assert repaired.result.ret == 0, repaired.output
    for path in [*files.values(), directory]:
        (record,) = parse_baseline(path.read_bytes(), path).records(ENTRY)
        assert all(round_problem(r) is None for r in record.rounds), path
