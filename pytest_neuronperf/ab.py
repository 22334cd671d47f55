"""An A/B comparison: a model and its reference measured in alternating rounds, judged pair by pair.

The one place where the interleaved runner meets the gate; the ``npf_bench`` fixture (for
``--npf-against`` and ``reference=``) and ``npf ab`` both call :func:`compare_interleaved`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pytest_neuronperf.gate.evaluate import (
    GateRules,
    MeasuredLookup,
    MeasuredReference,
    MeasurementJudgement,
    judge_measurement,
)
from pytest_neuronperf.gate.sequential import Looks
from pytest_neuronperf.runner.benchmark import Plan
from pytest_neuronperf.runner.interleave import PairedReport, run_interleaved
from pytest_neuronperf.spec.matrix import config_key


def compare_interleaved(name: str, current: Plan, reference: Plan, rules: GateRules, *, max_rounds: int,
                        against: str, reference_label: str, reference_absent: str = "", revision: bool = False,
                        ) -> tuple[list[PairedReport], MeasurementJudgement]:
    """Measure ``current`` against ``reference`` (``current.rounds`` pairs first, then sequentially up to
    ``max_rounds`` pairs while undecided) and judge the pairs.

    ``against`` names the reference after a value in the gate's messages (``at origin/main (3f2a9c1)``,
    ``of reference m.py:Fp32``), ``reference_label`` on its own (``origin/main (3f2a9c1)``, ``reference
    m.py:Fp32``); ``revision``: the reference is the same code at a git revision (see
    :func:`~pytest_neuronperf.runner.interleave.run_interleaved`).
    """
    first = current.rounds
    looks = Looks(first=first, last=max(first, max_rounds))
    rules = replace(rules, looks=looks, paired=True, against=against, require_baseline=False)

    def keep_going(report: dict[str, Any], reference_report: dict[str, Any]) -> bool:
        lookup = {config_key(report): MeasuredLookup(MeasuredReference(reference_report))}
        return bool(judge_measurement(name, [report], lookup, rules).needing_confirmation())

    paired = run_interleaved(current, reference, first_pairs=first, max_pairs=looks.last,
                             keep_going=keep_going if rules.compare else None,
                             reference_label=reference_label, reference_absent=reference_absent, revision=revision)
    reports = [p.current for p in paired]
    found = {config_key(p.current): MeasuredLookup(None if p.reference is None else MeasuredReference(p.reference),
                                                   p.missing)
             for p in paired}
    return paired, judge_measurement(name, reports, found, rules)
