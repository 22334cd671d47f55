"""A malformed baseline file is reported, never silently replaced, and replaced only on request (kept aside)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_neuronperf.baselines.schema import parse_baseline
from tests.reliability import harness

BAD_FILES: dict[str, tuple[bytes, str]] = {
    "truncated": (b'{\n  "entries": {\n    "test_x::default::b1-n1-w1-p1": [\n      {"fing',
                  "it is not valid JSON ("),
    "not_json": (b"<<<<<<< HEAD\n{}\n=======\n[]\n>>>>>>> branch\n", "it is not valid JSON ("),
    "wrong_types": (b'{"schema_version": 1, "entries": ["a", "list"]}\n', "'entries' must be an object, got a list"),
    "newer_schema": (b'{"schema_version": 99, "entries": {}}\n',
                     "it has schema_version 99, written by a newer pytest-neuronperf (this one reads up to 2)"),
}


def _setup(pytester: pytest.Pytester) -> dict[str, Path]:
    """One test module per kind of damage, each with its damaged baseline file; returns the files."""
    folder = pytester.path / ".neuronperf" / "baselines"
    folder.mkdir(parents=True)
    files = {}
    for kind, (data, _) in BAD_FILES.items():
        pytester.makepyfile(**{f"test_{kind}": harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_it():
    pass
"""})
        files[kind] = folder / f"test_{kind}.json"
        files[kind].write_bytes(data)
    return files


def _unchanged(files: dict[str, Path]) -> None:
    for kind, path in files.items():
        assert path.read_bytes() == BAD_FILES[kind][0], f"{path.name} was modified"
        assert not list(path.parent.glob(f"{path.name}.corrupt-*")), f"{path.name} was moved"


def test_a_malformed_baseline_fails_the_test_naming_the_file_and_is_kept(pytester: pytest.Pytester) -> None:
    files = _setup(pytester)
    # Asking to save is not enough to replace a file that cannot be read.
    done = harness.run(pytester, "--npf-save-baseline")
    done.result.assert_outcomes(failed=len(files))
    for kind, path in files.items():
        assert f"baseline file {path} is unusable: {BAD_FILES[kind][1]}" in done.output
    assert "pass --npf-overwrite-corrupt to replace it" in done.output
    _unchanged(files)
    assert not done.leftovers, done.describe_leftovers()


def test_saving_over_a_malformed_baseline_is_refused(pytester: pytest.Pytester) -> None:
    files = _setup(pytester)
    done = harness.run(pytester, "--npf-save-baseline", "--npf-no-compare")
    # The tests themselves passed; the session fails because their baselines could not be saved.
    done.result.assert_outcomes(passed=len(files))
    assert done.result.ret == pytest.ExitCode.TESTS_FAILED
    for kind, path in files.items():
        assert (f"ERROR: baseline not saved for test_{kind}.py: baseline file {path} is unusable: "
                f"{BAD_FILES[kind][1]}") in done.output
    _unchanged(files)


def _replaced_and_kept_aside(files: dict[str, Path], output: str) -> None:
    for kind, path in files.items():
        (aside,) = path.parent.glob(f"{path.name}.corrupt-*")
        assert aside.read_bytes() == BAD_FILES[kind][0]
        assert f"(unreadable old file kept as .neuronperf/baselines/{aside.name})" in output
        baseline = parse_baseline(path.read_bytes(), path)
        assert list(baseline.entries) == ["test_it::default::b1-n1-w1-p1"]
        json.loads(path.read_text())


def test_overwrite_corrupt_replaces_the_file_and_keeps_the_old_one_aside(pytester: pytest.Pytester) -> None:
    files = _setup(pytester)
    done = harness.run(pytester, "--npf-save-baseline", "--npf-no-compare", "--npf-overwrite-corrupt")
    assert done.result.ret == pytest.ExitCode.OK, done.output
    _replaced_and_kept_aside(files, done.output)


def test_overwrite_corrupt_works_with_comparison_on(pytester: pytest.Pytester) -> None:
    files = _setup(pytester)
    done = harness.run(pytester, "--npf-save-baseline", "--npf-overwrite-corrupt")
    assert done.result.ret == pytest.ExitCode.OK, done.output
    _replaced_and_kept_aside(files, done.output)
