"""What the plugin loads into every pytest run: only its hooks and option table until an option is
given or a benchmark runs (benchmarks/startup.py measures what that costs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

RECORD_MODULES = """
import json, sys

def pytest_unconfigure(config):
    loaded = sorted(m for m in sys.modules
                    if m.split(".")[0] in ("pytest_neuronperf", "torch", "numpy", "matplotlib"))
    name = getattr(config, "workerinput", {}).get("workerid", "main")
    with open(f"modules-{name}.json", "w") as f:
        json.dump(loaded, f)
"""

PLAIN_TEST = "def test_plain():\n    assert 1 + 1 == 2\n"
LIGHT = sorted([
    "pytest_neuronperf", "pytest_neuronperf.config", "pytest_neuronperf.config.options", "pytest_neuronperf.plugin",
    "pytest_neuronperf.spec", "pytest_neuronperf.spec.fields",
])


def _loaded(pytester: pytest.Pytester, *args: str, process: str = "main") -> list[str]:
    pytester.makeconftest(RECORD_MODULES)
    pytester.makepyfile(test_plain=PLAIN_TEST)
    # Autoloaded from its entry point, as in a user's environment.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    result.assert_outcomes(passed=1)
    loaded: list[str] = json.loads((Path(pytester.path) / f"modules-{process}.json").read_text())
    return loaded


def test_a_run_without_benchmarks_loads_only_the_hooks_and_option_table(pytester: pytest.Pytester) -> None:
    assert _loaded(pytester) == LIGHT


def test_under_xdist_only_the_controller_adds_the_progress_view(pytester: pytest.Pytester) -> None:
    # The controller tells each worker where to write its progress; a worker loads what a plain run does.
    controller = sorted([*LIGHT, "pytest_neuronperf.session", "pytest_neuronperf.session.progress_view"])
    assert _loaded(pytester, "-n", "1") == controller
    assert json.loads((Path(pytester.path) / "modules-gw0.json").read_text()) == LIGHT


def test_an_option_is_checked_at_start_up_without_loading_the_runner(pytester: pytest.Pytester) -> None:
    loaded = _loaded(pytester, "--npf-duration=2s", "--npf-tolerance=10%")
    assert "pytest_neuronperf.config.settings" in loaded
    assert not [m for m in loaded if m.split(".")[0] in ("torch", "numpy", "matplotlib")]
    assert not [m for m in loaded if m.startswith(("pytest_neuronperf.runner", "pytest_neuronperf.session.session"))]


def test_a_result_file_is_written_even_when_no_benchmark_ran(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain=PLAIN_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--npf-json=out/r.json")
    result.assert_outcomes(passed=1)
    doc = json.loads((Path(pytester.path) / "out" / "r.json").read_text())
    assert doc["measurements"] == []
    result.stdout.fnmatch_lines(["*results written: out/r.json*"])
