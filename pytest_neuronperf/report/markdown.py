"""The Markdown summary (for ``--npf-md`` and GitHub's job summary), and reading saved results back.

Every report writer takes its input through :func:`as_measurements`, so a list
of measurements from a pytest run, a saved ``--npf-json`` document and the
plain report dicts of ``benchmark()`` all render the same way.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final, TypeAlias

from pytest_neuronperf.report.results_file import Measurement
from pytest_neuronperf.spec import fields

RESULTS_SCHEMA_VERSION: Final = 1
_MEASUREMENT_KEYS: Final = ("test", "measurement", "device_type", "fingerprint", "verdict", "reports", "outcomes")

# Display order of verdicts, and the words used for them in sentences.
VERDICT_ORDER: Final[tuple[str, ...]] = ("fail", "inconclusive", "no baseline", "pass", "measured", "skipped")
_SENTENCE_WORDS: Final[Mapping[str, str]] = {
    "pass": "passed", "fail": "regressed", "inconclusive": "inconclusive", "no baseline": "without baseline",
    "measured": "measured only", "skipped": "skipped",
}
# A symbol beside the word: GitHub renders emoji, and the word alone still reads without them.
_MD_SYMBOLS: Final[Mapping[str, str]] = {
    "pass": "✅", "fail": "❌", "inconclusive": "⚠️", "no baseline": "⚪", "measured": "📏", "skipped": "⏭️",
}

Results: TypeAlias = Sequence[Measurement] | Mapping[str, Any] | Sequence[Mapping[str, Any]]


class ResultsFileError(ValueError):
    """A results file (``--npf-json``) that cannot be read; the message names the file and the problem."""


# --- input ------------------------------------------------------------------------------------------


def _pseudo_measurement(reports: Sequence[Mapping[str, Any]]) -> Measurement:
    """Plain ``benchmark()`` reports as one measurement with nothing to compare against."""
    from pytest_neuronperf.baselines.store import config_key

    outcomes: list[dict[str, Any]] = []
    for r in reports:
        try:
            key = config_key(r)
        except ValueError:
            key = "?"
        finished = r.get("status") == fields.STATUS_OK
        outcomes.append({
            "config_key": key, "verdict": "measured" if finished else "skipped", "judgements": [],
            "limit_failures": [], "baseline": None, "baseline_saved_at": None,
            "note": "" if finished else str(r.get("reason") or ""),
        })
    name = next((str(r["model_name"]) for r in reports if r.get("model_name")), "benchmark")
    device = next((str(r["device_type"]) for r in reports if r.get("device_type")), "")
    return Measurement(nodeid=name, name="default", device_type=device, fingerprint={}, verdict="measured",
                       reports=[dict(r) for r in reports], outcomes=outcomes)


def _is_measurement_json(item: Mapping[str, Any]) -> bool:
    return "outcomes" in item and "test" in item


def as_measurements(data: Results) -> list[Measurement]:
    """Measurements from a list of them, a ``--npf-json`` document, or plain ``benchmark()`` reports."""
    if isinstance(data, Mapping):
        if not isinstance(data.get("measurements"), list):
            raise ValueError("expected a results document with a 'measurements' list (as written by --npf-json)")
        return [Measurement.from_json(m) for m in data["measurements"]]
    items: list[object] = list(data)
    measurements = [m for m in items if isinstance(m, Measurement)]
    if len(measurements) == len(items):
        return measurements
    dicts = [dict(m) for m in items if isinstance(m, Mapping)]
    if len(dicts) != len(items):
        raise TypeError("expected Measurement objects, a results document, or report dicts from benchmark()")
    if all(_is_measurement_json(m) for m in dicts):
        return [Measurement.from_json(m) for m in dicts]
    return [_pseudo_measurement(dicts)]


def environment_of(data: Results) -> dict[str, str]:
    """The environment a results document names, else the first measurement's fingerprint."""
    if isinstance(data, Mapping) and isinstance(data.get("environment"), Mapping):
        return {str(k): str(v) for k, v in data["environment"].items()}
    for m in as_measurements(data):
        if m.fingerprint:
            return dict(m.fingerprint)
    return {}


