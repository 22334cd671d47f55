"""Golden tests of the Markdown and terminal tables, and the files the session writes at the end of a run.

To accept an intended change of the output, run with NPF_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_neuronperf.config.settings import Settings
from pytest_neuronperf.gate.wording import age_text
from pytest_neuronperf.report.markdown import markdown_summary, write_markdown
from pytest_neuronperf.report.results_file import Measurement, ResultsFileError, as_measurements, load_results
from pytest_neuronperf.report.summary import summary_lines
from pytest_neuronperf.session.session import NpfSession
from tests.report.conftest import DATA, RESULTS
from tests.report.reports import report_of


def check_golden(name: str, text: str) -> None:
    path = DATA / name
    if os.environ.get("NPF_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


def test_markdown_summary_golden(results_doc: dict[str, Any]) -> None:
    check_golden("summary.md", markdown_summary(results_doc))


def test_terminal_table_golden(results_doc: dict[str, Any]) -> None:
    lines = summary_lines(as_measurements(results_doc), verbose=False)
    check_golden("summary.txt", "\n".join(lines) + "\n")


def test_markdown_table_shape(results_doc: dict[str, Any]) -> None:
    text = markdown_summary(results_doc)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    configs = sum(len(m["reports"]) for m in results_doc["measurements"])
    assert len(rows) == configs
    # Every row has the ten columns: escaped pipes inside a cell do not split it.
    assert all(row.replace("\\|", "").count("|") == 11 for row in rows)
    assert "&lt;fp16&gt;\\|fast" in text and "<fp16>" not in text
    assert "❌ fail" in text and "⚠️ inconclusive" in text and "⚪ no baseline" in text


def test_markdown_from_plain_reports_and_from_nothing() -> None:
    report = report_of(model_name="mlp", n_models=2, throughput_avg=1234.5, latency_ms_p99=0.81)
    text = markdown_summary([report])
    assert "| `mlp` | 2 models x 1 worker, batch 1 | 1,234 | — | — | 0.810 | — | — | — | 📏 measured |" in text
    assert "No performance measurements" in markdown_summary([])


def test_write_markdown_creates_folders(tmp_path: Path, results_doc: dict[str, Any]) -> None:
    target = tmp_path / "out" / "summary.md"
    assert write_markdown(results_doc, target) == str(target)
    assert target.read_text(encoding="utf-8") == markdown_summary(results_doc)


@pytest.mark.parametrize(("content", "problem"), [
    ("{", "is not valid JSON"),
    ("[]", "the top level must be an object"),
    ('{"measurements": []}', "no integer schema_version"),
    ('{"schema_version": 9, "measurements": []}', "newer pytest-neuronperf"),
    ('{"schema_version": 1, "measurements": [{"test": "t"}]}', "measurements[0] lacks"),
])
def test_load_results_rejects_bad_files(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ResultsFileError, match=problem.replace("[", r"\[")):
        load_results(path)
    with pytest.raises(ResultsFileError, match="does not exist"):
        load_results(tmp_path / "missing.json")


def test_age_text() -> None:
    from datetime import datetime, timezone

    now = datetime(2026, 3, 10, 12, 0, 0, tzinfo=timezone.utc)
    assert age_text("2026-03-10T11:59:50Z", now) == "just now"
    assert age_text("2026-03-10T11:55:00Z", now) == "5 minutes ago"
    assert age_text("2026-03-10T09:00:00Z", now) == "3 hours ago"
    assert age_text("2026-03-07T12:00:00Z", now) == "3 days ago"
    assert age_text("2025-12-01T12:00:00Z", now) == "3 months ago"
    assert age_text("2024-03-01T12:00:00Z", now) == "2 years ago"
    assert age_text("not a time", now) == "not a time"


# --- the session's result files -------------------------------------------------------------------------


def _session(tmp_path: Path, **settings: Any) -> NpfSession:
    config = SimpleNamespace(rootpath=tmp_path, invocation_params=SimpleNamespace(dir=tmp_path))
    session = NpfSession(config, Settings(**settings))  # type: ignore[arg-type]
    session.measurements = as_measurements(load_results(RESULTS))
    return session


def test_session_writes_markdown_html_and_the_github_step_summary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")
    step = tmp_path / "step_summary.md"
    step.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    session = _session(tmp_path, md_path="out/perf.md", html_path="perf.html", json_path="perf.json")
    session._write_files()
    assert session.errors == []
    assert session.written == ["perf.json", "out/perf.md", "perf.html", "GitHub step summary"]
    summary = markdown_summary(session.measurements)
    assert (tmp_path / "out" / "perf.md").read_text(encoding="utf-8") == summary
    assert step.read_text(encoding="utf-8") == "earlier step\n" + summary + "\n"
    assert (tmp_path / "perf.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert [Measurement.from_json(m) for m in load_results(tmp_path / "perf.json")["measurements"]] \
        == session.measurements


def test_step_summary_without_npf_md_and_not_for_runs_without_measurements(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    step = tmp_path / "step_summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    session = _session(tmp_path)
    session._write_files()
    assert "| Test | Configuration |" in step.read_text(encoding="utf-8")
    step.unlink()
    session.measurements = []
    session._write_files()
    assert not step.exists()


def test_session_reports_a_missing_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    session = _session(tmp_path, html_path="perf.html")
    session._write_files()
    assert len(session.errors) == 1
    assert "--npf-html" in session.errors[0] and 'pip install "pytest-neuronperf[report]"' in session.errors[0]
    assert not (tmp_path / "perf.html").exists()
