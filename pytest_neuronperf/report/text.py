"""The guide's plain-text table, and the CSV and JSON writers."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from pytest_neuronperf._util.stamps import wall_clock_stamp
from pytest_neuronperf.report.figures import FIGURE_KEYS
from pytest_neuronperf.report.generative import generative_columns
from pytest_neuronperf.report.serving import serving_columns, slo_lines
from pytest_neuronperf.spec import fields


def format_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return str(round(value, 3)) if abs(value) >= 1 else f"{value:.4g}"
    return str(value)


def _check_cols(cols: Sequence[str] | None, default: Sequence[str]) -> list[str]:
    if cols is None:
        return list(default)
    if isinstance(cols, str):
        cols = [cols]
    unknown = [c for c in cols if c not in fields.ALL_KEYS and c not in fields.RUN_KEYS and c not in FIGURE_KEYS]
    if unknown:
        raise ValueError(f"cols: unknown report field(s) {unknown}; valid fields: {', '.join(fields.ALL_KEYS)}")
    return list(cols)


def _sorted(reports: Sequence[Mapping[str, Any]], sort_by: str | None) -> list[Mapping[str, Any]]:
    if sort_by is None:
        return list(reports)
    if sort_by not in fields.ALL_KEYS:
        raise ValueError(f"sort_by: unknown report field {sort_by!r}; valid fields: {', '.join(fields.ALL_KEYS)}")

    def key(r: Mapping[str, Any]) -> tuple[int, Any]:
        v = r.get(sort_by)
        return (1, 0) if v is None else (0, v)

    return sorted(reports, key=key)


def default_columns(reports: Sequence[Mapping[str, Any]]) -> list[str]:
    """The guide's columns, with the serving, SLO and generative (token) columns that apply before the (long)
    model file name."""
    columns = list(fields.PRINT_COLS)
    at = columns.index("model_filename") if "model_filename" in columns else len(columns)
    return columns[:at] + serving_columns(reports) + generative_columns(reports) + columns[at:]


def format_reports(reports: Sequence[Mapping[str, Any]], cols: Sequence[str] | None = None,
                   sort_by: str | None = None) -> str:
    columns = _check_cols(cols, default_columns(reports))
    rows = [[format_value(r.get(c)) for c in columns] for r in _sorted(reports, sort_by)]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
    lines = [" ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += [" ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def print_reports(reports: Sequence[Mapping[str, Any]], cols: Sequence[str] | None = None,
                  sort_by: str | None = None, file: IO[str] | None = None) -> None:
    """Print the reports as the guide's table (``cols`` picks and orders columns); under it, with an SLO,
    whether each configuration meets it and which serves it best."""
    lines = [format_reports(reports, cols=cols, sort_by=sort_by), *slo_lines(reports)]
    print("\n".join(lines), file=file or sys.stdout)


def _default_name(reports: Sequence[Mapping[str, Any]], suffix: str) -> str:
    name = next((str(r["model_name"]) for r in reports if r.get("model_name")), "model")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return f"{safe}.results-{wall_clock_stamp()}.{suffix}"


def write_csv(reports: Sequence[Mapping[str, Any]], filename: str | None = None,
              cols: Sequence[str] | None = None) -> str:
    """Write the chosen columns (default: every scalar field) as CSV; returns the file name."""
    columns = _check_cols(cols, fields.CSV_COLS)
    lists = [c for c in columns if c in fields.LIST_KEYS]
    if lists:
        raise ValueError(f"cols: {lists} hold lists, which CSV cannot; write them with write_json")
    target = filename or _default_name(reports, "csv")
    buffer = io.StringIO(newline="")
    w = csv.writer(buffer)
    w.writerow(columns)
    for r in reports:
        w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
    return _write(target, buffer.getvalue())


def _write(filename: str, text: str) -> str:
    from pytest_neuronperf._util.atomic_write import write_atomic

    os.makedirs(os.path.dirname(os.path.abspath(filename)), exist_ok=True)
    write_atomic(filename, text.encode("utf-8"))
    return filename


def _json_default(obj: object) -> Any:
    item = getattr(obj, "item", None)
    if callable(item):
        return item()
    tolist = getattr(obj, "tolist", None)
    if callable(tolist):
        return tolist()
    raise TypeError(f"report value of type {type(obj).__name__} is not JSON serialisable")


def _finite(obj: Any) -> Any:
    """NaN and infinity are not JSON; an unknown value is written as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def json_text(obj: Any) -> str:
    """Indented JSON with NaN/infinity as null and numpy scalars as numbers."""
    return json.dumps(_finite(obj), indent=2, default=_json_default, allow_nan=False) + "\n"


def reports_to_json(reports: Sequence[Mapping[str, Any]]) -> str:
    return json_text(list(reports))


def write_json(reports: Sequence[Mapping[str, Any]], filename: str | None = None) -> str:
    """Write every field of every report as JSON; returns the file name."""
    target = filename or _default_name(reports, "json")
    return _write(target, reports_to_json(reports))
