"""The results of a run: :class:`Measurement` (what one benchmark measurement in one test produced, the
unit the session collects, sends home from xdist workers and saves) and the ``--npf-json`` document
that holds them, which ``npf compare`` and ``npf report`` read back.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from pytest_neuronperf.gate.verdict import Verdict
from pytest_neuronperf.report.figures import FIGURE_KEYS, Figures, figures_of
from pytest_neuronperf.spec import fields
from pytest_neuronperf.spec.matrix import config_key

if TYPE_CHECKING:
    from pytest_neuronperf.gate.evaluate import GateRules

RESULTS_SCHEMA_VERSION: Final = 1
_MEASUREMENT_KEYS: Final = ("test", "measurement", "device_type", "fingerprint", "verdict", "reports", "outcomes")
# The name of a test's measurement when it gives none.
DEFAULT_NAME: Final = "default"
# The columns of a run's CSV: each configuration's test, verdict and shown figures, then its report.
CSV_COLUMNS: Final = ("test", "measurement", "verdict", *FIGURE_KEYS, *fields.CSV_COLS)

@dataclass
class Measurement:
    nodeid: str
    name: str
    device_type: str
    fingerprint: dict[str, str]
    verdict: str
    reports: list[dict[str, Any]]
    outcomes: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    # Where the baseline lives: the test file's path (relative to the rootdir) and the test's name in it.
    module_path: str = ""
    test_name: str = ""
    # Why the measurement produced no verdict (verdict "error"): the exception it ended with.
    error: str = ""
    # What the gate judged with (:func:`judged_with`): tolerance per metric, limits, rounds, strictness.
    judged_with: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        module, _, test = self.nodeid.partition("::")
        self.module_path = self.module_path or module
        self.test_name = self.test_name or test or self.nodeid

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.nodeid, "measurement": self.name, "device_type": self.device_type,
            "fingerprint": dict(self.fingerprint), "verdict": self.verdict, "reports": self.reports,
            "outcomes": self.outcomes, "notes": self.notes, "module": self.module_path, "test_name": self.test_name,
            "error": self.error, "judged_with": self.judged_with,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            nodeid=str(data["test"]), name=str(data["measurement"]), device_type=str(data["device_type"]),
            fingerprint=dict(data["fingerprint"]), verdict=str(data["verdict"]), reports=list(data["reports"]),
            outcomes=list(data["outcomes"]), notes=list(data.get("notes") or []),
            module_path=str(data.get("module") or ""), test_name=str(data.get("test_name") or ""),
            error=str(data.get("error") or ""),
            judged_with=dict(data.get("judged_with") or {}),
        )

    @property
    def errored(self) -> bool:
        """The measurement ended with an exception (its ``error``) instead of a verdict."""
        return bool(self.error) or self.verdict == Verdict.ERROR

    def error_text(self) -> str:
        return self.error or "the measurement raised before it could be judged"

    def pairs(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(report, outcome) per configuration. A measurement that errored before it was judged may hold
        reports without outcomes: those get an outcome with the measurement's verdict and error."""
        out = []
        for i, report in enumerate(self.reports):
            if i < len(self.outcomes):
                out.append((report, self.outcomes[i]))
            else:
                # No note: the measurement's own error is listed once, not once per configuration.
                out.append((report, {"config_key": "", "verdict": self.verdict, "judgements": [],
                                     "limit_failures": [], "baseline": None, "baseline_saved_at": None,
                                     "note": ""}))
        return out

    @property
    def first_rounds(self) -> int | None:
        """The rounds each configuration had at the gate's first look (None when not recorded)."""
        value = self.judged_with.get("rounds")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def figures(self) -> list[Figures]:
        """The shown figures of each configuration (:mod:`~pytest_neuronperf.report.figures`)."""
        return [figures_of(report, outcome, self.first_rounds) for report, outcome in self.pairs()]

    def flat_rows(self) -> list[dict[str, Any]]:
        """One row per configuration: the report with the test, measurement, verdict and shown figures beside it.

        A measurement that errored with no report at all still gets a row, with its error as the
        reason, so that every result file lists it.
        """
        rows = []
        if not self.reports and self.errored:
            rows.append({**{k: None for k in (*fields.RUN_KEYS, *FIGURE_KEYS)}, "test": self.nodeid,
                         "measurement": self.name, "verdict": Verdict.ERROR.value, "status": fields.STATUS_ERROR,
                         "reason": self.error_text()})
        for (report, outcome), shown in zip(self.pairs(), self.figures(), strict=True):
            rows.append({
                "test": self.nodeid, "measurement": self.name, "verdict": outcome.get("verdict"),
                **shown.as_dict(),
                **{k: v for k, v in report.items() if k not in fields.LIST_KEYS},
            })
        return rows

    @property
    def label(self) -> str:
        return label_of(self.nodeid, self.name)


