"""Judge one measurement: its reports against their references and absolute limits (no pytest, no files).

The one "judge a measurement" service: the ``npf_bench`` fixture and ``npf compare`` both call
:func:`judge_measurement` with the reports of a measurement and the reference found for each
configuration (a stored baseline today), and show what it returns.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pytest_neuronperf.gate import judge
from pytest_neuronperf.gate.sequential import Looks
from pytest_neuronperf.gate.tolerance import Tolerance
from pytest_neuronperf.gate.verdict import Verdict, combine
from pytest_neuronperf.gate.wording import ci_pct, pct, tolerance_text
from pytest_neuronperf.spec.fields import ROUNDS_KEY, STATUS_ERROR, STATUS_INVALID, STATUS_OK, STATUS_OVERLOADED
from pytest_neuronperf.spec.matrix import config_key, config_text
from pytest_neuronperf.spec.metrics import BY_NAME, LIMIT_KEYWORDS, METRICS
from pytest_neuronperf.stats.rounds import RoundSummary

STALE_NOTE = ("faster than the baseline beyond the tolerance: the baseline looks stale "
              "(record the new normal with --npf-save-baseline)")
EMPTY_BASELINE_NOTE = ("the baseline entry holds no rounds, so nothing could be compared "
                       "(re-record it with --npf-save-baseline)")
NO_CURRENT_ROUNDS_NOTE = "this run's report holds no rounds, so nothing could be compared"
_BY_LIMIT = {m.limit_keyword: m for m in METRICS}


class Reference(Protocol):
    """What a configuration is compared with: per-round summaries, and a report for people."""

    @property
    def rounds(self) -> Sequence[Mapping[str, object]]: ...

    @property
    def report(self) -> Mapping[str, object]: ...

    @property
    def saved_at(self) -> str: ...


class ReferenceLookup(Protocol):
    """The search for one configuration's reference (a :class:`~pytest_neuronperf.baselines.store.Lookup`)."""

    @property
    def record(self) -> Reference | None: ...

    def explain(self) -> str: ...


@dataclass(frozen=True)
class MeasuredReference:
    """A reference measured in this run, round for round beside the current model (an A/B comparison)."""

    report: Mapping[str, object]
    saved_at: str = ""

    @property
    def rounds(self) -> Sequence[Mapping[str, object]]:
        rounds = self.report.get(ROUNDS_KEY)
        return rounds if isinstance(rounds, list) else []


@dataclass(frozen=True)
class MeasuredLookup:
    """The reference of one configuration of an A/B run, or why there is none (a model new in this change)."""

    record: MeasuredReference | None
    why_none: str = ""

    def explain(self) -> str:
        return self.why_none


class Limits:
    """Absolute bounds by the metrics' limit keywords (``min_throughput=500``, ``max_p99_ms=5``)."""

    __slots__ = ("values",)

    def __init__(self, **values: float | None) -> None:
        unknown = sorted(set(values) - set(LIMIT_KEYWORDS))
        if unknown:
            raise TypeError(f"unknown limit(s) {', '.join(unknown)}; known: {', '.join(LIMIT_KEYWORDS)}")
        self.values: dict[str, float] = {k: limit_value(k, v) for k, v in values.items() if v is not None}

    @classmethod
    def take(cls, params: dict[str, Any]) -> Limits:
        """The limits among ``params``, removed from it."""
        return cls(**{k: params.pop(k) for k in LIMIT_KEYWORDS if k in params})

    def any(self) -> bool:
        return bool(self.values)

    def describe(self, metric: str) -> str:
        spec = BY_NAME[metric]
        value = self.values.get(spec.limit_keyword)
        return "" if value is None else spec.describe_limit(value)


def limit_value(keyword: str, value: object) -> float:
    """An absolute limit as a float; ValueError naming ``keyword`` unless it is a positive finite number."""
    # A limit of 0, below 0, NaN or infinity bounds nothing (or everything): it is a typo, not a gate.
    # numbers.Real, so numpy scalars pass; bool is an int, but True is no limit.
    example = "500 (inferences/s)" if _BY_LIMIT[keyword].limit_is_minimum else "5.0 (ms)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{keyword} must be a positive finite number such as {example}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GateRules:
    """How a measurement is judged."""

    tolerance: Tolerance = field(default_factory=Tolerance)
    limits: Limits = field(default_factory=Limits)
    compare: bool = True
    strict: bool = False
    require_baseline: bool = False
    # How hints name the duration to set: "duration" (the runner's parameter) or "--npf-duration".
    duration_name: str = judge.DURATION_NAME
    # How hints name the bound on rounds: "--npf-max-rounds" (the plugin's) or a command's own option.
    max_rounds_name: str = judge.MAX_ROUNDS_NAME
    # The sequential schedule (None: one look at however many rounds there are).
    looks: Looks | None = None
    # The reference was measured in this run, round for round beside the current rounds (A/B).
    paired: bool = False
    # How messages name the reference instead of "baseline": "at origin/main (3f2a9c1)".
    against: str | None = None


