"""The ``npf_bench`` fixture object: runs one measurement through the shared runner and gates it."""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pytest

from pytest_neuronperf.baselines.keys import check_part
from pytest_neuronperf.config.options import MARKER
from pytest_neuronperf.config.settings import Settings, SettingsError, Tolerance, parse_tolerance
from pytest_neuronperf.gate.evaluate import (
    ConfigOutcome,
    GateRules,
    Limits,
    MeasurementJudgement,
    judge_measurement,
    limit_value,
)
from pytest_neuronperf.gate.verdict import Verdict
from pytest_neuronperf.report.results_file import DEFAULT_NAME, Measurement, judged_with, label_of
from pytest_neuronperf.session.session import NpfSession
from pytest_neuronperf.spec.fields import STATUS_OK
from pytest_neuronperf.spec.matrix import config_text
from pytest_neuronperf.spec.metrics import LIMIT_KEYWORDS, METRICS

if TYPE_CHECKING:
    from pytest_neuronperf.reference.worktree import ReferenceCheckout
    from pytest_neuronperf.runner.benchmark import Plan
    from pytest_neuronperf.runner.results import ConfigResult

# Marker/fixture keywords that belong to the gate, not to the runner.
GATE_KEYWORDS: tuple[str, ...] = ("name", "tolerance", *LIMIT_KEYWORDS, "compile", "compiler_args", "reference")
DURATION_FLAG = "--npf-duration"


class NeuronPerfWarning(UserWarning):
    """A measurement that could not be judged (inconclusive) or compared (no baseline)."""


def runner_keywords() -> list[str]:
    from pytest_neuronperf.runner.benchmark import benchmark

    return list(inspect.signature(benchmark).parameters)


def valid_keywords() -> list[str]:
    return runner_keywords() + list(GATE_KEYWORDS)


def check_keywords(kwargs: Mapping[str, Any], where: str) -> None:
    """Unknown keywords are a TypeError; a gate keyword with an unusable value is a ValueError.

    Called at collection for the marker and when the fixture is called, so a bad value fails its
    test before anything is measured, not the session after every test ran.
    """
    unknown = sorted(set(kwargs) - set(valid_keywords()))
    if unknown:
        raise TypeError(
            f"{where}: unknown keyword(s) {', '.join(unknown)}; valid keywords are the runner's parameters "
            f"({', '.join(runner_keywords())}) and the gate's ({', '.join(GATE_KEYWORDS)})"
        )
    for keyword in LIMIT_KEYWORDS:
        if kwargs.get(keyword) is not None:
            check_limit(keyword, kwargs[keyword], where)
    if kwargs.get("tolerance") is not None:
        tolerance_of(kwargs["tolerance"], f"{where}: tolerance")
    if kwargs.get("name") is not None:
        measurement_name(kwargs["name"], where)


def check_limit(keyword: str, value: object, where: str) -> float:
    """An absolute limit as a float; ValueError (naming ``where``) unless it is a positive finite number."""
    try:
        return limit_value(keyword, value)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def tolerance_of(value: object, option: str) -> Tolerance:
    """A marker/fixture ``tolerance=`` (``0.05``, ``"5%"``, ``"p99=10%"`` or a Tolerance); ValueError if unusable."""
    if isinstance(value, Tolerance):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{option}: expected a fraction such as 0.05 or text such as '5%' or 'p99=10%', "
                         f"got {value!r}")
    try:
        return parse_tolerance(repr(value) if isinstance(value, float) else str(value), option)
    except SettingsError as exc:
        raise ValueError(str(exc)) from None


def measurement_name(value: object, where: str) -> str:
    """The measurement's name (the default one for None or ""); ValueError if a baseline entry could not hold it."""
    name = str(value or DEFAULT_NAME)
    try:
        # The baseline entry key's own rule, so the two can never disagree.
        check_part("measurement", name)
    except ValueError as exc:
        raise ValueError(f"{where}: name={name!r} cannot name a measurement: {exc} (baseline entries are keyed "
                         "<test>::<name>::<configuration>)") from None
    return name