def judged_with(rules: GateRules, *, tolerance_from_test: bool, fingerprint_keys: Sequence[str]) -> dict[str, Any]:
    """What a measurement was judged with, as the results file records it: ``npf compare`` judges the
    same data with the same rules (a test's own tolerance and limits, the rounds of the first look and
    the most rounds, strictness, alpha)."""
    from pytest_neuronperf.spec.metrics import METRICS

    looks = rules.looks
    return {
        "tolerance": {m.name: rules.tolerance.for_metric(m.name) for m in METRICS},
        "tolerance_from": "test" if tolerance_from_test else "session",
        "limits": dict(rules.limits.values),
        "rounds": None if looks is None else looks.first,
        "max_rounds": None if looks is None else looks.last,
        "alpha": None if looks is None else looks.alpha,
        "beta": None if looks is None else looks.beta,
        "strict": rules.strict,
        "require_baseline": rules.require_baseline,
        "compare": rules.compare,
        "paired": rules.paired,
        "against": rules.against,
        "fingerprint_keys": list(fingerprint_keys),
    }


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def label_of(nodeid: str, name: str) -> str:
    """A measurement as reports name it: the test id, with ``[name]`` unless it is the default one."""
    return nodeid if name == DEFAULT_NAME else f"{nodeid}[{name}]"


def measurement_label(m: Measurement) -> str:
    return m.label


def results_document(measurements: Sequence[Measurement], environment: Mapping[str, str]) -> dict[str, Any]:
    """The ``--npf-json`` document of a run."""
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "environment": dict(environment),
        "measurements": [{**m.to_json(), "figures": [f.as_dict() for f in m.figures()]} for m in measurements],
    }


Results: TypeAlias = Sequence[Measurement] | Mapping[str, Any] | Sequence[Mapping[str, Any]]


class ResultsFileError(ValueError):
    """A results file (``--npf-json``) that cannot be read; the message names the file and the problem."""


# --- input ------------------------------------------------------------------------------------------