@dataclass
class ConfigOutcome:
    """What one configuration's report was judged to be."""

    key: str
    report: dict[str, Any]
    verdict: Verdict
    judgements: list[judge.Judgement] = field(default_factory=list)
    limit_failures: list[str] = field(default_factory=list)
    baseline: Reference | None = None
    note: str = ""

    @property
    def improved(self) -> bool:
        return any(j.improved for j in self.judgements)

    def judgement(self, metric: str) -> judge.Judgement | None:
        return next((j for j in self.judgements if j.metric == metric), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config_key": self.key,
            "verdict": self.verdict.value,
            "judgements": [j.to_dict() for j in self.judgements],
            "limit_failures": list(self.limit_failures),
            "baseline": None if self.baseline is None else dict(self.baseline.report),
            "baseline_saved_at": None if self.baseline is None else self.baseline.saved_at,
            "note": self.note,
        }


def rounds_of(report: Mapping[str, Any]) -> list[RoundSummary]:
    return [RoundSummary.from_dict(r) for r in report.get(ROUNDS_KEY) or []]


@dataclass
class MeasurementJudgement:
    """The outcome of every configuration of one measurement, the measurement's verdict and its wording."""

    name: str
    outcomes: list[ConfigOutcome]
    rules: GateRules

    @property
    def verdict(self) -> Verdict:
        if self.compared_nothing:
            return Verdict.FAIL
        return combine((o.verdict for o in self.outcomes), strict=self.rules.strict,
                       require_baseline=self.rules.require_baseline)

    @property
    def compared_nothing(self) -> bool:
        """Baselines are required, yet not one configuration was compared with one (every configuration
        skipped, errored or without usable rounds): a gate that judged nothing must not pass."""
        return (self.rules.require_baseline and self.rules.compare
                and not any(o.judgements for o in self.outcomes))

    @property
    def errors(self) -> list[str]:
        """One line per configuration that could not be measured: configuration and reason."""
        return [f"{config_text(o.report)}: error: {o.note}" for o in self.outcomes if o.verdict is Verdict.ERROR]

    @property
    def notes(self) -> list[str]:
        """Notes for people; an errored configuration's reason is an error (:attr:`errors`), not a note."""
        return [f"{config_text(o.report)}: {o.note}" for o in self.outcomes
                if o.note and o.verdict is not Verdict.ERROR]

    def needing_confirmation(self) -> list[ConfigOutcome]:
        """The configurations whose statistical verdict more rounds could change: none of their metrics
        failed, and one is inconclusive for want of rounds (not for want of samples in each round)."""
        return [o for o in self.outcomes if o.judgements and judge.needs_confirmation(o.judgements)]

    def inconclusive_lines(self) -> list[str]:
        """One line per inconclusive metric: configuration, message and hint."""
        return [f"{config_text(o.report)}: {j.message}" + (f" ({j.hint})" if j.hint else "")
                for o in self.outcomes for j in o.judgements if j.verdict is Verdict.INCONCLUSIVE]

    def failure_message(self) -> str:
        """The table and plain-words lines shown when the measurement fails its gate."""
        strict, limits = self.rules.strict, self.rules.limits
        rows: list[dict[str, str]] = []
        lines: list[str] = []
        for o in self.outcomes:
            cfg = config_text(o.report)
            for j in o.judgements:
                if j.verdict is not Verdict.PASS or strict:
                    row = judge.table_row(cfg, j)
                    row["limit"] = limits.describe(j.metric)
                    rows.append(row)
                    lines.append(f"{cfg}: {j.message}" + (f" ({j.hint})" if j.hint else ""))
            for msg in o.limit_failures:
                rows.append({"configuration": cfg, "metric": msg.split(" ", 1)[0], "verdict": Verdict.FAIL.value,
                             "current": msg})
                lines.append(f"{cfg}: {msg}")
            if o.verdict is Verdict.NO_BASELINE and self.rules.require_baseline:
                lines.append(f"{cfg}: {o.note} (--npf-require-baseline is set; record one with --npf-save-baseline)")
            if o.verdict is Verdict.ERROR:
                lines.append(f"{cfg}: error: {o.note}")
        if self.compared_nothing:
            lines.append(self._nothing_compared_line())
        shown = [j for o in self.outcomes for j in o.judgements if j.verdict is not Verdict.PASS or strict]
        if any(j.pooled_over_rounds for j in shown):
            pooled = ("; a paired percentile is that of all the side's requests, pooled over its rounds"
                      if any(j.pooled_percentile for j in shown) else "")
            lines.insert(0, "(baseline and current are the gate's estimates: geometric means of the per-round "
                            f"values over every round each side has{pooled}; the figures every report shows)")
        head = self._failure_head()
        table = judge.format_table(rows) if rows else ""
        return "\n".join(part for part in (head, table, "\n".join(lines)) if part)

    def _failure_head(self) -> str:
        """Name what failed: a regression only where the data showed one (a limit or a failed comparison)."""
        verdicts = {o.verdict for o in self.outcomes}
        if Verdict.FAIL in verdicts:
            return f"performance regression in measurement {self.name!r}:"
        if Verdict.INCONCLUSIVE in verdicts and self.rules.strict:
            return (f"measurement {self.name!r} was not shown to be within its tolerance "
                    "(--npf-strict fails an inconclusive verdict):")
        if self.rules.require_baseline and (Verdict.NO_BASELINE in verdicts or self.compared_nothing):
            return f"measurement {self.name!r} has no baseline to compare with (--npf-require-baseline is set):"
        return f"measurement {self.name!r} was not judged:"

    def inconclusive_summary(self) -> str:
        """Every inconclusive metric of the measurement in one line: each configuration's changes with
        their intervals, the tolerance once when all share it, then each distinct hint once (the same hint
        repeated per metric says nothing new)."""
        undecided = [(o, [j for j in o.judgements if j.verdict is Verdict.INCONCLUSIVE]) for o in self.outcomes]
        undecided = [(o, js) for o, js in undecided if js]
        tolerances = {j.tolerance for _, js in undecided for j in js}
        shared = len(tolerances) == 1
        parts: list[str] = []
        hints: list[str] = []
        for o, js in undecided:
            changes = ", ".join(f"{j.metric} {pct(j.change)} (CI {ci_pct(j.change_ci)}"
                                + ("" if shared else f", tolerance {tolerance_text(j.tolerance)}") + ")"
                                for j in js)
            parts.append(f"{config_text(o.report)}: {changes}")
            hints.extend(h for j in js for h in j.hint.split("; ") if h and h not in hints)
        head = f"cannot tell whether within {tolerance_text(tolerances.pop())}: " if shared else ""
        hints = _fold_duration_hints(hints)
        return head + "; ".join(parts) + (f" -- {'; '.join(hints)}" if hints else "")

    def _nothing_compared_line(self) -> str:
        finished = [o for o in self.outcomes if o.report.get("status") == STATUS_OK]
        if not self.outcomes:
            why = "it has no configuration at all"
        elif not finished:
            reasons = sorted({o.note for o in self.outcomes if o.note})
            why = "no configuration finished" + (f" ({'; '.join(reasons)})" if reasons else "")
        else:
            why = "no finished configuration had a baseline with rounds to compare"
        return (f"nothing was compared with a baseline: {why}; --npf-require-baseline is set, so a measurement "
                "must compare at least one configuration (make one run here, or record a baseline with "
                "--npf-save-baseline)")


