"""What every report format shows of a generative (streaming) model: its token figures (TTFT, TPOT, output
tokens/s, goodput) in each table, its TTFT and ITL distributions and output tokens over time in the HTML report,
and that reports of other models look as they did."""

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
from pytest_neuronperf.report.generative import generative_columns
from pytest_neuronperf.report.markdown import markdown_summary
from pytest_neuronperf.report.results_file import Measurement, ResultsFileError, as_measurements, load_results
from pytest_neuronperf.report.serving import slo_lines
from pytest_neuronperf.report.summary import summary_lines
from pytest_neuronperf.report.text import format_reports
from pytest_neuronperf.spec import fields
from tests.report.reports import report_of

TOKEN_COLS = ["ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "output_tokens_per_s"]
SLO = "ttft<=25ms"


def _cdf(scale: float) -> list[list[float]]:
    return [[p, round(scale * (1.0 + p / 100.0), 4)] for p in fields.CDF_PERCENTILES]


def _report(**over: Any) -> dict[str, Any]:
    return report_of(**{"model_filename": "gen:Synthetic", "model_name": "Synthetic", "device_type": "cpu",
                        "throughput_avg": 5.5, "latency_ms_p50": 175.2, "latency_ms_p99": 175.3, **over})


def _streaming(**over: Any) -> dict[str, Any]:
    return _report(**{
        "generation": "input_tokens=16 output_tokens=32", "input_tokens": 16.0, "output_tokens": 32.0,
        "output_tokens_per_s": 180.0, "requests_per_s": 5.5, "ttft_ms_p50": 20.2249, "ttft_ms_p99": 20.2658,
        "tpot_ms_p50": 4.9987, "tpot_ms_p99": 4.9997, "itl_ms_p50": 4.9992, "itl_ms_p99": 5.0852,
        "e2e_ms_p50": 175.2, "e2e_ms_p99": 175.3, "failed_requests": 0, "short_requests": 0,
        fields.TTFT_CDF_KEY: _cdf(20.0), fields.ITL_CDF_KEY: _cdf(5.0),
        fields.TOKENS_TIMELINE_KEY: [[[0.2, 172.5], [0.6, 185.0], [1.0, 182.5]]],
        **over})


STREAMING = [_streaming(), _streaming(workers_per_model=2, throughput_avg=11.0, output_tokens_per_s=360.0,
                                      ttft_ms_p50=20.161, tpot_ms_p99=5.04)]
WITH_GOODPUT = [{**r, "slo": SLO, "goodput": r["throughput_avg"], "goodput_ratio": 1.0} for r in STREAMING]
CLOSED = [_report(), _report(n_models=2, throughput_avg=950.0)]


def _header(text: str) -> list[str]:
    return text.splitlines()[0].split()


def _judgement(metric: str, current: float, baseline: float) -> dict[str, Any]:
    return {"metric": metric, "verdict": "pass", "current": current, "baseline": baseline,
            "change": current / baseline - 1.0, "tolerance": 0.05, "message": "", "hint": ""}


def _judged(report: dict[str, Any], baseline: dict[str, Any] | None, ttft_base: float = 18.0) -> Measurement:
    """One streaming configuration judged against a baseline whose TTFT p50 was ``ttft_base`` ms."""
    judgements = [_judgement("throughput", report["throughput_avg"], report["throughput_avg"]),
                  _judgement("ttft_p50", report["ttft_ms_p50"], ttft_base),
                  _judgement("tpot_p99", report["tpot_ms_p99"], report["tpot_ms_p99"])]
    outcome = {"config_key": "b1-n1-w1-p1", "verdict": "pass", "judgements": judgements, "limit_failures": [],
               "baseline": baseline, "baseline_saved_at": None, "note": ""}
    return Measurement(nodeid="t.py::test_gen", name="default", device_type="cpu", fingerprint={}, verdict="pass",
                       reports=[report], outcomes=[outcome])


# --- the plain table ------------------------------------------------------------------------------------


def test_the_table_shows_token_columns_only_for_streaming_reports() -> None:
    assert _header(format_reports(CLOSED)) == list(fields.PRINT_COLS)
    header = _header(format_reports(STREAMING))
    assert [c for c in header if c in TOKEN_COLS] == TOKEN_COLS
    assert "goodput" not in header and "failed_requests" not in header
    assert header[-1] == "model_filename"
    rows = format_reports(STREAMING).splitlines()[1:]
    at = header.index("ttft_ms_p50")
    assert [row.split()[at] for row in rows] == ["20.225", "20.161"]


def test_goodput_and_failed_requests_get_columns_only_where_some_report_has_them() -> None:
    assert "goodput" in _header(format_reports(WITH_GOODPUT))
    assert generative_columns([STREAMING[0], {**STREAMING[1], "failed_requests": 2}])[-1] == "failed_requests"
    assert generative_columns(CLOSED) == []


def test_a_mixed_table_leaves_the_token_cells_of_other_reports_empty() -> None:
    text = format_reports([CLOSED[0], STREAMING[0]])
    header = text.splitlines()[0]
    closed_row = text.splitlines()[1]
    at = header.index("ttft_ms_p50")
    assert closed_row[at:at + len("ttft_ms_p50")].strip() == ""


def test_explicit_columns_stay_as_given() -> None:
    assert _header(format_reports(STREAMING, cols=["n_models", "ttft_ms_p99"])) == ["n_models", "ttft_ms_p99"]


def test_slo_lines_of_per_request_objectives_give_the_goodput() -> None:
    out = io.StringIO()
    npf.print_reports([WITH_GOODPUT[0], {**WITH_GOODPUT[1], "goodput": 9.0, "goodput_ratio": 0.8182}], file=out)
    table, _, tail = out.getvalue().partition(f"SLO {SLO}:")
    # Per-request objectives only: no slo_met, which would read as missed.
    assert "slo_met" not in table and "goodput" in _header(table)
    lines = [line.strip() for line in tail.strip().splitlines()]
    assert lines[0] == "n_models=1 workers=1 batch=1 pipeline=1: goodput 5.50 req/s (100% of requests meet it)"
    assert lines[1] == "n_models=1 workers=2 batch=1 pipeline=1: goodput 9.00 req/s (81.8% of requests meet it)"
    assert lines[2] == "best: n_models=1 workers=2 batch=1 pipeline=1 (goodput 9.00 req/s)"


def test_a_percentile_with_per_request_objectives_says_both() -> None:
    both = [{**r, "slo": f"p99<=200ms,{SLO}", "slo_met": met} for r, met in zip(WITH_GOODPUT, (True, False),
                                                                                 strict=True)]
    lines = slo_lines(both)
    assert lines[1].endswith("closed-loop latency meets it; goodput 5.50 req/s (100% of requests meet it)")
    # The one whose percentile missed is not the best, whatever its goodput.
    assert lines[-1] == "  best: n_models=1 workers=1 batch=1 pipeline=1 (goodput 5.50 req/s)"
    # A share is cut, never rounded up to all of them.
    assert "(99.9% of requests meet it)" in slo_lines([{**WITH_GOODPUT[0], "goodput_ratio": 0.9999}])[1]
    none_good = [{**r, "goodput": 0.0, "goodput_ratio": 0.0} for r in WITH_GOODPUT]
    assert slo_lines(none_good)[-1] == f"  no configuration meets {SLO}"


# --- the terminal summary -------------------------------------------------------------------------------


def _header_line(lines: list[str]) -> str:
    return next(line for line in lines if line.split()[:2] in (["test", "config"], ["config", "throughput"]))


def _columns(lines: list[str]) -> list[str]:
    return _header_line(lines).split()


def _row(lines: list[str], config: str) -> dict[str, str]:
    """A configuration's cells by column name, cut where the header's names start (a cell may be empty)."""
    header = _header_line(lines)
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    line = next(line for line in lines if config in line)
    cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return dict(zip(header.split(), cells, strict=True))


def test_the_summary_shows_token_figures_of_a_streaming_measurement() -> None:
    lines = summary_lines(as_measurements(WITH_GOODPUT), verbose=False)
    names = _columns(lines)
    assert [c for c in names if c in ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "tok_s", "goodput")] == [
        "ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "tok_s", "goodput"]
    # Nothing was compared: no columns of changes that would all be dashes.
    assert not any(c.endswith("_chg") for c in names)
    assert names.index("goodput") < names.index("rounds")
    row = _row(lines, "b1-n1-w2-p1")
    assert (row["ttft_p50"], row["tpot_p99"], row["tok_s"], row["goodput"]) == ("20.2", "5.04", "360", "11.0")
    assert "slo_met" not in names
    assert any("best n_models=1 workers=2 batch=1 pipeline=1 (goodput 11.0 req/s)" in line for line in lines)


def test_the_summary_of_other_measurements_has_no_token_columns() -> None:
    names = _columns(summary_lines(as_measurements(CLOSED), verbose=False))
    assert not {"ttft_p50", "tok_s", "goodput"} & set(names)


def test_the_summary_shows_the_change_against_the_baseline() -> None:
    lines = summary_lines([_judged(STREAMING[0], None)], verbose=False)
    names = _columns(lines)
    assert "ttft50_chg" in names and "tpot99_chg" in names and "tok_chg" not in names
    row = _row(lines, "b1-n1-w1-p1")
    assert row["ttft_p50"] == "20.2" and row["ttft50_chg"] == "+12.4%" and row["tpot99_chg"] == "+0.0%"


def test_a_narrow_terminal_drops_the_medians_before_the_p99s() -> None:
    m = _judged(STREAMING[0], None)
    wide = _columns(summary_lines([m], verbose=False))
    narrow = summary_lines([m], verbose=False, width=120)
    assert max(len(line) for line in narrow) <= 120 < max(len(line) for line in summary_lines([m], verbose=False))
    assert {"ttft_p50", "ttft50_chg", "tpot_p50"} <= set(wide)
    assert not {"ttft_p50", "ttft50_chg", "tpot_p50"} & set(_columns(narrow))
    assert {"ttft_p99", "tpot_p99", "tpot99_chg", "tok_s"} <= set(_columns(narrow))
    # However narrow, the change the gate judged stays.
    assert "tpot99_chg" in _columns(summary_lines([m], verbose=False, width=40))


# --- Markdown -------------------------------------------------------------------------------------------


def _md_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| `")]


def test_markdown_shows_ttft_and_tpot_of_streaming_measurements() -> None:
    text = markdown_summary(WITH_GOODPUT)
    assert ("| TTFT p50 (ms) | TTFT p99 (ms) | TPOT p50 (ms) | TPOT p99 (ms) | Output tokens/s | Goodput (req/s) "
            "| Verdict |") in text
    rows = _md_rows(text)
    assert all(row.count("|") == 17 for row in rows)
    assert "| 20.2 | 20.3 | 5.00 | 5.00 | 180 | 5.50 |" in rows[0]
    assert "| 20.2 | 20.3 | 5.00 | 5.04 | 360 | 11.0 |" in rows[1]
    assert "SLO ttft&lt;=25ms: best is 1 model x 2 workers, batch 1 (goodput 11.0 req/s)" in text


def test_markdown_shows_the_change_beside_a_compared_figure() -> None:
    row = _md_rows(markdown_summary([_judged(STREAMING[0], None)]))[0]
    assert "| 20.2 (+12.4%) | 20.3 |" in row and "| 5.00 (+0.0%) |" in row


def test_markdown_without_streaming_reports_has_no_token_columns() -> None:
    text = markdown_summary(CLOSED)
    assert "TTFT" not in text and "Output tokens" not in text
    assert all(row.count("|") == 11 for row in _md_rows(text))


def test_markdown_counts_failed_requests_where_some_failed() -> None:
    text = markdown_summary([STREAMING[0], {**STREAMING[1], "failed_requests": 3}])
    assert "| Failed requests |" in text
    assert _md_rows(text)[0].endswith("| 0 | 📏 measured |") and _md_rows(text)[1].endswith("| 3 | 📏 measured |")


# --- HTML -----------------------------------------------------------------------------------------------


def _svgs(text: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", text, flags=re.S)


def _plot(text: str, name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [json.loads(html.unescape(m[1]))
                                   for m in re.finditer(r'<figure data-plot="([^"]*)">', text)]
    [data] = [d for d in found if d["plot"] == name]
    return data


def test_html_table_shows_the_token_figures() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    text = html.unescape(re.sub(r"<svg.*?</svg>", "", html_report(WITH_GOODPUT), flags=re.S))
    for head in ("TTFT p50 ms", "TTFT p99 ms", "TPOT p50 ms", "TPOT p99 ms", "Output tokens/s", "Goodput req/s"):
        assert f">{head}</th>" in text
    assert re.search(r'data-figure="ttft_p50_ms">20.2<', text) and re.search(r'data-figure="tokens_per_s">360<', text)
    assert 'data-figure="slo_met">100% of requests meet it' in text


def test_html_table_shows_the_change_of_a_compared_token_figure() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    text = html_report([_judged(STREAMING[0], None)])
    assert re.search(r'data-figure="ttft_p50_ms">20.2<br><span class="worse" data-figure="ttft_p50_change">'
                     r"\+12.4%</span>", text)
    assert re.search(r'data-figure="tpot_p99_ms">5.00<br><span class="" data-figure="tpot_p99_change">', text)


def test_html_embeds_the_ttft_and_itl_distributions_and_the_tokens_timeline() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    text = html_report(STREAMING)
    ttft, itl = _plot(text, "TTFT distribution"), _plot(text, "ITL distribution")
    assert [s["config"] for s in ttft["series"]] == ["b1-n1-w1-p1", "b1-n1-w2-p1"]
    assert ttft["series"][0]["cdf"] == STREAMING[0][fields.TTFT_CDF_KEY]
    assert itl["series"][1]["cdf"] == STREAMING[1][fields.ITL_CDF_KEY]
    assert all(s["baseline_cdf"] == [] for s in [*ttft["series"], *itl["series"]])
    timeline = _plot(text, "output tokens over time")
    assert timeline["series"][0]["rounds"] == STREAMING[0][fields.TOKENS_TIMELINE_KEY]
    labels = [svg for svg in _svgs(text) if "time to first token (ms" in svg or "gap between tokens (ms" in svg]
    assert len(labels) == 2
    assert any("output tokens/s" in svg for svg in _svgs(text))


def test_html_draws_the_baseline_distributions_dashed_where_the_baseline_kept_them() -> None:
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    baseline = {**STREAMING[0], fields.TTFT_CDF_KEY: _cdf(18.0), fields.ITL_CDF_KEY: None}
    text = html_report([_judged(STREAMING[0], baseline)])
    ttft, itl = _plot(text, "TTFT distribution"), _plot(text, "ITL distribution")
    assert ttft["series"][0]["baseline_cdf"] == _cdf(18.0)
    assert itl["series"][0]["baseline_cdf"] == []
    alone = html_report([_judged(STREAMING[0], None)])
    [with_base] = [svg for svg in _svgs(text) if "time to first token (ms" in svg]
    [without] = [svg for svg in _svgs(alone) if "time to first token (ms" in svg]
    assert ">baseline</text>" in with_base and "baseline" not in without
    # The baseline's dashed line, and its sample in the legend.
    assert with_base.count("stroke-dasharray") == without.count("stroke-dasharray") + 2


# --- CSV and results files ------------------------------------------------------------------------------


def test_csv_has_the_token_figures_but_not_their_lists(tmp_path: Path) -> None:
    name = npf.write_csv(WITH_GOODPUT, str(tmp_path / "r.csv"))
    with open(name, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for key in (fields.TTFT_CDF_KEY, fields.ITL_CDF_KEY, fields.TOKENS_TIMELINE_KEY):
        assert key not in rows[0]
    assert rows[0]["ttft_ms_p50"] == "20.2249" and rows[1]["output_tokens_per_s"] == "360.0"
    assert rows[0]["generation"] == "input_tokens=16 output_tokens=32" and rows[0]["goodput"] == "5.5"
    with pytest.raises(ValueError, match="write_json"):
        npf.write_csv(STREAMING, str(tmp_path / "s.csv"), cols=["ttft_ms_p50", fields.TTFT_CDF_KEY])


def test_the_run_csv_rows_leave_the_lists_out() -> None:
    [row] = _judged(STREAMING[0], None).flat_rows()
    assert row["ttft_ms_p50"] == 20.2249 and row["ttft_p50_change"] == pytest.approx(20.2249 / 18.0 - 1)
    assert not {fields.TTFT_CDF_KEY, fields.ITL_CDF_KEY, fields.TOKENS_TIMELINE_KEY} & set(row)


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize(("key", "bad", "where"), [
    (fields.TTFT_CDF_KEY, [[50.0, "20ms"]], r"\[0\]\.ttft_cdf_ms\[0\] must be a pair of numbers"),
    (fields.ITL_CDF_KEY, "5ms", r"\[0\]\.itl_cdf_ms must be a list of \[x, y\] points"),
    (fields.TOKENS_TIMELINE_KEY, [[[0.2, None]]], r"\[0\]\.tokens_timeline\[0\]\[0\] must be a pair of numbers"),
    (fields.TOKENS_TIMELINE_KEY, {"0": []}, r"\[0\]\.tokens_timeline must be a list \(one list of points per round"),
])
def test_a_malformed_token_list_is_refused_naming_it(tmp_path: Path, key: str, bad: Any, where: str) -> None:
    path = _write(tmp_path, [{**STREAMING[0], key: bad}])
    with pytest.raises(ResultsFileError, match=where):
        load_results(path)


def test_a_results_document_with_a_malformed_ttft_cdf_is_refused(tmp_path: Path) -> None:
    m = _judged(STREAMING[0], {**STREAMING[0], fields.TTFT_CDF_KEY: [[50.0]]})
    doc = {"schema_version": 1, "environment": {}, "measurements": [m.to_json()]}
    with pytest.raises(ResultsFileError, match=r"measurements\[0\]\.outcomes\[0\]\.baseline\.ttft_cdf_ms\[0\] must "
                                               r"be a pair of numbers"):
        load_results(_write(tmp_path, doc))
    m.outcomes[0]["baseline"] = STREAMING[0]
    m.reports[0] = {**STREAMING[0], fields.TTFT_CDF_KEY: [[50.0, True]]}
    doc["measurements"] = [m.to_json()]
    with pytest.raises(ResultsFileError, match=r"measurements\[0\]\.reports\[0\]\.ttft_cdf_ms\[0\]"):
        load_results(_write(tmp_path, doc))


def test_a_well_formed_streaming_results_file_reads_back(tmp_path: Path) -> None:
    m = _judged(STREAMING[0], {**STREAMING[0], fields.TTFT_CDF_KEY: _cdf(18.0)})
    doc = load_results(_write(tmp_path, {"schema_version": 1, "environment": {}, "measurements": [m.to_json()]}))
    assert doc["measurements"][0]["reports"][0][fields.TTFT_CDF_KEY] == _cdf(20.0)
    # A percentile with no sample is null in a distribution, never in a timeline.
    load_results(_write(tmp_path, [{**STREAMING[0], fields.ITL_CDF_KEY: [[0.0, None], [50.0, 5.0]]}]))


# --- one real run ---------------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_leftover_children")
def test_a_real_streaming_run_shows_its_figures_in_every_format(tmp_path: Path) -> None:
    from tests import generative_models as gm

    reports: list[dict[str, Any]] = npf.benchmark(  # type: ignore[assignment]
        gm.synthetic, 0, streaming=True, duration=0.4, warmup=2, n_models=1, workers_per_model=1,
        slo="ttft<=1s,tpot<=1s")
    [r] = reports
    assert r["status"] == fields.STATUS_OK, r["reason"]
    out = io.StringIO()
    npf.print_reports(reports, file=out)
    assert {*TOKEN_COLS, "goodput"} <= set(_header(out.getvalue()))
    assert "(100% of requests meet it)" in out.getvalue()
    assert "| TTFT p50 (ms) |" in markdown_summary(reports)
    saved = load_results(npf.write_json(reports, str(tmp_path / "r.json")))
    assert saved["measurements"][0]["reports"][0][fields.TTFT_CDF_KEY] == r[fields.TTFT_CDF_KEY]
    pytest.importorskip("matplotlib")
    from pytest_neuronperf.report.html import html_report

    text = html_report(saved)
    assert _plot(text, "TTFT distribution")["series"][0]["cdf"]
    assert _plot(text, "output tokens over time")["series"][0]["rounds"]