def _pseudo_measurement(reports: Sequence[Mapping[str, Any]]) -> Measurement:
    """Plain ``benchmark()`` reports as one measurement with nothing to compare against."""
    outcomes: list[dict[str, Any]] = []
    for r in reports:
        try:
            key = config_key(r)
        except ValueError:
            key = "?"
        status = r.get("status")
        verdict = {fields.STATUS_OK: Verdict.MEASURED, fields.STATUS_ERROR: Verdict.ERROR,
                   fields.STATUS_OVERLOADED: Verdict.ERROR}.get(
            str(status), Verdict.SKIPPED)
        outcomes.append({
            "config_key": key, "verdict": verdict.value,
            "judgements": [],
            "limit_failures": [], "baseline": None, "baseline_saved_at": None,
            "note": "" if verdict is Verdict.MEASURED else str(r.get("reason") or ""),
        })
    name = next((str(r["model_name"]) for r in reports if r.get("model_name")), "benchmark")
    device = next((str(r["device_type"]) for r in reports if r.get("device_type")), "")
    # A configuration that could not be measured fails the whole, as it does in the gate.
    errored = any(o["verdict"] == Verdict.ERROR for o in outcomes)
    return Measurement(nodeid=name, name=DEFAULT_NAME, device_type=device, fingerprint={},
                       verdict=(Verdict.FAIL if errored else Verdict.MEASURED).value,
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
    is accepted too, as a document with one measurement. Everything the gate and the report writers
    read is checked here, so a malformed file is reported by path and problem, never by a traceback.
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
    except RecursionError:
        raise ResultsFileError(f"results file {name} nests lists or objects too deeply to be read; "
                               "give the file written by --npf-json") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ResultsFileError(f"results file {name} is not valid JSON ({exc})") from None
    except OSError as exc:
        raise ResultsFileError(f"results file {name} cannot be read: {exc.strerror or exc}") from None
    if isinstance(doc, list) and doc and all(isinstance(r, dict) and "n_models" in r for r in doc):
        if not allow_reports:
            raise ResultsFileError(f"results file {name} holds plain benchmark reports without test names; "
                                   "give the file written by pytest --npf-json")
        problem = next((p for j, r in enumerate(doc) if (p := _report_problem(f"[{j}]", r))), "")
        if problem:
            raise ResultsFileError(f"results file {name} holds malformed benchmark reports: {problem}")
        return {"schema_version": RESULTS_SCHEMA_VERSION, "environment": {},
                "measurements": [_pseudo_measurement(doc).to_json()]}
    problem = _results_problem(doc)
    if problem:
        raise ResultsFileError(f"results file {name} is not a pytest-neuronperf results file: {problem}")
    return doc  # type: ignore[no-any-return]


def _kind(value: object) -> str:
    """What a JSON value is, for a message: ``a string``, ``the number 5``, ``null``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _finite(value: object) -> bool:
    return _is_number(value) and math.isfinite(float(value))  # type: ignore[arg-type]


def _expect(where: str, value: object, what: str, ok: bool) -> str:
    return "" if ok else f"{where} must be {what}, got {_kind(value)}"


def _optional_str(where: str, value: object) -> str:
    return _expect(where, value, "a string", value is None or isinstance(value, str))


def _pairs_problem(where: str, value: object, *, null_values: bool) -> str:
    """A list of [number, number] points (the second may be null where ``null_values``)."""
    if not isinstance(value, list):
        return _expect(where, value, "a list of [x, y] points", False)
    for k, point in enumerate(value):
        good = (isinstance(point, list) and len(point) == 2 and _finite(point[0])
                and (_finite(point[1]) or (null_values and point[1] is None)))
        if not good:
            return _expect(f"{where}[{k}]", point, "a pair of numbers", False)
    return ""


def _rounds_problem(where: str, rounds: object) -> str:
    from pytest_neuronperf.stats.rounds import RoundSummary

    if not isinstance(rounds, list):
        return _expect(where, rounds, "a list of round summaries", False)
    for k, data in enumerate(rounds):
        at = f"{where}[{k}]"
        if not isinstance(data, dict):
            return _expect(at, data, "an object (a round summary)", False)
        try:
            summary = RoundSummary.from_dict(data)
        except ValueError as exc:
            return f"{at}: {exc}"
        for attr in ("throughput", "p50_ms", "p99_ms", "duration_s"):
            value = getattr(summary, attr)
            if not (math.isfinite(value) and value > 0):
                return f"{at}.{attr} must be a positive, finite number, got {value!r}"
        if summary.n < 1:
            return f"{at}.n must be at least 1 (a round that timed nothing has no summary), got {summary.n}"
    return ""


def _report_problem(where: str, report: object) -> str:
    if not isinstance(report, dict):
        return _expect(where, report, "an object (a configuration's report)", False)
    for key in fields.MATRIX_KEYS:
        value = report.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{where}.{key} must be a whole number, got {_kind(value)}"
    for key in ("status", "reason", "model_name", "device_type"):
        problem = _optional_str(f"{where}.{key}", report.get(key))
        if problem:
            return problem
    if report.get(fields.ROUNDS_KEY) is not None:
        problem = _rounds_problem(f"{where}.{fields.ROUNDS_KEY}", report[fields.ROUNDS_KEY])
        if problem:
            return problem
    return _distributions_problem(where, report) or next(
        (p for key in TIMELINE_KEYS if (p := _timeline_problem(f"{where}.{key}", report.get(key)))), "")


# The distributions a report (and a baseline's record of it) holds as [[percentile, ms], ...], and the rates over
# time it holds per round as [[seconds, rate], ...]: what the report writers plot.
CDF_KEYS: Final = (fields.CDF_KEY, fields.TTFT_CDF_KEY, fields.ITL_CDF_KEY)
TIMELINE_KEYS: Final = (fields.TIMELINE_KEY, fields.TOKENS_TIMELINE_KEY)


def _distributions_problem(where: str, report: Mapping[str, Any]) -> str:
    for key in CDF_KEYS:
        if report.get(key) is not None:
            # A percentile with no sample yet is null.
            problem = _pairs_problem(f"{where}.{key}", report[key], null_values=True)
            if problem:
                return problem
    return ""


def _timeline_problem(where: str, timeline: object) -> str:
    if timeline is None:
        return ""
    if not isinstance(timeline, list):
        return _expect(where, timeline, "a list (one list of points per round)", False)
    return next((p for k, points in enumerate(timeline)
                 if (p := _pairs_problem(f"{where}[{k}]", points, null_values=False))), "")


def _judgement_problem(where: str, j: object) -> str:
    if not isinstance(j, dict):
        return _expect(where, j, "an object (a metric's judgement)", False)
    for key in ("metric", "verdict"):
        if not isinstance(j.get(key), str):
            return f"{where}.{key} must be a string, got {_kind(j.get(key))}"
    for key in ("message", "hint", "rule"):
        problem = _optional_str(f"{where}.{key}", j.get(key))
        if problem:
            return problem
    for key in ("baseline", "current", "change", "tolerance", "p_value"):
        value = j.get(key)
        if value is not None and not _is_number(value):
            return f"{where}.{key} must be a number, got {_kind(value)}"
    for key in ("baseline_ci", "current_ci", "change_ci"):
        value = j.get(key)
        if value is not None and not (isinstance(value, list) and len(value) == 2 and all(map(_is_number, value))):
            return f"{where}.{key} must be a pair of numbers, got {_kind(value)}"
    return ""


def _outcome_problem(where: str, outcome: object) -> str:
    if not isinstance(outcome, dict):
        return _expect(where, outcome, "an object (a configuration's outcome)", False)
    if not isinstance(outcome.get("verdict"), str):
        return f"{where}.verdict must be a string, got {_kind(outcome.get('verdict'))}"
    for key in ("note", "config_key", "baseline_saved_at"):
        problem = _optional_str(f"{where}.{key}", outcome.get(key))
        if problem:
            return problem
    baseline = outcome.get("baseline")
    if baseline is not None and not isinstance(baseline, dict):
        return _expect(f"{where}.baseline", baseline, "an object (the baseline's report) or null", False)
    if isinstance(baseline, dict):
        problem = _distributions_problem(f"{where}.baseline", baseline)
        if problem:
            return problem
    for key, item_problem in (("judgements", _judgement_problem),
                              ("limit_failures", lambda at, v: _expect(at, v, "a string", isinstance(v, str)))):
        items = outcome.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            return _expect(f"{where}.{key}", items, "a list", False)
        problem = next((p for k, item in enumerate(items) if (p := item_problem(f"{where}.{key}[{k}]", item))), "")
        if problem:
            return problem
    return ""


def _measurement_problem(where: str, m: object) -> str:
    if not isinstance(m, dict):
        return f"{where} must be an object"
    missing = [k for k in _MEASUREMENT_KEYS if k not in m]
    if missing:
        return f"{where} lacks {', '.join(missing)}"
    for key in ("test", "measurement", "device_type", "verdict"):
        if not isinstance(m[key], str):
            return f"{where}.{key} must be a string, got {_kind(m[key])}"
    for key in ("module", "test_name", "error"):
        problem = _optional_str(f"{where}.{key}", m.get(key))
        if problem:
            return problem
    fingerprint = m["fingerprint"]
    if not isinstance(fingerprint, dict) or not all(isinstance(v, str) for v in fingerprint.values()):
        return _expect(f"{where}.fingerprint", fingerprint, "an object of strings (the environment)", False)
    judged = m.get("judged_with")
    if judged is not None and not isinstance(judged, dict):
        return _expect(f"{where}.judged_with", judged, "an object (what the gate judged with)", False)
    notes = m.get("notes")
    if notes is not None and not (isinstance(notes, list) and all(isinstance(n, str) for n in notes)):
        return _expect(f"{where}.notes", notes, "a list of strings", False)
    if not isinstance(m["reports"], list) or not isinstance(m["outcomes"], list):
        return f"{where}: reports and outcomes must be lists"
    # A measurement that raised before it was judged may have reports without outcomes.
    if len(m["reports"]) != len(m["outcomes"]) and not (m["verdict"] == Verdict.ERROR
                                                         and len(m["outcomes"]) < len(m["reports"])):
        return f"{where} has {len(m['reports'])} reports but {len(m['outcomes'])} outcomes"
    if not all(isinstance(r, dict) for r in m["reports"] + m["outcomes"]):
        return f"{where}: every report and outcome must be an object"
    for k, report in enumerate(m["reports"]):
        problem = _report_problem(f"{where}.reports[{k}]", report)
        if problem:
            return problem
    for k, outcome in enumerate(m["outcomes"]):
        problem = _outcome_problem(f"{where}.outcomes[{k}]", outcome)
        if problem:
            return problem
    return ""


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
    environment = doc.get("environment")
    if environment is not None and not isinstance(environment, dict):
        return _expect("environment", environment, "an object", False)
    measurements = doc.get("measurements")
    if not isinstance(measurements, list):
        return "'measurements' must be a list"
    for i, m in enumerate(measurements):
        problem = _measurement_problem(f"measurements[{i}]", m)
        if problem:
            return problem
    return ""
