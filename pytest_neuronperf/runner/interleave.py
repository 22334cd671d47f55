"""Two benchmarks measured in alternating rounds, A B B A A B ..., in one run.

A stored baseline was measured under other conditions than today's run; a reference measured in
the same job, round for round beside the current model, shares today's machine, load and drift.
Pairs alternate their order so that a linear drift over the run favours neither side, and every
round starts fresh copies, as every round of :func:`~pytest_neuronperf.runner.benchmark.benchmark`
does. After the first pairs, ``keep_going`` (the gate's sequential rule) says after each pair
whether the evidence is still undecided.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_neuronperf._util.log import logger
from pytest_neuronperf._util.log import verbosity as log_verbosity
from pytest_neuronperf.errors import BenchmarkError
from pytest_neuronperf.runner import events
from pytest_neuronperf.runner.benchmark import Plan
from pytest_neuronperf.runner.reports import get_reports
from pytest_neuronperf.runner.results import ConfigResult
from pytest_neuronperf.spec.matrix import RunConfig, config_key, config_text

# Copy failures that mean "the model is not there at the reference", not "the reference broke".
_MISSING_TYPES = frozenset({"ModelNotFoundError", "ModuleNotFoundError"})
_REFERENCE_LOAD = "loading the reference revision's code"

KeepGoing = Callable[[dict[str, Any], dict[str, Any]], bool]


@dataclass
class PairedReport:
    """One configuration of an interleaved run: the current side's report and the reference's.

    ``reference`` is None when the reference has nothing to compare with; ``missing`` says why
    (``absent``: the model does not exist at the reference, so it is new in this change).
    """

    current: dict[str, Any]
    reference: dict[str, Any] | None
    missing: str = ""
    absent: bool = False
    pairs: int = 0


@dataclass
class _Pairing:
    run: RunConfig
    current: ConfigResult
    reference_run: RunConfig | None
    reference: ConfigResult | None = None
    missing: str = ""
    absent: bool = False
    pairs: int = 0
    log: list[str] = field(default_factory=list)


def missing_reason(exc: BenchmarkError) -> str | None:
    """Why a reference copy failed, when the failure means the model does not exist there; else None."""
    if exc.error_type in _MISSING_TYPES or (exc.phase == _REFERENCE_LOAD and exc.error_type in
                                             {"AttributeError", "ImportError"}):
        return str(exc).splitlines()[0] if str(exc) else exc.error_type
    return None


def run_interleaved(current: Plan, reference: Plan, *, first_pairs: int, max_pairs: int,
                    keep_going: KeepGoing | None = None, reference_label: str = "reference",
                    reference_absent: str = "", revision: bool = True) -> list[PairedReport]:
    """Measure every configuration of ``current`` in round pairs with the same configuration of ``reference``.

    ``first_pairs`` pairs always run; then one more pair at a time while ``keep_going(current report,
    reference report)`` is true, up to ``max_pairs``. A configuration the reference lacks, or whose
    reference copies fail (``reference_absent``, when given, says the whole reference is missing),
    is measured on the current side alone for ``first_pairs`` rounds. ``revision``: the reference is
    the same code at another revision, where a missing model is new in this change and a broken
    one is the old code's problem; otherwise (a reference model the user named) a reference failure
    raises as a current-side failure does in :func:`~pytest_neuronperf.runner.benchmark.benchmark`.
    """
    if not 1 <= first_pairs <= max_pairs:
        raise ValueError(f"need 1 <= first_pairs <= max_pairs, got {first_pairs} and {max_pairs}")
    by_key = {config_key(run.as_dict()): run for run in reference.matrix.runs}
    out: list[PairedReport] = [PairedReport(r, None, missing=str(r.get("reason") or ""))
                               for r in get_reports(current.skipped_results())]
    with log_verbosity(current.level):
        total = len(current.matrix.runs)
        for i, run in enumerate(current.matrix.runs):
            pairing = _Pairing(run, current.new_result(run), by_key.get(config_key(run.as_dict())))
            if reference_absent:
                pairing.missing, pairing.absent = reference_absent, True
            elif pairing.reference_run is None:
                pairing.missing = f"the reference has no configuration {config_text(run.as_dict())}"
            else:
                pairing.reference = reference.new_result(pairing.reference_run)
            _measure(pairing, current, reference, i, total, first_pairs, max_pairs, keep_going, reference_label,
                     revision)
            current.finish(pairing.current, run)
            if pairing.reference is not None and pairing.reference_run is not None and pairing.reference.rounds:
                reference.finish(pairing.reference, pairing.reference_run)
            [report] = get_reports([pairing.current])
            ref_report = None
            if pairing.reference is not None and not pairing.missing:
                [ref_report] = get_reports([pairing.reference])
            out.append(PairedReport(report, ref_report, pairing.missing, pairing.absent, pairing.pairs))
    return out


def _measure(p: _Pairing, current: Plan, reference: Plan, index: int, total: int, first_pairs: int,
             max_pairs: int, keep_going: KeepGoing | None, reference_label: str, revision: bool) -> None:
    described = config_text(p.current.config)
    while p.pairs < max_pairs:
        order = ("current", "reference") if p.pairs % 2 == 0 else ("reference", "current")
        for side in order:
            if side == "current":
                _round(current, p.run, p.current, index, total, described, p.pairs, max_pairs, "")
                if current.stop_if_empty(p.current):
                    return
            elif p.reference is not None and p.reference_run is not None and not p.missing:
                try:
                    _round(reference, p.reference_run, p.reference, index, total, described, p.pairs, max_pairs,
                           reference_label)
                except BenchmarkError as exc:
                    if not revision:
                        raise BenchmarkError(f"the reference ({reference_label}) could not be measured: {exc}",
                                             exc.config, error_type=exc.error_type, phase=exc.phase) from exc
                    p.missing, p.absent = _reference_failure(exc, reference_label, p.current.config)
                    continue
                if reference.stop_if_empty(p.reference):
                    p.missing = f"the reference ({reference_label}) could not be measured: {p.reference.reason}"
        p.pairs += 1
        if p.pairs < first_pairs:
            continue
        if p.missing or p.reference is None or keep_going is None:
            return
        [a] = get_reports([p.current])
        [b] = get_reports([p.reference])
        if not keep_going(a, b):
            return
        logger.info("Configuration %s: undecided after %d round pairs; measuring another pair.", described, p.pairs)


def _reference_failure(exc: BenchmarkError, label: str, config: dict[str, Any]) -> tuple[str, bool]:
    if missing_reason(exc) is not None:
        what = config.get("model_filename") or "the model"
        logger.info("The reference (%s) has no %s: %s", label, what, exc)
        return f"new in this change: {what} (or a function it needs) does not exist at {label}", True
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    logger.error("The reference (%s) could not be measured: %s", label, exc)
    return f"the reference ({label}) could not be measured: {first}", False


def _round(plan: Plan, run: RunConfig, result: ConfigResult, index: int, total: int, described: str,
           pair: int, max_pairs: int, side: str) -> None:
    where = f"{described}, {side}" if side else described
    tell = functools.partial(_tell, plan.name, index, total, where, pair, max_pairs,
                             plan.round_wall_s * 2 * (max_pairs - pair))
    # Both rounds of a pair replay the same arrivals (open-loop load): their difference is the model's.
    result.rounds.append(plan.run_round(run, result.config, tell, round_index=pair))


def _tell(name: str, index: int, total: int, described: str, round_index: int, rounds: int, left_s: float,
          phase: str) -> None:
    events.emit(events.Progress(name, index, total, described, phase, round_index, rounds,
                                time.monotonic() + left_s))
