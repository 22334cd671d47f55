from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

import pytest_neuronperf as npf
from pytest_neuronperf.spec import fields
from tests.report.reports import report_of


def _report(**over: Any) -> dict[str, Any]:
    return report_of(**{"model_filename": "models/m_b1_p1_x.pt", "model_name": "m", "throughput_avg": 307.25,
                        "latency_ms_p50": 3.251, "latency_ms_p99": 3.277, "rounds": [{"throughput": 307.0}],
                        **over})


REPORTS = [_report(), _report(n_models=16, throughput_avg=2746.0, latency_ms_p50=5.641, latency_ms_p99=6.82)]


def test_table_has_the_guides_columns() -> None:
    out = io.StringIO()
    npf.print_reports(REPORTS, file=out)
    assert out.getvalue() == (
        "throughput_avg latency_ms_p50 latency_ms_p99 n_models pipeline_size workers_per_model batch_size "
        "model_filename\n"
        "307.25         3.251          3.277          1        1             1                 1          "
        "models/m_b1_p1_x.pt\n"
        "2746.0         5.641          6.82           16       1             1                 1          "
        "models/m_b1_p1_x.pt\n"
    )


def test_table_columns_and_sorting() -> None:
    out = io.StringIO()
    npf.print_reports(REPORTS, cols=["n_models", "throughput_avg"], sort_by="throughput_avg", file=out)
    assert out.getvalue().splitlines() == ["n_models throughput_avg", "1        307.25", "16       2746.0"]
    with pytest.raises(ValueError, match=r"cols: unknown report field\(s\) \['bogus'\]"):
        npf.print_reports(REPORTS, cols=["bogus"])
    with pytest.raises(ValueError, match=r"sort_by: unknown report field 'nope'"):
        npf.print_reports(REPORTS, sort_by="nope")


def test_write_csv(tmp_path: Path) -> None:
    name = npf.write_csv(REPORTS, str(tmp_path / "r.csv"), cols=["n_models", "throughput_avg", "reason"])
    rows = list(csv.reader(Path(name).read_text(encoding="utf-8").splitlines()))
    assert rows == [["n_models", "throughput_avg", "reason"], ["1", "307.25", ""], ["16", "2746.0", ""]]


def test_write_csv_default_name_and_all_scalar_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    name = npf.write_csv(REPORTS)
    assert name.startswith("m.results-") and name.endswith(".csv")
    header = next(csv.reader(Path(name).read_text(encoding="utf-8").splitlines()))
    assert header == list(fields.CSV_COLS) and "rounds" not in header


def test_write_json_round_trips_everything(tmp_path: Path) -> None:
    reports = [_report(latency_ms_p0=float("nan"))]
    name = npf.write_json(reports, str(tmp_path / "sub" / "r.json"))
    back = json.loads(Path(name).read_text())
    assert back[0]["rounds"] == [{"throughput": 307.0}]
    assert back[0]["latency_ms_p0"] is None  # NaN is not JSON


def test_failed_write_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "r.json"
    target.write_text("old")

    def broken(*a: Any, **k: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken)
    with pytest.raises(OSError, match="disk full"):
        npf.write_json(REPORTS, str(target))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
