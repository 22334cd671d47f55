"""A measurement that errored, and one without reports, in every report format (issue 12, defect 13)."""

from __future__ import annotations

import html
from typing import Any

import pytest

from pytest_neuronperf.report.markdown import markdown_summary, summary_sentence
from pytest_neuronperf.report.results_file import Measurement, as_measurements, load_results
from pytest_neuronperf.report.summary import summary_lines
from tests.report.conftest import RESULTS

CRASH = "RuntimeError: forward exploded\nTraceback from the model copy:\n  File x.py, line 3"


def _crashed() -> Measurement:
    return Measurement(nodeid="tests/t.py::test_crash", name="default", device_type="cpu", fingerprint={},
                       verdict="error", reports=[], outcomes=[], error=CRASH)


def _with_others() -> list[Measurement]:
    return [*as_measurements(load_results(RESULTS)), _crashed()]


def test_terminal_summary_lists_the_error_and_counts_it() -> None:
    lines = summary_lines(_with_others(), verbose=True)
    assert any(line.startswith("tests/t.py::test_crash ") and line.rstrip().endswith("error") for line in lines)
    assert "error: tests/t.py::test_crash: RuntimeError: forward exploded (...)" in lines
    assert lines[-1].startswith("neuronperf: 5 measurement(s) (1 errored), configurations: ")
    assert summary_lines([_crashed()], verbose=False)[-1] == \
        "neuronperf: 1 measurement(s) (1 errored), configurations: none"


def test_markdown_lists_the_error_and_counts_it() -> None:
    text = markdown_summary(_with_others())
    assert summary_sentence(_with_others()).startswith("5 measurements: 1 errored, 1 regressed")
    assert "| `tests/t.py::test_crash` | — | — | — | — | — | — | — | — | 💥 error |" in text
    assert "- `tests/t.py::test_crash`, the measurement: **error**: RuntimeError: forward exploded (...)" in text


def test_csv_rows_hold_the_error() -> None:
    [row] = _crashed().flat_rows()
    assert row["verdict"] == "error" and row["status"] == "error" and row["reason"] == CRASH


def test_html_never_calls_a_run_with_an_error_free_of_regressions() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    doc: list[Any] = [_crashed()]
    page = html.unescape(html_report(doc))
    headline = page.split('<section class="summary"', 1)[1].split("</strong>", 1)[0]
    assert "1 measurement errored; its results are missing." in headline
    assert "No regression" not in headline and "Nothing was compared" not in headline
    assert '<div class="tile v-error"><b>1</b><span>errored</span></div>' in page
    assert "Traceback from the model copy:" in page  # the whole error, not only its first line
    both = html.unescape(html_report(_with_others()))
    assert "1 measurement errored; its results are missing. 1 of 8 configurations regressed." in both


def test_an_errored_configuration_is_an_error_in_the_explanations() -> None:
    measurement = as_measurements(load_results(RESULTS))[3]
    measurement.reports[0]["status"], measurement.reports[0]["reason"] = "error", "no inference completed"
    measurement.outcomes[0]["verdict"], measurement.outcomes[0]["note"] = "error", "no inference completed"
    text = markdown_summary([measurement])
    assert "1 model x 1 worker, batch 1: **error**: no inference completed" in text
    assert "error: tests/perf/test_new.py::test_new_model: n_models=1 workers=1 batch=1 pipeline=1: no " \
           "inference completed" in summary_lines([measurement], verbose=False)