# judge._too_few_samples's hint: one per metric, side and configuration; folded, the longest duration of each
# side answers them all.
_LONGER = re.compile(r"^(run|re-record the baseline) about ([0-9.]+)x longer \((\S+)=(\d+)s\) to judge (\w+): ")


def _fold_duration_hints(hints: list[str]) -> list[str]:
    longest: dict[str, tuple[float, str, int, list[str]]] = {}
    rest: list[str] = []
    for hint in hints:
        match = _LONGER.match(hint)
        if match is None:
            rest.append(hint)
            continue
        verb, factor, option, seconds, metric = match.groups()
        _, _, most, metrics = longest.get(verb, (0.0, option, 0, []))
        if int(seconds) >= most:
            longest[verb] = (float(factor), option, int(seconds), metrics)
        if metric not in metrics:
            metrics.append(metric)
    folded = [f"{verb} about {factor:.1f}x longer ({option}={seconds}s) to judge {', '.join(metrics)} "
              "(too few effective samples per round)" for verb, (factor, option, seconds, metrics) in longest.items()]
    return rest + folded


def slo_failures(report: Mapping[str, Any]) -> list[str]:
    """A latency objective the configuration missed, as an absolute limit says it (empty when met).

    Under open-loop load the SLO bounds the latency at ``request_rate``; a capacity search fails it only
    when no rate it tried met it (its closed-loop latency is not the served latency).
    """
    slo = report.get("slo")
    if not slo:
        return []
    rate = report.get("request_rate")
    if isinstance(rate, (int, float)) and report.get("slo_met") is False:
        return [f"slo {slo} missed at request_rate={rate:g}: {report.get('slo_missed') or 'not met'}"]
    capacity = report.get("capacity_rps")
    if rate is None and isinstance(capacity, (int, float)) and capacity <= 0:
        why = report.get("reason") or "no rate tried met it"
        return [f"slo {slo}: capacity 0, no request rate meets it ({why})"]
    return []