def _reference_name(reference: object) -> str:
    """How messages name a ``reference=`` model: its file, or ``module:name`` of its class or factory."""
    if isinstance(reference, (str, os.PathLike)):
        return os.fspath(reference)
    module, qualname = getattr(reference, "__module__", None), getattr(reference, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else type(reference).__name__


def error_text(exc: BaseException, max_lines: int = 5) -> str:
    """``<ExceptionType>: <message>``, cut to its first lines (a copy's traceback follows them)."""
    try:
        message = str(exc)
    except Exception:  # an exception whose __str__ raises still deserves its type in the report
        message = "<the exception's message could not be formatted>"
    lines = f"{type(exc).__name__}: {message}".strip().splitlines()
    text = "\n".join(lines[:max_lines]) + ("\n..." if len(lines) > max_lines else "")
    return text[:2000]


@dataclass
class BenchResult:
    """What ``npf_bench(...)`` returns: the reports, the verdicts and helpers to assert on them."""

    name: str
    reports: list[dict[str, Any]]
    outcomes: list[ConfigOutcome]
    verdict: Verdict
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict is not Verdict.FAIL

    @property
    def verdicts(self) -> dict[str, str]:
        """Configuration key ("b1-n2-w1-p1") -> verdict."""
        return {o.key: o.verdict.value for o in self.outcomes}

    def finished(self) -> list[dict[str, Any]]:
        return [r for r in self.reports if r.get("status") == STATUS_OK]

    def best(self, metric: str) -> float:
        """The best value of ``metric`` over the finished configurations (highest throughput, lowest latency)."""
        from pytest_neuronperf.spec.metrics import best

        values = [float(r[metric]) for r in self.finished() if isinstance(r.get(metric), (int, float))]
        if not values:
            known = sorted(k for k, v in (self.finished() or [{}])[0].items() if isinstance(v, (int, float)))
            raise KeyError(f"best: no finished configuration has a numeric {metric!r}; numeric fields: {known}")
        return float(best(metric, values))

    def config(self, **match: Any) -> dict[str, Any]:
        """The one report whose fields equal ``match``, e.g. ``config(n_models=2, workers_per_model=1)``."""
        found = [r for r in self.reports if all(r.get(k) == v for k, v in match.items())]
        if len(found) != 1:
            raise LookupError(f"config: {len(found)} reports match {match}; give more fields to pick one")
        return found[0]


class NpfBench:
    """Callable fixture object; marker keywords are its defaults, call keywords override them."""

    def __init__(self, item: pytest.Item, session: NpfSession, settings: Settings) -> None:
        self.item = item
        self.session = session
        self.settings = settings
        marker = item.get_closest_marker(MARKER)
        self.defaults: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
        self.names: list[str] = []
        self._recorded: set[str] = set()  # names whose Measurement the session already holds

    @property
    def called(self) -> bool:
        return bool(self.names)

    def __call__(self, model: Any = None, inputs: Any = None, **kwargs: Any) -> BenchResult:
        check_keywords(kwargs, "npf_bench")
        params: dict[str, Any] = {**self.defaults, **kwargs}
        if model is not None:
            params["model"] = model
        if inputs is not None:
            params["inputs"] = inputs
        name = measurement_name(params.pop("name", None), "npf_bench")
        if name in self.names:
            raise ValueError(
                f"npf_bench: this test already measured {name!r}; give each measurement in one test its own "
                "name, e.g. npf_bench(..., name='batch8'), so their baselines stay apart"
            )
        # A generative model's prompt may be built by the runner (input_tokens=) instead of given.
        required = ("model",) if params.get("input_tokens") is not None else ("model", "inputs")
        for what in required:
            if params.get(what) is None:
                raise TypeError(f"npf_bench: no {what!r} given (pass it to npf_bench or to the marker)")
        self.names.append(name)
        try:
            return self._measure(name, params)
        except Exception as exc:
            # Recorded before the test fails as it always did, so the error reaches every report
            # (and, under xdist, the controller) instead of leaving no trace of the measurement.
            self._record_error(name, params, error_text(exc))
            raise

    def _record_error(self, name: str, params: Mapping[str, Any], error: str) -> None:
        if name in self._recorded:
            return
        self._recorded.add(name)
        module, test_name = self._node_parts()
        device = params.get("device_type") or self.settings.device or "cpu"
        self.session.add(Measurement(
            nodeid=self.item.nodeid, name=name, device_type=str(device), fingerprint={},
            verdict=Verdict.ERROR.value, reports=[], outcomes=[], module_path=module, test_name=test_name,
            error=error,
        ))

    def _gate_rules(self, params: dict[str, Any]) -> GateRules:
        tol = params.pop("tolerance", None)
        tolerance = self.settings.tolerance if tol is None else tolerance_of(tol, "tolerance")
        s = self.settings
        return GateRules(tolerance=tolerance, limits=Limits.take(params), compare=s.compare, strict=s.strict,
                         require_baseline=s.require_baseline, duration_name=DURATION_FLAG)

    def _runner_params(self, params: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        if s.duration is not None:
            params["duration"] = s.duration
        if s.device is not None:
            params["device_type"] = s.device
        if s.n_models is not None:
            params["n_models"] = list(s.n_models)
        if s.workers is not None:
            params["workers_per_model"] = list(s.workers)
        if s.timeout is not None:
            params.setdefault("timeout", s.timeout)  # a test's own timeout knows its model best
        if s.verbosity is not None:
            params["verbosity"] = s.verbosity
        params.setdefault("rounds", s.rounds)
        params.setdefault("model_name", None)
        params.pop("return_timers", None)
        return params

    def _measure(self, name: str, params: dict[str, Any]) -> BenchResult:
        from pytest_neuronperf.backends.registry import get_backend
        from pytest_neuronperf.baselines.environment import fingerprint as environment_fingerprint

        own_tolerance = params.get("tolerance") is not None
        rules = self._gate_rules(params)
        reference = params.pop("reference", None)
        compile_first = bool(params.pop("compile", False))
        compiler_args = params.pop("compiler_args", None)
        params = self._runner_params(params)
        from pytest_neuronperf.runner.launch import set_preload

        set_preload(self.settings.preload or ())
        device = params.get("device_type", "cpu")
        backend = get_backend(device)
        reason = backend.unavailable_reason()
        if reason is not None:
            pytest.skip(f"device_type={device!r} is not available here: {reason}")
        fingerprint = environment_fingerprint(backend.name)
        # Without comparing (--npf-no-compare) there is nothing to measure the reference for.
        paired = rules.compare and (reference is not None or self.session.revision is not None)
        if compile_first and paired:
            raise ValueError("compile=True cannot be measured against a reference yet: the reference side would need "
                             "its own compilation; compare this test with stored baselines, or give the compiled "
                             "artifacts as model= and reference=")
        if compile_first:
            params["model"] = self._compile(params, compiler_args)

        module, test_name = self._node_parts()
        label = label_of(self.item.nodeid, name)
        if paired:
            reports, judged = self._measure_paired(name, params, rules, reference, label)
        else:
            reports, judged = self._measure_stored(name, params, rules, label, module, test_name, fingerprint)
        verdict = judged.verdict
        notes = judged.notes
        if self.settings.save_baseline:
            # This run records the baselines that are missing: saying so per configuration is noise.
            notes = [f"{config_text(o.report)}: {o.note}" for o in judged.outcomes
                     if o.note and o.verdict not in (Verdict.ERROR, Verdict.NO_BASELINE)]
        self._recorded.add(name)
        self.session.add(Measurement(
            nodeid=self.item.nodeid, name=name, device_type=backend.name, fingerprint=fingerprint,
            verdict=verdict.value, reports=reports, outcomes=[o.to_dict() for o in judged.outcomes], notes=notes,
            module_path=module, test_name=test_name,
            judged_with=judged_with(judged.rules, tolerance_from_test=own_tolerance,
                                    fingerprint_keys=self.settings.fingerprint_keys),
        ))
        self._record_properties(name, judged)
        result = BenchResult(name, reports, judged.outcomes, verdict, notes)
        # Saving a baseline accepts a slower normal, never a configuration that could not be measured.
        if (verdict is Verdict.FAIL and not self.settings.save_baseline) or judged.errors:
            pytest.fail(judged.failure_message(), pytrace=False)
        if verdict is Verdict.INCONCLUSIVE:
            rounds = max((len(o.report.get("rounds") or []) for o in judged.outcomes), default=0)
            # Node.warn places the warning at the test, not at the plugin line that raised it.
            self.item.warn(NeuronPerfWarning(
                f"[{name}] inconclusive after {rounds} round(s), {judged.inconclusive_summary()}"))
        return result

    def _measure_stored(self, name: str, params: dict[str, Any], rules: GateRules, label: str, module: str,
                        test_name: str, fingerprint: dict[str, str],
                        ) -> tuple[list[dict[str, Any]], MeasurementJudgement]:
        """Measure, then judge against the stored baselines, adding rounds while the verdict is undecided."""
        from pytest_neuronperf._util.filelock import FileLock, benchmark_lock_path
        from pytest_neuronperf.baselines.schema import BaselineFileError
        from pytest_neuronperf.baselines.store import BaselineStore, Lookup
        from pytest_neuronperf.gate.sequential import Looks
        from pytest_neuronperf.runner.benchmark import prepare, run_plan
        from pytest_neuronperf.runner.reports import get_reports

        plan = prepare(**params)
        with self._progress(label), FileLock(benchmark_lock_path()):
            results = run_plan(plan)
        reports = get_reports(results)
        found: dict[str, Lookup] = {}
        if rules.compare and not (self.settings.save_baseline and self.settings.overwrite_corrupt):
            try:
                found = BaselineStore(self.session.baseline_root).lookup_reports(
                    module, test_name, name, reports, fingerprint, self.settings.fingerprint_keys)
            except BaselineFileError as exc:
                self._record_error(name, params, error_text(exc))
                pytest.fail(str(exc), pytrace=False)
        rounds = int(params.get("rounds", 1))
        looks = Looks(first=rounds, last=max(rounds, self.settings.most_rounds))
        rules = replace(rules, looks=looks)
        judged = judge_measurement(name, reports, found, rules)
        while True:
            unsure = [o for o in judged.needing_confirmation() if looks.more_allowed(len(o.report["rounds"]))]
            if not unsure:
                return reports, judged
            self._more_rounds(plan, results, unsure)
            # Rebuilt from every round: the report's own fields pool the added rounds too.
            reports = get_reports(results)
            judged = judge_measurement(name, reports, found, rules)

    def _measure_paired(self, name: str, params: dict[str, Any], rules: GateRules, reference: Any, label: str,
                        ) -> tuple[list[dict[str, Any]], MeasurementJudgement]:
        """Measure the model and its reference in alternating rounds; judge the pairs, sequentially."""
        from pytest_neuronperf._util.filelock import FileLock, benchmark_lock_path
        from pytest_neuronperf.ab import compare_interleaved
        from pytest_neuronperf.runner.benchmark import prepare

        if params.get("multiprocess") is False and reference is None:
            raise ValueError("--npf-against measures the revision in model-copy processes that import its code; "
                             "multiprocess=False runs copies in this process, which holds the current code. "
                             "Drop multiprocess=False for this test, or compare it with stored baselines")
        rounds = int(params.pop("rounds", 1))
        duration = float(params.get("duration", 60.0))
        current = prepare(**{**params, "duration": duration, "rounds": rounds})
        absent = ""
        if reference is not None:
            against = f"of reference {_reference_name(reference)}"
            try:
                other = prepare(**{**params, "model": reference, "duration": duration, "rounds": rounds})
            except (TypeError, ValueError, FileNotFoundError) as exc:
                # The runner names its parameter "model"; here the culprit is the reference.
                text = str(exc).removeprefix("model: ")
                raise type(exc)(f"reference: {text}") from None
        else:
            revision = self.session.revision
            assert revision is not None
            against = f"at {revision.label}"
            other, absent = self._revision_plan(params, duration, rounds, current)
        named = against.removeprefix("of ").removeprefix("at ")
        with self._progress(label), FileLock(benchmark_lock_path()):
            paired, judged = compare_interleaved(name, current, other, rules, max_rounds=self.settings.most_rounds,
                                                 against=against, reference_label=named, reference_absent=absent,
                                                 revision=reference is None)
        return [p.current for p in paired], judged

    def _revision_plan(self, params: dict[str, Any], duration: float, rounds: int, current: Plan) -> tuple[Plan, str]:
        """The reference side at the revision: the same test, its copies importing the revision's code.

        Returns the plan and, when the model file does not exist at the revision, why (then the
        plan is the current one, never run).
        """
        from pytest_neuronperf.runner.benchmark import prepare

        revision = self.session.revision
        assert revision is not None
        model = params["model"]
        theirs = dict(params, duration=duration, rounds=rounds)
        if isinstance(model, (str, os.PathLike)):
            mapped = revision.map_path(model)
            if mapped is not None and not mapped.exists():
                return current, f"new in this change: {os.fspath(model)} does not exist at {revision.label}"
            if mapped is not None:
                theirs["model"] = str(mapped)
        else:
            self._warn_if_outside(model, revision)
        cwd = revision.map_path(os.getcwd())
        with contextlib.chdir(cwd if cwd is not None and cwd.is_dir() else os.getcwd()):
            plan = prepare(**theirs)
        plan.redirect = (str(revision.repo_root), str(revision.path))
        return plan, ""
    def _progress(self, label: str, *, log_line: str | None = None) -> contextlib.AbstractContextManager[None]:
        view = self.session.progress
        return view.showing(label, log_line=log_line) if view is not None else contextlib.nullcontext()

    def _node_parts(self) -> tuple[str, str]:
        """(test file relative to the rootdir, test name); a file outside the rootdir has no path in its id."""
        module, _, test = self.item.nodeid.partition("::")
        if not module:
            module = os.path.relpath(self.item.path, self.item.config.rootpath)
        return module, test or self.item.name

    def _compile(self, params: dict[str, Any], compiler_args: Any) -> str:
        """Compile the module for the device (cached across runs) and return the model index to benchmark."""
        from pytest_neuronperf.compile.parent import compile as compile_model

        name = params.get("model_name") or getattr(params["model"], "__name__", None) or type(params["model"]).__name__
        models_dir = self.session.baseline_root.parent / "compiled"
        return compile_model(
            params["model"], params["inputs"], batch_sizes=params.get("batch_sizes") or 1,
            pipeline_sizes=params.get("pipeline_sizes") or 1, models_dir=str(models_dir), model_name=str(name),
            compiler_args=compiler_args, recompile=self.settings.recompile,
            verbosity=1 if params.get("verbosity") is None else int(params["verbosity"]),
        )

    def _warn_if_outside(self, model: Any, revision: ReferenceCheckout) -> None:
        """Say so when the model's module loads from outside the repository: both sides then run that code."""
        import sys

        module = sys.modules.get(getattr(model, "__module__", "") or "")
        origin = getattr(module, "__file__", None)
        if module is None or not origin or revision.map_path(origin) is not None:
            return
        warnings.warn(NeuronPerfWarning(
            f"{self.item.nodeid}: the model's module {module.__name__!r} is imported from {origin}, outside the "
            f"repository {revision.repo_root}, so both sides run that same code and --npf-against cannot see a "
            "change in it; import it from the source tree (an editable install: pip install -e .)"
        ), stacklevel=3)

    def _more_rounds(self, plan: Plan, results: list[ConfigResult], unsure: list[ConfigOutcome]) -> None:
        """One more round of each undecided configuration, added to its rounds (all are then judged together)."""
        from pytest_neuronperf._util.filelock import FileLock, benchmark_lock_path
        from pytest_neuronperf.runner.benchmark import run_more_rounds

        label = f"{self.item.nodeid}: round {max(len(o.report['rounds']) for o in unsure) + 1}, undecided so far"
        log_line = (f"neuronperf {self.item.nodeid}: more rounds while undecided, one at a time "
                    f"(up to {self.settings.most_rounds}: --npf-max-rounds)")
        with self._progress(label, log_line=log_line), FileLock(benchmark_lock_path()):
            run_more_rounds(plan, results, {o.key for o in unsure})

    def _record_properties(self, name: str, judged: MeasurementJudgement) -> None:
        for o in judged.outcomes:
            if o.report.get("status") != STATUS_OK:
                continue
            prefix = f"npf:{name}:{o.key}"
            for metric in METRICS:
                self.item.user_properties.append((f"{prefix}:{metric.report_field}", o.report.get(metric.report_field)))
            self.item.user_properties.append((f"{prefix}:verdict", o.verdict.value))
