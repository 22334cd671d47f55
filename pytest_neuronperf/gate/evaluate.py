"""One measurement's reports judged against its baselines and absolute limits (no pytest, no I/O).

The plugin looks baselines up and hands them in; this module turns reports +
baselines into per-configuration outcomes, a test-level verdict and the
failure message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_neuronperf.baselines.store import BaselineRecord, Lookup, config_key
from pytest_neuronperf.config.settings import Tolerance
from pytest_neuronperf.gate import judge as gate
from pytest_neuronperf.spec import fields
from pytest_neuronperf.stats.quantiles import RoundSummary

METRICS = ("throughput", "p99", "p50")

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
NO_BASELINE, SKIPPED, MEASURED = "no baseline", "skipped", "measured"


@dataclass(frozen=True)
class Limits:
    min_throughput: float | None = None
    max_p50_ms: float | None = None
    max_p99_ms: float | None = None

    def any(self) -> bool:
        return any(v is not None for v in (self.min_throughput, self.max_p50_ms, self.max_p99_ms))

    def describe(self, metric: str) -> str:
        value = {"throughput": self.min_throughput, "p50": self.max_p50_ms, "p99": self.max_p99_ms}[metric]
        if value is None:
            return ""
        return f">= {value:g}/s" if metric == "throughput" else f"<= {value:g} ms"


@dataclass
class ConfigOutcome:
    """What one configuration's report was judged to be."""

    key: str
    report: dict[str, Any]
    verdict: str
    judgements: list[gate.Judgement] = field(default_factory=list)
    limit_failures: list[str] = field(default_factory=list)
    baseline: BaselineRecord | None = None
    note: str = ""

    @property
    def improved(self) -> bool:
        return any(j.improved for j in self.judgements)

    def judgement(self, metric: str) -> gate.Judgement | None:
        return next((j for j in self.judgements if j.metric == metric), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config_key": self.key,
            "verdict": self.verdict,
            "judgements": [j.to_dict() for j in self.judgements],
            "limit_failures": list(self.limit_failures),
            "baseline": None if self.baseline is None else self.baseline.report,
            "baseline_saved_at": None if self.baseline is None else self.baseline.saved_at,
            "note": self.note,
        }


def rounds_of(report: Mapping[str, Any]) -> list[RoundSummary]:
    return [RoundSummary.from_dict(r) for r in report.get(fields.ROUNDS_KEY) or []]


def evaluate(
    reports: Sequence[dict[str, Any]],
    lookups: Mapping[str, Lookup | None],
    *,
    tolerance: Tolerance,
    limits: Limits,
    compare: bool,
) -> list[ConfigOutcome]:
    """Judge every finished report: absolute limits always, baselines when ``compare`` and one was found.

    ``lookups`` maps a configuration key to its baseline lookup (None when comparison is off).
    Holm's correction runs across every configuration x metric of the measurement.
    """
    outcomes: list[ConfigOutcome] = []
    for report in reports:
        key = config_key(report)
        if report.get("status") != fields.STATUS_OK:
            outcomes.append(ConfigOutcome(key, report, SKIPPED, note=str(report.get("reason") or "")))
            continue
        outcome = ConfigOutcome(key, report, MEASURED)
        outcome.limit_failures = gate.check_limits(report, limits.min_throughput, limits.max_p50_ms,
                                                   limits.max_p99_ms)
        lookup = lookups.get(key)
        if compare and lookup is not None:
            if lookup.record is None:
                outcome.verdict = NO_BASELINE
                outcome.note = lookup.explain()
            else:
                outcome.baseline = lookup.record
                base = [RoundSummary.from_dict(r) for r in lookup.record.rounds]
                current = rounds_of(report)
                if base and current:
                    outcome.judgements = [
                        gate.judge_metric(m, base, current, tolerance.for_metric(m)) for m in METRICS
                    ]
        outcomes.append(outcome)
    _correct(outcomes)
    for o in outcomes:
        if o.verdict == SKIPPED:
            continue
        if o.judgements:
            o.verdict = gate.decide(o.judgements).value
            if o.improved and o.verdict != FAIL:
                o.note = "faster than the baseline beyond the tolerance: the baseline looks stale " \
                         "(record the new normal with --npf-save-baseline)"
        if o.limit_failures:
            o.verdict = FAIL
    return outcomes


def _correct(outcomes: list[ConfigOutcome]) -> None:
    flat = [(o, j) for o in outcomes for j in o.judgements]
    if not flat:
        return
    corrected = gate.correct_multiple([j for _, j in flat])
    for o in outcomes:
        o.judgements = []
    for (o, _), j in zip(flat, corrected, strict=True):
        o.judgements.append(j)


def needs_confirmation(outcomes: Sequence[ConfigOutcome]) -> list[ConfigOutcome]:
    """The configurations whose statistical verdict more rounds could change."""
    return [o for o in outcomes if o.judgements and gate.needs_confirmation(o.judgements)]


def test_verdict(outcomes: Sequence[ConfigOutcome], *, strict: bool, require_baseline: bool) -> str:
    verdicts = {o.verdict for o in outcomes}
    if FAIL in verdicts or (require_baseline and NO_BASELINE in verdicts):
        return FAIL
    if INCONCLUSIVE in verdicts:
        return FAIL if strict else INCONCLUSIVE
    return PASS


def describe_config(report: Mapping[str, Any]) -> str:
    return (f"n_models={report.get('n_models')} workers={report.get('workers_per_model')} "
            f"batch={report.get('batch_size')} pipeline={report.get('pipeline_size')}")


def failure_message(name: str, outcomes: Sequence[ConfigOutcome], limits: Limits, *, strict: bool,
                    require_baseline: bool) -> str:
    """The table and plain-words lines shown when a measurement fails its gate."""
    rows: list[dict[str, str]] = []
    lines: list[str] = []
    for o in outcomes:
        cfg = describe_config(o.report)
        for j in o.judgements:
            if j.verdict is not gate.Verdict.PASS or strict:
                row = gate.table_row(cfg, j)
                row["limit"] = limits.describe(j.metric)
                rows.append(row)
                lines.append(f"{cfg}: {j.message}" + (f" ({j.hint})" if j.hint else ""))
        for msg in o.limit_failures:
            rows.append({"configuration": cfg, "metric": msg.split(" ", 1)[0], "verdict": "fail",
                         "current": msg})
            lines.append(f"{cfg}: {msg}")
        if o.verdict == NO_BASELINE and require_baseline:
            lines.append(f"{cfg}: {o.note} (--npf-require-baseline is set; record one with --npf-save-baseline)")
    head = f"performance regression in measurement {name!r}:"
    table = gate.format_table(rows) if rows else ""
    return "\n".join(part for part in (head, table, "\n".join(lines)) if part)
