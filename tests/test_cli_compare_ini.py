"""``npf compare`` and ``npf show`` read the ini file pytest would read, and the summary table fits its width."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from pytest_neuronperf.cli import main
from pytest_neuronperf.config.ini_file import find_ini
from pytest_neuronperf.report.results_file import as_measurements
from pytest_neuronperf.report.summary import summary_lines
from tests.report.conftest import BASELINES, RESULTS


@pytest.mark.parametrize(("name", "text"), [
    ("pytest.ini", "[pytest]\nnpf_baseline_dir = perf/base\n"),
    ("pyproject.toml", "[tool.pytest.ini_options]\nnpf_baseline_dir = \"perf/base\"\n"),
    ("tox.ini", "[tox]\n[pytest]\nnpf_baseline_dir = perf/base\n"),
    ("setup.cfg", "[metadata]\nname = x\n[tool:pytest]\nnpf_baseline_dir = perf/base\n"),
])
def test_show_finds_the_baselines_of_the_ini_file_from_a_subfolder(
        name: str, text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    shutil.copytree(BASELINES, tmp_path / "perf" / "base")
    (tmp_path / "src" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "src" / "deep")
    assert find_ini().rootdir == tmp_path
    assert main(["show"]) == 0
    assert "test_mlp_throughput" in capsys.readouterr().out


def test_the_first_file_in_pytests_order_wins_and_a_file_without_pytest_settings_is_passed_over(
        tmp_path: Path) -> None:
    (tmp_path / "tox.ini").write_text("[tox]\nenvlist = py\n", encoding="utf-8")  # no [pytest]: not a config file
    (tmp_path / "setup.cfg").write_text("[tool:pytest]\nnpf_tolerance = 7%\n", encoding="utf-8")
    assert find_ini(tmp_path).values == {"tolerance": "7%"}
    (tmp_path / "pytest.ini").write_text("[pytest]\nnpf_strict = true\n", encoding="utf-8")
    found = find_ini(tmp_path)
    assert found.path == tmp_path / "pytest.ini" and found.values == {"strict": "true"}


def test_compare_takes_the_tolerance_from_the_ini_and_its_own_option_over_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(BASELINES, tmp_path / ".neuronperf" / "baselines")
    shutil.copy(RESULTS, tmp_path / "results.json")
    monkeypatch.chdir(tmp_path)
    # The hand-made results hold one regression of -25% throughput and +50% p99.
    assert main(["compare", "results.json"]) == 1
    (tmp_path / "pytest.ini").write_text("[pytest]\nnpf_tolerance = 60%\n", encoding="utf-8")
    assert main(["compare", "results.json"]) == 0
    assert main(["compare", "results.json", "--tolerance", "5%"]) == 1
    (tmp_path / "pytest.ini").write_text("[pytest]\nnpf_tolerance = lots\n", encoding="utf-8")
    assert main(["compare", "results.json"]) == 2
    assert "npf_tolerance (ini)" in capsys.readouterr().err


def test_compare_without_files_says_what_to_give(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare"]) == 2
    assert "give the results file written by pytest --npf-json" in capsys.readouterr().err


def _cells(lines: list[str]) -> list[dict[str, str]]:
    header = next(line for line in lines if "throughput" in line).split()
    key = re.compile(r"b\d+-n\d+-w\d+-p\d+")
    rows = [line.split() for line in lines if not line.startswith("note:")]
    return [dict(zip(header, row, strict=False)) for row in rows if any(key.fullmatch(t) for t in row[:2])]


@pytest.mark.parametrize("width", [60, 80, 100, 140])
def test_the_summary_fits_the_width_and_keeps_its_figures(width: int) -> None:
    measurements = as_measurements(json.loads(RESULTS.read_text(encoding="utf-8")))
    wide = summary_lines(measurements, verbose=False)
    narrow = summary_lines(measurements, verbose=False, width=width)
    rows = [line for line in narrow if line.startswith("  ")]
    if width >= 80:
        assert all(len(line) <= width for line in rows), narrow
    # Whatever is left out, every figure shown is the wide table's.
    for full, fitted in zip(_cells(wide), _cells(narrow), strict=True):
        assert all(full[k] == v for k, v in fitted.items() if k in full), (full, fitted)
        assert {"throughput", "baseline", "change", "p99_change"} <= set(fitted)
