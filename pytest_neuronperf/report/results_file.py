"""The results of a run: :class:`Measurement` (what one benchmark measurement in one test produced, the
unit the session collects, sends home from xdist workers and saves) and the ``--npf-json`` document
that holds them, which ``npf compare`` and ``npf report`` read back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

from pytest_neuronperf.gate.verdict import Verdict
from pytest_neuronperf.spec import fields
from pytest_neuronperf.spec.matrix import config_key

RESULTS_SCHEMA_VERSION: Final = 1
_MEASUREMENT_KEYS: Final = ("test", "measurement", "device_type", "fingerprint", "verdict", "reports", "outcomes")
# The name of a test's measurement when it gives none.
DEFAULT_NAME: Final = "default"

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

    def __post_init__(self) -> None:
        module, _, test = self.nodeid.partition("::")
        self.module_path = self.module_path or module
        self.test_name = self.test_name or test or self.nodeid

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.nodeid, "measurement": self.name, "device_type": self.device_type,
            "fingerprint": dict(self.fingerprint), "verdict": self.verdict, "reports": self.reports,
            "outcomes": self.outcomes, "notes": self.notes, "module": self.module_path, "test_name": self.test_name,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            nodeid=str(data["test"]), name=str(data["measurement"]), device_type=str(data["device_type"]),
            fingerprint=dict(data["fingerprint"]), verdict=str(data["verdict"]), reports=list(data["reports"]),
            outcomes=list(data["outcomes"]), notes=list(data.get("notes") or []),
            module_path=str(data.get("module") or ""), test_name=str(data.get("test_name") or ""),
            error=str(data.get("error") or ""),
        )

    def flat_rows(self) -> list[dict[str, Any]]:
        """One row per configuration: the report with the test, measurement and verdict beside it."""
        rows = []
        for report, outcome in zip(self.reports, self.outcomes, strict=True):
            throughput = next((j for j in outcome["judgements"] if j["metric"] == "throughput"), None)
            p99 = next((j for j in outcome["judgements"] if j["metric"] == "p99"), None)
            rows.append({
                "test": self.nodeid, "measurement": self.name, "verdict": outcome["verdict"],
                "baseline_throughput": throughput["baseline"] if throughput else None,
                "throughput_change": throughput["change"] if throughput else None,
                "baseline_p99_ms": p99["baseline"] if p99 else None,
                "p99_change": p99["change"] if p99 else None,
                **{k: v for k, v in report.items() if k not in fields.LIST_KEYS},
            })
        return rows

    @property
    def label(self) -> str:
        return label_of(self.nodeid, self.name)


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
        "measurements": [m.to_json() for m in measurements],
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
        finished = r.get("status") == fields.STATUS_OK
        outcomes.append({
            "config_key": key, "verdict": (Verdict.MEASURED if finished else Verdict.SKIPPED).value,
            "judgements": [],
            "limit_failures": [], "baseline": None, "baseline_saved_at": None,
            "note": "" if finished else str(r.get("reason") or ""),
        })
    name = next((str(r["model_name"]) for r in reports if r.get("model_name")), "benchmark")
    device = next((str(r["device_type"]) for r in reports if r.get("device_type")), "")
    return Measurement(nodeid=name, name=DEFAULT_NAME, device_type=device, fingerprint={},
                       verdict=Verdict.MEASURED.value, reports=[dict(r) for r in reports], outcomes=outcomes)


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


