"""What every report format shows of open-loop load and of capacity at a latency SLO, and that reports without
them look as they did."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

import pytest_neuronperf as npf
from pytest_neuronperf.report.markdown import markdown_summary
from pytest_neuronperf.report.results_file import Measurement
from pytest_neuronperf.report.serving import serving_columns, slo_lines
from pytest_neuronperf.report.text import format_reports
from pytest_neuronperf.spec import fields
from tests.report.reports import report_of

SLO = "p50<=3ms,p99<=6ms"
OVERLOADED_REASON = ("overloaded: 498 req/s completed of 676 offered; the copies cannot keep up with "
                     "request_rate=700, so its latencies are no measurement (lower request_rate, or add copies or "
                     "workers)")


def _report(**over: Any) -> dict[str, Any]:
    return report_of(**{"model_filename": "svc:FixedService", "model_name": "FixedService", "device_type": "cpu",
                        "throughput_avg": 499.0, "latency_ms_p50": 2.0, "latency_ms_p99": 2.003, **over})


def _step(rate: float, p50: float, p99: float, met: bool) -> dict[str, Any]:
    return {"rate": rate, "offered_rps": rate * 0.97, "achieved_rps": rate * 0.97, "p50_ms": p50, "p99_ms": p99,
            "samples": 738, "dropped": 0, "overloaded": False, "met": met,
            "violations": [] if met else [f"p99 {p99:.3g} ms > 6 ms"]}


def _searched(workers: int, capacity: float, met: bool, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return _report(workers_per_model=workers, throughput_avg=499.0 + workers, slo=SLO, slo_met=met,
                   capacity_rps=capacity, capacity_low_rps=capacity, capacity_high_rps=capacity * 1.1,
                   capacity_ms_p50=2.0062, capacity_ms_p99=5.8789, capacity_steps=steps)


SEARCHED = [
    _searched(1, 155.937, True, [_step(249.5, 2.07, 7.65, False), _step(124.75, 2.01, 5.40, True),
                                 _step(187.125, 2.01, 6.57, False), _step(155.938, 2.01, 5.88, True)]),
    _searched(2, 110.063, False, [_step(293.5, 2.41, 11.9, False), _step(73.375, 2.01, 4.00, True),
                                  _step(110.062, 2.01, 5.85, True), _step(128.406, 2.01, 6.92, False)]),
]
OPEN_LOOP = _report(throughput_avg=230.0, latency_ms_p99=7.336, request_rate=250.0, arrival="poisson",
                    offered_rps=230.0, achieved_rps=230.0, service_ms_p50=2.0014, service_ms_p99=2.0168,
                    wait_ms_p50=0.0127, wait_ms_p99=5.335, late_requests=74, dropped_requests=0,
                    unfinished_requests=0, overloaded=False, slo="p99<=6ms", slo_met=False)
OVERLOADED = _report(throughput_avg=498.0, latency_ms_p99=356.5, request_rate=700.0, arrival="poisson",
                     offered_rps=676.0, achieved_rps=498.0, service_ms_p50=2.0006, service_ms_p99=2.0024,
                     wait_ms_p50=161.8, wait_ms_p99=354.5, late_requests=674, dropped_requests=0,
                     unfinished_requests=0, overloaded=True, status=fields.STATUS_OVERLOADED,
                     reason=OVERLOADED_REASON)
CLOSED = [_report(), _report(n_models=2, throughput_avg=950.0)]


def _header(text: str) -> list[str]:
    return text.splitlines()[0].split()


# --- the plain table ------------------------------------------------------------------------------------


def test_the_table_shows_serving_columns_only_when_reports_have_them() -> None:
    assert _header(format_reports(CLOSED)) == list(fields.PRINT_COLS)
    open_loop = _header(format_reports([OPEN_LOOP, OVERLOADED]))
    assert {"offered_rps", "achieved_rps", "service_ms_p99", "wait_ms_p99", "overloaded", "slo_met"} <= set(
        open_loop)
    assert "capacity_rps" not in open_loop and "dropped_requests" not in open_loop
    assert open_loop[-1] == "model_filename"
    searched = _header(format_reports(SEARCHED))
    assert {"slo_met", "capacity_rps", "capacity_ms_p99"} <= set(searched) and "offered_rps" not in searched


def test_explicit_columns_stay_as_given() -> None:
    assert _header(format_reports([OPEN_LOOP, *SEARCHED], cols=["n_models", "throughput_avg"])) == [
        "n_models", "throughput_avg"]


def test_dropped_requests_get_a_column_when_some_were_dropped() -> None:
    assert "dropped_requests" in serving_columns([{**OPEN_LOOP, "dropped_requests": 3}])


def test_slo_lines_name_the_best_configuration_under_the_table() -> None:
    out = io.StringIO()
    npf.print_reports(SEARCHED, file=out)
    table, _, tail = out.getvalue().partition(f"SLO {SLO}:")
    assert "capacity_rps" in table
    lines = [line.strip() for line in tail.strip().splitlines()]
    assert lines[0] == ("n_models=1 workers=1 batch=1 pipeline=1: closed-loop latency meets it; capacity 156 req/s "
                        "(p99 5.88 ms there)")
    assert lines[1].startswith("n_models=1 workers=2 batch=1 pipeline=1: closed-loop latency misses it; capacity 110")
    assert lines[2] == "best: n_models=1 workers=1 batch=1 pipeline=1 (capacity 156 req/s)"


def test_slo_lines_say_when_no_configuration_meets_it() -> None:
    lines = slo_lines([OPEN_LOOP])
    assert lines[0] == "SLO p99<=6ms:"
    assert "latency at 250 req/s misses it (230 offered, 230 achieved)" in lines[1]
    assert lines[-1] == "  no configuration meets p99<=6ms"
    nothing = [{**r, "capacity_rps": 0.0} for r in SEARCHED]
    assert slo_lines(nothing)[-1] == f"  no configuration meets {SLO}"
    assert "no rate tried meets it" in slo_lines(nothing)[1]


def test_without_a_search_the_best_is_the_fastest_that_met() -> None:
    met = [{**OPEN_LOOP, "slo_met": True, "throughput_avg": 230.0},
           {**OPEN_LOOP, "workers_per_model": 2, "slo_met": True, "throughput_avg": 240.0},
           {**OPEN_LOOP, "workers_per_model": 4, "slo_met": False, "throughput_avg": 300.0}]
    assert slo_lines(met)[-1] == "  best: n_models=1 workers=2 batch=1 pipeline=1 (throughput 240/s)"


def test_no_slo_lines_without_an_slo() -> None:
    out = io.StringIO()
    npf.print_reports([*CLOSED, OVERLOADED], file=out)
    assert "SLO" not in out.getvalue()
    assert slo_lines(CLOSED) == []


# --- CSV and JSON ---------------------------------------------------------------------------------------


def test_csv_has_the_capacity_but_not_its_steps(tmp_path: Path) -> None:
    name = npf.write_csv([*SEARCHED, OPEN_LOOP], str(tmp_path / "r.csv"))
    with open(name, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert fields.CAPACITY_STEPS_KEY not in rows[0]
    assert rows[0]["capacity_rps"] == "155.937" and rows[2]["offered_rps"] == "230.0"
    with pytest.raises(ValueError, match="write_json"):
        npf.write_csv(SEARCHED, str(tmp_path / "s.csv"), cols=["capacity_rps", fields.CAPACITY_STEPS_KEY])


def test_json_keeps_the_steps(tmp_path: Path) -> None:
    name = npf.write_json(SEARCHED, str(tmp_path / "r.json"))
    data = json.loads(Path(name).read_text(encoding="utf-8"))
    assert data[0][fields.CAPACITY_STEPS_KEY][0]["rate"] == 249.5


# --- Markdown -------------------------------------------------------------------------------------------


def _md_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| `")]


def test_markdown_shows_offered_achieved_capacity_and_the_overloaded_reason() -> None:
    text = markdown_summary([*SEARCHED, OPEN_LOOP, OVERLOADED])
    assert "| Offered → achieved (req/s) | Capacity at SLO (req/s) | Verdict |" in text
    rows = _md_rows(text)
    assert all(row.count("|") == 13 for row in rows)
    assert "| 156 (p99 5.88 ms) |" in rows[0]
    assert "| 230 → 230 | — |" in rows[2]
    assert "| 676 → 498 (overloaded) | — |" in rows[3]
    assert "SLO p50&lt;=3ms,p99&lt;=6ms: best is 1 model x 1 worker, batch 1 (capacity 156 req/s)" in text
    assert "SLO p99&lt;=6ms: no configuration meets it" in text
    assert OVERLOADED_REASON in text


def test_markdown_without_serving_fields_has_no_serving_columns() -> None:
    text = markdown_summary(CLOSED)
    assert "Offered" not in text and "Capacity" not in text and "SLO" not in text
    assert all(row.count("|") == 11 for row in _md_rows(text))


# --- HTML -----------------------------------------------------------------------------------------------


def _svgs(text: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", text, flags=re.S)


def test_html_draws_latency_against_offered_load_with_the_slo() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    text = html_report([*SEARCHED, OPEN_LOOP, OVERLOADED])
    knees = [svg for svg in _svgs(text) if "offered load (req/s)" in svg]
    assert len(knees) == 1
    knee = knees[0]
    assert "p50 latency (ms)" in knee and "p99 latency (ms)" in knee
    assert "SLO p99&lt;=6ms" in knee and "SLO p50&lt;=3ms" in knee and "capacity" in knee
    assert "Latency against offered load (capacity at the SLO)" in text
    figure = re.search(r'<figure data-plot="([^"]*)"><svg[^>]*aria-label="latency against', text)
    assert figure is not None
    data = json.loads(html.unescape(figure[1]))
    assert [s["capacity_rps"] for s in data["series"]] == [155.937, 110.063]
    # Each step at the rate it was offered, the unit capacity_rps is in.
    assert [s["rate"] for s in data["series"][0]["steps"]] == pytest.approx(
        [0.97 * r for r in (124.75, 155.938, 187.125, 249.5)])


def test_html_table_shows_offered_achieved_and_capacity() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    text = html.unescape(re.sub(r"<svg.*?</svg>", "", html_report([*SEARCHED, OPEN_LOOP, OVERLOADED]), flags=re.S))
    assert "Offered → achieved" in text and "Capacity req/s" in text
    assert re.search(r'data-figure="achieved_rps">676 → <span class="worse">498</span>', text)
    assert re.search(r'data-figure="capacity_rps">156<br><span class="ci">p99 5.88 ms</span>', text)
    assert "request_rate=700" in text


def test_html_of_closed_loop_reports_without_an_slo_or_streaming_is_as_before() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    text = html_report(CLOSED)
    assert "offered load" not in text and "Offered" not in text and "Capacity" not in text
    # Nor a generative model's token columns or plots.
    assert "TTFT" not in text and "Token latency" not in text and "output tokens" not in text
    header = re.search(r"<thead>.*?</thead>", text, flags=re.S)
    assert header is not None and len(re.findall(r"<th[ >]", header[0])) == 10


def test_the_knee_plot_draws_the_baseline_dashed() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import capacity_knee_data, html_report

    def knee_of(baseline: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
        outcome: dict[str, Any] = {"config_key": "b1-n1-w1-p1", "verdict": "pass", "judgements": [],
                                   "limit_failures": [], "baseline": baseline, "baseline_saved_at": None, "note": ""}
        m = Measurement(nodeid="t.py::test_x", name="default", device_type="cpu", fingerprint={}, verdict="pass",
                        reports=[SEARCHED[0]], outcomes=[outcome])
        return capacity_knee_data(m), next(svg for svg in _svgs(html_report([m])) if "offered load (req/s)" in svg)

    data, knee = knee_of({**SEARCHED[0], "capacity_steps": SEARCHED[1]["capacity_steps"]})
    assert [s["rate"] for s in data["series"][0]["baseline_steps"]] == pytest.approx(
        [0.97 * r for r in (73.375, 110.062, 128.406, 293.5)])
    alone_data, alone = knee_of(None)
    assert alone_data["series"][0]["baseline_steps"] == []
    assert "baseline" in knee and "baseline" not in alone
    # The baseline's dashed line in each panel (p50 and p99), and in the legend.
    assert knee.count("stroke-dasharray") == alone.count("stroke-dasharray") + 3
