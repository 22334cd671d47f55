"""Test modules whose names sanitise alike keep baselines of their own (issue 12, item 3).

``test_é.py`` and ``test__.py`` both saved to ``test__.json``, and a test of one was then judged
by the other's entry. File names now carry a hash of the original name when sanitising changed
it, and each file records the module it belongs to; a file of another module is never used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_neuronperf.baselines.schema import parse_baseline
from tests.reliability import harness

# Distinct modules whose names sanitise to the same string, with models of very different speed,
# so that judging one by the other's entry could not pass unnoticed.
FAST = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_it():
    pass
"""
SLOW = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Slow, {harness.QUICK})
def test_it():
    pass
"""
PAIRS = [("test_é", "test__"), ("test_a b", "test_a+b")]
ENTRY = "test_it::default::b1-n1-w1-p1"


def _baseline_files(root: Path) -> dict[str, Path]:
    """Every baseline file under ``root`` by the module it records."""
    found = {}
    for path in sorted(root.rglob("*.json")):
        module = json.loads(path.read_text(encoding="utf-8")).get("module")
        assert module not in found, f"{path} and {found.get(module)} both claim {module}"
        found[module] = path
    return found


@pytest.mark.slow
@pytest.mark.parametrize(("first", "second"), PAIRS, ids=["accent-vs-underscore", "space-vs-plus"])
def test_modules_that_sanitise_alike_get_files_of_their_own(pytester: pytest.Pytester, first: str,
                                                            second: str) -> None:
    for name, source in ((first, FAST), (second, SLOW)):
        (pytester.path / f"{name}.py").write_text(source, encoding="utf-8")
    done = harness.run(pytester, "--npf-save-baseline")
    assert done.result.ret == 0, done.output
    files = _baseline_files(pytester.path / ".neuronperf" / "baselines")
    assert set(files) == {f"{first}.py", f"{second}.py"}, files
    for module, path in files.items():
        entries = parse_baseline(path.read_bytes(), path).entries
        assert list(entries) == [ENTRY], f"{path} ({module}) holds {sorted(entries)}"
    # Each module's test is judged by its own entry (the verdicts themselves are the gate's business).
    again = harness.run(pytester, "--npf-require-baseline", "--npf-json=out.json")
    assert "no baseline" not in again.output, again.output
    measurements = json.loads((pytester.path / "out.json").read_text())["measurements"]
    assert sorted(m["test"] for m in measurements) == sorted(f"{n}.py::test_it" for n in (first, second))
    for m in measurements:
        (outcome,) = m["outcomes"]
        assert outcome["baseline"] is not None, m["test"]
        ours = files[m["module"]]
        (record,) = parse_baseline(ours.read_bytes(), ours).records(ENTRY)
        assert outcome["baseline_saved_at"] == record.saved_at
        assert outcome["baseline"] == dict(record.report), f"{m['test']} was judged by another module's entry"


@pytest.mark.slow
def test_a_file_of_another_module_is_never_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine=FAST)
    first = harness.run(pytester, "--npf-save-baseline")
    assert first.result.ret == 0, first.output
    path = pytester.path / ".neuronperf" / "baselines" / "test_mine.json"
    doc = json.loads(path.read_text())
    assert doc["module"] == "test_mine.py"
    # As a file copied from (or colliding with) another module's would be.
    doc["module"] = "elsewhere/test_mine.py"
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    done = harness.run(pytester, "--npf-require-baseline")
    done.result.assert_outcomes(failed=1)
    assert (f"no baseline for test_mine.py in {path}: that file holds the baselines of "
            "elsewhere/test_mine.py") in done.output
    # Nor is it merged into.
    saved = harness.run(pytester, "--npf-save-baseline", "--npf-no-compare")
    assert saved.result.ret != 0
    assert "it holds the baselines of elsewhere/test_mine.py, not of test_mine.py" in saved.output
    assert json.loads(path.read_text()) == doc


@pytest.mark.slow
def test_a_file_written_before_modules_were_recorded_is_still_used(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_old=FAST)
    first = harness.run(pytester, "--npf-save-baseline")
    assert first.result.ret == 0, first.output
    path = pytester.path / ".neuronperf" / "baselines" / "test_old.json"
    doc = json.loads(path.read_text())
    del doc["module"]
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    done = harness.run(pytester, "--npf-require-baseline", "--npf-json=out.json")
    assert "no baseline" not in done.output, done.output
    (m,) = json.loads((pytester.path / "out.json").read_text())["measurements"]
    assert m["outcomes"][0]["baseline"] is not None
