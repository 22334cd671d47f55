"""What one benchmark measurement in one test produced: the unit the session collects and saves."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_neuronperf.spec import fields

# The report fields kept in a baseline file: enough for people reading a diff, not every detail.
BASELINE_REPORT_KEYS: tuple[str, ...] = (
    "model_name", "device_type", "batch_size", "n_models", "workers_per_model", "pipeline_size",
    "throughput_avg", "throughput_peak", *fields.LATENCY_KEYS, "latency_samples", "duration", fields.CDF_KEY,
)


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

    def __post_init__(self) -> None:
        module, _, test = self.nodeid.partition("::")
        self.module_path = self.module_path or module
        self.test_name = self.test_name or test or self.nodeid

    def to_json(self) -> dict[str, Any]:
        return {
            "test": self.nodeid, "measurement": self.name, "device_type": self.device_type,
            "fingerprint": dict(self.fingerprint), "verdict": self.verdict, "reports": self.reports,
            "outcomes": self.outcomes, "notes": self.notes, "module": self.module_path, "test_name": self.test_name,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        return cls(
            nodeid=str(data["test"]), name=str(data["measurement"]), device_type=str(data["device_type"]),
            fingerprint=dict(data["fingerprint"]), verdict=str(data["verdict"]), reports=list(data["reports"]),
            outcomes=list(data["outcomes"]), notes=list(data.get("notes") or []),
            module_path=str(data.get("module") or ""), test_name=str(data.get("test_name") or ""),
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