def load_results(path: str | os.PathLike[str], *, allow_reports: bool = True) -> dict[str, Any]:
    """Read and check a ``--npf-json`` file; ResultsFileError says what is wrong with it.

    With ``allow_reports`` a file of plain ``benchmark()`` reports (``write_json``, ``npf run --json``)
    is accepted too, as a document with one measurement.
    """
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8-sig") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise ResultsFileError(f"results file {name} does not exist") from None
    except IsADirectoryError:
        raise ResultsFileError(f"results file {name} is a folder; give the file written by --npf-json") from None
    except UnicodeDecodeError as exc:
        raise ResultsFileError(f"results file {name} is not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ResultsFileError(
            f"results file {name} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except OSError as exc:
        raise ResultsFileError(f"results file {name} cannot be read: {exc.strerror or exc}") from None
    if isinstance(doc, list) and doc and all(isinstance(r, dict) and "n_models" in r for r in doc):
        if not allow_reports:
            raise ResultsFileError(f"results file {name} holds plain benchmark reports without test names; "
                                   "give the file written by pytest --npf-json")
        return {"schema_version": RESULTS_SCHEMA_VERSION, "environment": {},
                "measurements": [_pseudo_measurement(doc).to_json()]}
    problem = _results_problem(doc)
    if problem:
        raise ResultsFileError(f"results file {name} is not a pytest-neuronperf results file: {problem}")
    return doc  # type: ignore[no-any-return]


def _results_problem(doc: object) -> str:
    if not isinstance(doc, dict):
        return "the top level must be an object"
    if "entries" in doc and "measurements" not in doc:
        return "it looks like a baseline file; give the file written by pytest --npf-json"
    version = doc.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        return "it has no integer schema_version"
    if version > RESULTS_SCHEMA_VERSION:
        return (f"schema_version {version} was written by a newer pytest-neuronperf "
                f"(this one reads up to {RESULTS_SCHEMA_VERSION}); upgrade pytest-neuronperf")
    measurements = doc.get("measurements")
    if not isinstance(measurements, list):
        return "'measurements' must be a list"
    for i, m in enumerate(measurements):
        if not isinstance(m, dict):
            return f"measurements[{i}] must be an object"
        missing = [k for k in _MEASUREMENT_KEYS if k not in m]
        if missing:
            return f"measurements[{i}] lacks {', '.join(missing)}"
        if not isinstance(m["reports"], list) or not isinstance(m["outcomes"], list):
            return f"measurements[{i}]: reports and outcomes must be lists"
        if len(m["reports"]) != len(m["outcomes"]):
            return f"measurements[{i}] has {len(m['reports'])} reports but {len(m['outcomes'])} outcomes"
        if not all(isinstance(r, dict) for r in m["reports"] + m["outcomes"]):
            return f"measurements[{i}]: every report and outcome must be an object"
    return ""


# --- shared wording -----------------------------------------------------------------------------------


def measurement_label(m: Measurement) -> str:
    return m.nodeid if m.name == "default" else f"{m.nodeid}[{m.name}]"


def config_label(report: Mapping[str, Any]) -> str:
    """A configuration as people say it: ``2 models x 1 worker, batch 1``."""
    n, w = report.get("n_models"), report.get("workers_per_model")
    text = f"{n} model{'' if n == 1 else 's'} x {w} worker{'' if w == 1 else 's'}, batch {report.get('batch_size')}"
    pipeline = report.get("pipeline_size")
    if pipeline not in (None, 1):
        text += f", pipeline {pipeline}"
    return text


def verdict_counts(measurements: Sequence[Measurement]) -> tuple[Counter[str], Counter[str]]:
    """(verdicts of measurements, verdicts of configurations)."""
    return (Counter(m.verdict for m in measurements),
            Counter(str(o["verdict"]) for m in measurements for o in m.outcomes))


def _ordered(counts: Counter[str]) -> list[tuple[str, int]]:
    known = [(v, counts[v]) for v in VERDICT_ORDER if counts[v]]
    return known + sorted((v, n) for v, n in counts.items() if v not in VERDICT_ORDER and n)


def counts_phrase(counts: Counter[str]) -> str:
    """``1 regressed, 2 passed`` (worst first)."""
    return ", ".join(f"{n} {_SENTENCE_WORDS.get(v, v)}" for v, n in _ordered(counts)) or "none"


def summary_sentence(measurements: Sequence[Measurement]) -> str:
    by_measurement, by_config = verdict_counts(measurements)
    n_m, n_c = len(measurements), sum(by_config.values())
    return (f"{n_m} measurement{'' if n_m == 1 else 's'}: {counts_phrase(by_measurement)}; "
            f"{n_c} configuration{'' if n_c == 1 else 's'}: {counts_phrase(by_config)}.")


def format_number(value: Any) -> str:
    """A measured value for people: 27,052 / 412 / 36.2 / 3.25 / 0.0343; an em dash when unknown."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        return "—"
    v = float(value)
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    if abs(v) >= 1:
        return f"{v:.2f}"
    return f"{v:#.3g}"


def format_change(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value != value:
        return "—"
    return f"{float(value) * 100:+.1f}%"


def age_text(saved_at: str, now: datetime | None = None) -> str:
    """How long ago an ISO-8601 UTC time was, in words: ``just now``, ``5 minutes ago``, ``3 days ago``."""
    try:
        then = datetime.fromisoformat(saved_at.replace("Z", "+00:00"))
    except ValueError:
        return saved_at
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    seconds = ((now or datetime.now(timezone.utc)) - then).total_seconds()
    if seconds < -60:
        return "in the future (clock skew?)"
    for unit, size in (("year", 365 * 86400), ("month", 30 * 86400), ("day", 86400), ("hour", 3600),
                       ("minute", 60)):
        # Days up to two months read better than "1 month"; so do hours up to two days.
        threshold = size * (2 if unit in ("month", "day") else 1)
        if seconds >= threshold:
            n = int(seconds // size)
            return f"{n} {unit}{'' if n == 1 else 's'} ago"
    return "just now"


def judgement(outcome: Mapping[str, Any], metric: str) -> Mapping[str, Any] | None:
    return next((j for j in outcome.get("judgements") or [] if j.get("metric") == metric), None)


def explanations(m: Measurement) -> list[tuple[str, str, str]]:
    """(configuration, kind, sentence) for every judgement that did not pass, limit failure and note.

    ``kind`` is the judgement's verdict, ``fail`` for a limit failure, or ``note``.
    """
    lines: list[tuple[str, str, str]] = []
    for report, outcome in zip(m.reports, m.outcomes, strict=True):
        cfg = config_label(report)
        for j in outcome.get("judgements") or []:
            if j.get("verdict") != "pass":
                hint = f" ({j['hint']})" if j.get("hint") else ""
                lines.append((cfg, str(j.get("verdict")), f"{j.get('message', '')}{hint}"))
        lines.extend((cfg, "fail", str(msg)) for msg in outcome.get("limit_failures") or [])
        if outcome.get("note"):
            lines.append((cfg, "note", str(outcome["note"])))
    return lines


# --- Markdown -----------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    """Table-safe text: no line breaks, pipes escaped, and no HTML for GitHub to interpret."""
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _md_code(text: str) -> str:
    # A code span keeps brackets and underscores of test ids from turning into links or emphasis.
    text = _md_cell(text)
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def md_verdict(verdict: str) -> str:
    symbol = _MD_SYMBOLS.get(verdict)
    return f"{symbol} {verdict}" if symbol else verdict


MD_HEADER: Final = ("| Test | Configuration | Throughput (/s) | vs baseline | p99 (ms) | vs baseline | Verdict |\n"
                    "|:-----|:--------------|----------------:|------------:|---------:|------------:|:--------|")


def markdown_summary(measurements: Results, *, title: str = "neuronperf") -> str:
    """One Markdown table of every configuration: throughput and p99 with their change against the
    baseline, and the verdict; then the reasons for every configuration that did not pass."""
    ms = as_measurements(measurements)
    lines = [f"### {title}", ""]
    if not ms:
        lines.append("No performance measurements in this run.")
        return "\n".join(lines) + "\n"
    lines += [summary_sentence(ms), "", MD_HEADER]
    for m in ms:
        label = _md_code(measurement_label(m))
        for report, outcome in zip(m.reports, m.outcomes, strict=True):
            throughput, p99 = judgement(outcome, "throughput"), judgement(outcome, "p99")
            cells = [
                label, _md_cell(config_label(report)),
                format_number(report.get("throughput_avg")), format_change(throughput and throughput["change"]),
                format_number(report.get("latency_ms_p99")), format_change(p99 and p99["change"]),
                md_verdict(str(outcome.get("verdict"))),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    reasons = [(m, cfg, kind, text) for m in ms for cfg, kind, text in explanations(m)]
    if reasons:
        lines += ["", "<details><summary>Why</summary>", ""]
        lines += [f"- {_md_code(measurement_label(m))}, {_md_cell(cfg)}: **{_md_cell(kind)}**: {_md_cell(text)}"
                  for m, cfg, kind, text in reasons]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def write_markdown(measurements: Results, filename: str | os.PathLike[str]) -> str:
    """Write :func:`markdown_summary` to ``filename`` (replaced atomically); returns the file name."""
    from pytest_neuronperf._util.atomic_write import write_atomic

    name = os.fspath(filename)
    directory = os.path.dirname(os.path.abspath(name))
    os.makedirs(directory, exist_ok=True)
    write_atomic(name, markdown_summary(measurements).encode("utf-8"))
    return name


def append_markdown(measurements: Results, filename: str | os.PathLike[str]) -> str:
    """Append the summary to a file others write too (GitHub's ``$GITHUB_STEP_SUMMARY``)."""
    name = os.fspath(filename)
    with open(name, "a", encoding="utf-8") as fh:
        fh.write(markdown_summary(measurements) + "\n")
    return name
