"""The ``npf`` command: every subcommand and its exit status (0 fine, 1 regression, 2 bad input)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.cli import main, parse_inputs
from tests.report.conftest import RESULTS
from tests.report.reports import report_of

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _without_regression(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc["measurements"] = [m for m in doc["measurements"] if m["verdict"] != "fail"]
    return doc


# --- compare ----------------------------------------------------------------------------------------------


def test_compare_finds_the_regression(baseline_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(baseline_dir), str(RESULTS)]) == 1
    out = capsys.readouterr().out
    assert "neuronperf: 4 measurement(s), configurations: 1 fail, 1 inconclusive, 1 no baseline, 4 pass, " \
           "1 skipped" in out
    assert "FAILED tests/perf/test_mlp.py::test_mlp_throughput: performance regression in measurement 'default'" in out
    assert "throughput 5405/s vs baseline 7207/s (-25.0%" in out
    assert "inconclusive: tests/perf/test_conv.py::test_conv[<fp16>|fast]" in out


def test_compare_passes_without_regression(tmp_path: Path, baseline_dir: Path, results_doc: dict[str, Any],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    new = _write(tmp_path / "new.json", _without_regression(results_doc))
    assert main(["compare", str(baseline_dir), str(new)]) == 0
    assert "FAILED" not in capsys.readouterr().out
    # --strict fails the inconclusive comparison too, with the plugin's message.
    assert main(["compare", "--strict", str(baseline_dir), str(new)]) == 1
    assert "FAILED tests/perf/test_conv.py::test_conv[<fp16>|fast]" in capsys.readouterr().out


def test_compare_tolerance(baseline_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A 25% throughput drop and +50% p99 are within 60%; the inconclusive one stays inconclusive.
    assert main(["compare", "--tolerance", "60%", str(baseline_dir), str(RESULTS)]) == 0
    assert "1 fail" not in capsys.readouterr().out
    assert main(["compare", "--tolerance", "throughput=60%,p50=60%", str(baseline_dir), str(RESULTS)]) == 1
    assert "p99 2.10 ms vs baseline 1.40 ms" in capsys.readouterr().out


def test_compare_fingerprint_keys(tmp_path: Path, baseline_dir: Path, results_doc: dict[str, Any],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    for m in results_doc["measurements"]:
        m["fingerprint"]["instance_type"] = "other-box"
    new = _write(tmp_path / "new.json", results_doc)
    # Measured elsewhere: no baseline applies, so nothing can regress (and nothing was compared, which
    # --allow-missing accepts; test_results_cli.py checks the exit status without it).
    assert main(["compare", "--allow-missing", str(baseline_dir), str(new)]) == 0
    out = capsys.readouterr().out
    assert "baseline exists for instance_type=test-box, not this machine's other-box" in out
    assert main(["compare", "--fingerprint-keys", "device_type,cpu_model", str(baseline_dir), str(new)]) == 1
    assert main(["compare", "--fingerprint-keys", "none", str(baseline_dir), str(new)]) == 1


def test_compare_against_one_baseline_file(baseline_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(baseline_dir / "tests" / "perf" / "test_conv.json"), str(RESULTS)]) == 0
    out = capsys.readouterr().out
    # Only the tests of that module are compared.
    assert "test_conv[<fp16>|fast]" in out and "test_mlp_throughput" not in out
    assert main(["compare", str(baseline_dir / "tests" / "perf" / "test_mlp.json"), str(RESULTS)]) == 1


@pytest.mark.parametrize("problem", ["missing baseline", "missing results", "corrupt results", "corrupt baseline",
                                     "not results"])
def test_compare_bad_files_exit_2(problem: str, tmp_path: Path, baseline_dir: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    base, new = str(baseline_dir), str(RESULTS)
    if problem == "missing baseline":
        base, expected = str(tmp_path / "nowhere"), "does not exist"
    elif problem == "missing results":
        new, expected = str(tmp_path / "nothing.json"), "does not exist"
    elif problem == "corrupt results":
        truncated = tmp_path / "r.json"
        truncated.write_text('{"schema_version": 1, "measurements": [', encoding="utf-8")
        new, expected = str(truncated), "is not valid JSON"
    elif problem == "corrupt baseline":
        (baseline_dir / "tests" / "perf" / "test_mlp.json").write_text('{"entries": ', encoding="utf-8")
        expected = "test_mlp.json is unusable: it is not valid JSON"
    else:
        new, expected = str(baseline_dir / "tests" / "perf" / "test_mlp.json"), "it looks like a baseline file"
    assert main(["compare", base, new]) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(("option", "expected"), [
    (["--tolerance", "lots"], "--tolerance: expected a percentage"),
    (["--fingerprint-keys", "colour"], "unknown environment field"),
])
def test_compare_bad_options_exit_2(option: list[str], expected: str, baseline_dir: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", *option, str(baseline_dir), str(RESULTS)])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


# --- show -------------------------------------------------------------------------------------------------


def test_show_lists_baselines_environments_and_age(baseline_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(baseline_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["test", "measurement", "configuration", "throughput", "p50_ms", "p99_ms", "rounds",
                                "environment", "saved"]
    row = next(line for line in lines if "b1-n2-w2-p1" in line)
    # The gate's baseline figures (geometric means over the stored rounds), as the reports show them.
    assert row.split()[:8] == ["tests/perf/test_mlp.py::test_mlp_throughput", "default", "b1-n2-w2-p1", "7,207",
                               "0.519", "1.40", "3", "env1"]
    assert row.endswith(" ago")
    assert sum("test_mlp_throughput" in line for line in lines) == 5
    assert "env1: device_type=cpu, instance_type=test-box, cpu_model=Example CPU 8-core, cpu_count=8, " \
           "torch=2.3.0, torch_neuronx=not installed, python=3.11.7" in lines


def test_show_default_folder(tmp_path: Path, baseline_dir: Path, monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["show"]) == 2
    assert ".neuronperf/baselines does not exist" in capsys.readouterr().err
    (tmp_path / ".neuronperf").mkdir()
    baseline_dir.rename(tmp_path / ".neuronperf" / "baselines")
    assert main(["show"]) == 0
    assert "test_conv[<fp16>|fast]" in capsys.readouterr().out


def test_show_reports_corrupt_files(baseline_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (baseline_dir / "broken.json").write_text("not json", encoding="utf-8")
    assert main(["show", str(baseline_dir)]) == 2
    captured = capsys.readouterr()
    assert "broken.json is unusable" in captured.err
    assert "test_mlp_throughput" in captured.out
    empty = baseline_dir / "empty"
    empty.mkdir()
    assert main(["show", str(empty)]) == 0
    assert "no baselines stored in" in capsys.readouterr().out


# --- report -----------------------------------------------------------------------------------------------


def test_report_writes_html_and_markdown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    html_path, md_path = tmp_path / "r.html", tmp_path / "r.md"
    assert main(["report", str(RESULTS), "--html", str(html_path), "--md", str(md_path)]) == 0
    assert f"wrote {md_path}" in capsys.readouterr().out
    assert "1 of 8 configurations regressed." in html_path.read_text(encoding="utf-8")
    assert "| Test | Configuration |" in md_path.read_text(encoding="utf-8")


def test_report_from_plain_benchmark_reports(tmp_path: Path, baseline_dir: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:

    report = report_of(model_name="mlp", throughput_avg=812.0, latency_ms_p99=1.5)
    reports = tmp_path / "reports.json"
    reports.write_text(json.dumps([report]), encoding="utf-8")
    assert main(["report", str(reports), "--md", str(tmp_path / "r.md")]) == 0
    assert "| `mlp` | 1 model x 1 worker, batch 1 | 812 |" in (tmp_path / "r.md").read_text(encoding="utf-8")
    # Without test names there is nothing to look up in the baselines.
    assert main(["compare", str(baseline_dir), str(reports)]) == 2
    assert "give the file written by pytest --npf-json" in capsys.readouterr().err


def test_report_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(RESULTS)]) == 2
    assert "give --html FILE and/or --md FILE" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "none.json"), "--md", str(tmp_path / "x.md")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.md").exists()


# --- run --------------------------------------------------------------------------------------------------


def test_parse_inputs() -> None:
    assert parse_inputs("1x64") == [((1, 64),)]
    assert parse_inputs("1x64;1x8,4x64;4x8") == [((1, 64), (1, 8)), ((4, 64), (4, 8))]
    with pytest.raises(Exception, match="expected a shape such as 1x64"):
        parse_inputs("1xfoo")


def test_run_benchmarks_a_model_from_the_shell(tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_neuronperf", "run", "tests.models:TinyMLP", "--inputs", "1x16",
         "--duration", "0.3", "--n-models", "1", "--workers", "1", "--json", str(out_json)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["throughput_avg", "latency_ms_p50", "latency_ms_p99", "n_models", "pipeline_size",
                                "workers_per_model", "batch_size", "model_filename"]
    assert lines[1].split()[3:] == ["1", "1", "1", "1", "tests.models:TinyMLP"]
    reports = json.loads(out_json.read_text(encoding="utf-8"))
    assert len(reports) == 1 and reports[0]["status"] == "finished" and reports[0]["throughput_avg"] > 0


@pytest.mark.parametrize(("args", "expected"), [
    (["nowhere.models:Net", "--inputs", "1x4"], "cannot import module 'nowhere.models'"),
    (["tests.models:Nope", "--inputs", "1x4"], "has no attribute 'Nope'"),
    (["TinyMLP", "--inputs", "1x4"], "expected MODULE:CLASS"),
    (["tests.models:TinyMLP", "--inputs", "1x"], "expected a shape such as 1x64"),
])
def test_run_bad_input(args: list[str], expected: str, capsys: pytest.CaptureFixture[str],
                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["run", *args, "--duration", "0.1"]) == 2
    assert expected in capsys.readouterr().err


# --- help -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["compare", "show", "report", "run"])
def test_every_command_has_help_with_examples(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"npf {command}" in out


def test_no_command_shows_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    err = capsys.readouterr().err
    assert all(command in err for command in ("compare", "show", "report", "run"))