def judge_measurement(
    name: str,
    reports: Sequence[dict[str, Any]],
    lookups: Mapping[str, ReferenceLookup | None],
    rules: GateRules,
) -> MeasurementJudgement:
    """Judge every finished report: absolute limits always, references when ``rules.compare`` and one was found.

    ``lookups`` maps a configuration key to its reference lookup (absent or None: nothing to
    compare with). Holm's correction runs across every configuration x metric of the measurement.
    """
    outcomes: list[ConfigOutcome] = []
    for report in reports:
        key = config_key(report)
        if report.get("status") in (STATUS_ERROR, STATUS_OVERLOADED, STATUS_INVALID):
            # Nothing was measured, so there is nothing to judge: the configuration fails with its reason.
            reason = str(report.get("reason") or "the configuration could not be measured")
            outcomes.append(ConfigOutcome(key, report, Verdict.ERROR, note=reason))
            continue
        if report.get("status") != STATUS_OK:
            outcomes.append(ConfigOutcome(key, report, Verdict.SKIPPED, note=str(report.get("reason") or "")))
            continue
        outcome = ConfigOutcome(key, report, Verdict.MEASURED)
        outcome.limit_failures = judge.check_limits(report, **rules.limits.values) + slo_failures(report)
        lookup = lookups.get(key)
        if rules.compare and lookup is not None:
            record = lookup.record
            if record is None:
                outcome.verdict = Verdict.NO_BASELINE
                outcome.note = lookup.explain()
            else:
                outcome.baseline = record
                base = [RoundSummary.from_dict(r) for r in record.rounds]
                current = rounds_of(report)
                if base and current:
                    sessions = None if rules.paired else [_session_of(r) for r in record.rounds]
                    outcome.judgements = [
                        judge.judge_metric(m.name, base, current, rules.tolerance.for_metric(m.name),
                                           duration_name=rules.duration_name,
                                           max_rounds_name=rules.max_rounds_name, looks=rules.looks,
                                           paired=rules.paired, against=rules.against,
                                           baseline_sessions=sessions)
                        for m in METRICS if not m.optional or (judge.measured_in(base, m)
                                                               and judge.measured_in(current, m))
                    ]
                elif not base:
                    # A record that cannot be judged is no reference: it fails under --npf-require-baseline.
                    outcome.verdict, outcome.note = Verdict.NO_BASELINE, EMPTY_BASELINE_NOTE
                else:
                    outcome.note = NO_CURRENT_ROUNDS_NOTE
        outcomes.append(outcome)
    _correct(outcomes)
    for o in outcomes:
        if o.verdict in (Verdict.SKIPPED, Verdict.ERROR):
            continue
        if o.judgements:
            o.verdict = judge.decide(o.judgements)
            if o.improved and o.verdict is not Verdict.FAIL:
                o.note = STALE_NOTE if not rules.paired else f"faster than {rules.against} beyond the tolerance"
        if o.limit_failures:
            o.verdict = Verdict.FAIL
    return MeasurementJudgement(name, outcomes, rules)


def _session_of(round_data: Mapping[str, object]) -> str | None:
    session = round_data.get("session")
    return session if isinstance(session, str) else None


def _correct(outcomes: list[ConfigOutcome]) -> None:
    flat = [(o, j) for o in outcomes for j in o.judgements]
    if not flat:
        return
    corrected = judge.correct_multiple([j for _, j in flat])
    for o in outcomes:
        o.judgements = []
    for (o, _), j in zip(flat, corrected, strict=True):
        o.judgements.append(j)
