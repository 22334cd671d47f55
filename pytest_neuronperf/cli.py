"""``npf``: compare saved results with baselines, show what is stored, write reports, run a benchmark,
compare two models in alternating rounds (``ab``).

Exit status: 0 fine, 1 a regression or an errored measurement (``compare``, ``ab``) or a failed benchmark
(``run``, ``ab``), 2 bad input, 3 nothing compared (``compare`` found no baseline for any result;
``--allow-missing`` makes it 0; ``ab`` measured no configuration of both models).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from pytest_neuronperf.config.options import DEFAULT_BASELINE_DIR

if TYPE_CHECKING:
    from pytest_neuronperf.config.ini_file import IniFile
    from pytest_neuronperf.config.settings import Settings
    from pytest_neuronperf.gate.evaluate import GateRules, MeasurementJudgement
    from pytest_neuronperf.report.results_file import Measurement
    from pytest_neuronperf.runner.benchmark import Plan
    from pytest_neuronperf.runner.interleave import PairedReport

EXIT_OK: Final = 0
EXIT_REGRESSION: Final = 1
EXIT_BAD_INPUT: Final = 2
# Not 0: a gate pointed at the wrong folder (or at another machine's baselines) would pass forever.
EXIT_NOTHING_COMPARED: Final = 3


class InputError(Exception):
    """Bad input for a subcommand: the message is shown as it is and the exit status is 2."""


# --- compare ------------------------------------------------------------------------------------------

COMPARE_EXAMPLES: Final = """\
examples:
  npf compare results.json
  npf compare .neuronperf/baselines results.json
  npf compare .neuronperf/baselines/tests/test_mlp.json results.json --tolerance throughput=5%,p99=15%
  npf compare main-results.json pr-results.json
  npf compare baselines-from-main/ results.json --fingerprint-keys device_type,instance_type --strict

RESULTS is the file written by pytest --npf-json=results.json. Each measurement is judged
with the gate the plugin uses, against the baseline entries of the same test, measurement and
configuration, or, when BASELINE is a results file too (a run of the main branch, say), against
the same configuration's rounds in it.

The rules are the plugin's: the ini file pytest would read here (pytest.ini, pyproject.toml,
tox.ini or setup.cfg: npf_baseline_dir, npf_tolerance, npf_strict, npf_require_baseline,
npf_fingerprint_keys), overridden by this command's options; each test's own tolerance= and
absolute limits, and the rounds of the gate's looks, as the results file records them. Without
BASELINE the baselines are npf_baseline_dir (default .neuronperf/baselines) under the rootdir.

exit status:
  0  no regression
  1  a regression, or a measurement or configuration that errored in the run
  2  bad input (a missing or malformed results or baseline file, a bad option)
  3  nothing was compared: no baseline in BASELINE applies to any result (a wrong
     folder, or baselines of another environment); --allow-missing makes this 0
"""


def _store_for(baseline: Path) -> Callable[[str], Any]:
    """A function from a test module path to the BaselineStore to look it up in."""
    from pytest_neuronperf.baselines.store import BaselineStore

    if baseline.is_dir():
        store = BaselineStore(baseline)
        return lambda module: store

    class SingleFileStore(BaselineStore):
        def path_for(self, module_path: str) -> Path:
            return baseline

    single = SingleFileStore(baseline.parent)
    return lambda module: single


def _module_matches_file(module: str, baseline: Path) -> bool:
    from pytest_neuronperf.baselines.store import baseline_relpath

    return baseline_relpath(module).name == baseline.name


def _is_results_file(path: Path) -> bool:
    """Whether a file is a results document (``--npf-json``) rather than a baseline file: it names measurements."""
    import json

    try:
        with open(path, encoding="utf-8-sig") as fh:
            doc = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return False  # reading it as a baseline file reports what is wrong with it
    return isinstance(doc, dict) and "measurements" in doc and "entries" not in doc


def project_settings(args: argparse.Namespace) -> tuple[Settings, IniFile]:
    """The plugin's settings as a pytest run here would see them: this command's options, else the ini file
    pytest would read from the current folder, else the defaults."""
    from dataclasses import replace

    from pytest_neuronperf.config.ini_file import find_ini
    from pytest_neuronperf.config.settings import Settings, SettingsError

    try:
        ini = find_ini()
    except SettingsError as exc:
        raise InputError(str(exc)) from None
    try:
        settings = Settings.from_sources({}, ini.values)
    except SettingsError as exc:
        raise InputError(f"{exc} (in {ini.path})") from None
    # This command's options are parsed already (argparse reported their errors).
    given = {name: getattr(args, name, None) for name in ("tolerance", "strict", "require_baseline",
                                                          "fingerprint_keys", "baseline_dir")}
    return replace(settings, **{k: v for k, v in given.items() if v is not None}), ini


def measurement_rules(m: Measurement, settings: Settings) -> GateRules:
    """The rules the plugin judged ``m`` with: the session's policy from ``settings``, and what the results file
    records of the test itself (its own tolerance and limits) and of the sequential design its rounds were
    collected under (the first look's rounds, the most rounds, alpha)."""
    from pytest_neuronperf.gate.evaluate import GateRules, Limits
    from pytest_neuronperf.gate.sequential import Looks
    from pytest_neuronperf.gate.tolerance import Tolerance

    recorded = m.judged_with
    tolerance = settings.tolerance
    try:
        if recorded.get("tolerance_from") == "test" and isinstance(recorded.get("tolerance"), dict):
            tolerance = Tolerance(**{k: float(v) for k, v in recorded["tolerance"].items()})
        limits = Limits(**{k: float(v) for k, v in (recorded.get("limits") or {}).items()})
        looks = None
        first, last = recorded.get("rounds"), recorded.get("max_rounds")
        if isinstance(first, int) and isinstance(last, int):
            looks = Looks(first=first, last=max(first, last), alpha=float(recorded.get("alpha") or 0.01),
                          beta=float(recorded.get("beta") or 0.025))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{m.label}: the results file records rules that cannot be used (judged_with): {exc}"
                         ) from None
    return GateRules(tolerance=tolerance, limits=limits, strict=settings.strict,
                     require_baseline=settings.require_baseline, duration_name="--npf-duration", looks=looks)


def _results_lookups(m: Measurement, reference: Mapping[tuple[str, str], Measurement], source: Path,
                     keys: Sequence[str]) -> dict[str, Any]:
    """Each configuration of ``m`` against the same test, measurement and configuration in another results file."""
    from pytest_neuronperf.baselines.environment import fingerprint_differences, version_changes
    from pytest_neuronperf.gate.evaluate import MeasuredLookup, MeasuredReference
    from pytest_neuronperf.spec.fields import ROUNDS_KEY, STATUS_OK
    from pytest_neuronperf.spec.matrix import config_key

    old = reference.get((m.nodeid, m.name))
    found: dict[str, Any] = {}
    for report in m.reports:
        key = config_key(report)
        if old is None:
            found[key] = MeasuredLookup(None, f"{m.label} is not in {source}")
            continue
        differ = fingerprint_differences(old.fingerprint, m.fingerprint, keys)
        if differ:
            changed = "; ".join(version_changes(old.fingerprint, m.fingerprint, differ))
            found[key] = MeasuredLookup(None, f"{source} measured it in another environment ({changed}: "
                                              "the earlier value, then this one's)")
            continue
        theirs = next((r for r in old.reports if config_key(r) == key), None)
        if theirs is None or theirs.get("status") != STATUS_OK or not theirs.get(ROUNDS_KEY):
            found[key] = MeasuredLookup(None, f"{source} holds no finished {key} of {m.label}")
            continue
        found[key] = MeasuredLookup(MeasuredReference(theirs))
    return found


def cmd_compare(args: argparse.Namespace, out: IO[str]) -> int:
    from pytest_neuronperf.baselines.schema import BaselineFileError, read_baseline
    from pytest_neuronperf.gate.evaluate import judge_measurement
    from pytest_neuronperf.gate.verdict import Verdict
    from pytest_neuronperf.report.results_file import Measurement, ResultsFileError, as_measurements, load_results
    from pytest_neuronperf.report.summary import summary_lines
    from pytest_neuronperf.spec.fields import STATUS_OK

    settings, ini = project_settings(args)
    if args.baseline is None and args.new is None:
        raise InputError("give the results file written by pytest --npf-json (and, before it, the baselines or "
                         "results to compare with)")
    if args.new is None:
        # One file given: the results, compared with the project's baselines.
        args.new, args.baseline = args.baseline, None
    base = Path(args.baseline) if args.baseline else ini.rootdir / settings.baseline_dir
    if not base.exists():
        raise InputError(f"baseline {base} does not exist; give the baseline folder "
                         f"(default {DEFAULT_BASELINE_DIR}, or npf_baseline_dir in the ini file), one baseline "
                         "file, or a results file to compare with")
    against_results = base.is_file() and _is_results_file(base)
    reference: dict[tuple[str, str], Measurement] = {}
    if against_results:
        try:
            reference = {(m.nodeid, m.name): m for m in as_measurements(load_results(base, allow_reports=False))}
        except ResultsFileError as exc:
            raise InputError(str(exc)) from None
    elif base.is_file():
        # Read it now so that a corrupt file is reported once, before any comparison.
        read_baseline(base)
    try:
        measurements = as_measurements(load_results(args.new, allow_reports=False))
    except ResultsFileError as exc:
        raise InputError(str(exc)) from None
    store_for = _store_for(base)
    only_matching = (not against_results and base.is_file()
                     and any(_module_matches_file(m.module_path, base) for m in measurements))
    judged: list[Measurement] = []
    failures: list[str] = []
    unsure: list[str] = []
    compared = 0
    for m in measurements:
        module, test_name = m.module_path, m.test_name
        if only_matching and not _module_matches_file(module, base):
            continue
        if m.errored and not m.reports:
            # The run raised before this measurement had reports: nothing to judge, and it must not pass.
            judged.append(m)
            failures.append(f"{m.label}: the measurement errored in the run: {m.error_text()}")
            continue
        rules = measurement_rules(m, settings)
        if against_results:
            lookups = _results_lookups(m, reference, base, settings.fingerprint_keys)
        else:
            try:
                lookups = store_for(module).lookup_reports(module, test_name, m.name, m.reports, m.fingerprint,
                                                           settings.fingerprint_keys)
            except BaselineFileError:
                raise
            except ValueError as exc:  # a module path in the results that maps outside the baseline folder
                raise InputError(f"results file {args.new}: {m.label}: {exc}") from None
        try:
            result = judge_measurement(m.name, m.reports, lookups, rules)
        except ValueError as exc:
            # load_results checked this run's side, so what is left to be malformed is the reference's.
            raise InputError(f"cannot compare {m.label} of {args.new} with its baseline in {base}: {exc}") from None
        compared += sum(1 for o in result.outcomes if o.judgements)
        judged.append(Measurement(m.nodeid, m.name, m.device_type, m.fingerprint, result.verdict.value, m.reports,
                                  [o.to_dict() for o in result.outcomes], result.notes, module_path=m.module_path,
                                  test_name=m.test_name, error=m.error, judged_with=m.judged_with))
        if result.verdict is Verdict.FAIL:
            failures.append(f"{m.label}: {result.failure_message()}")
        elif m.errored:
            failures.append(f"{m.label}: the measurement errored in the run: {m.error_text()}")
        elif result.verdict is Verdict.INCONCLUSIVE:
            unsure += [f"{m.label}: {line}" for line in result.inconclusive_lines()]
    if not judged:
        print(f"no measurements to compare in {args.new}", file=out)
    for line in summary_lines(judged, verbose=False, width=_terminal_width()):
        print(line, file=out)
    for line in unsure:
        print(f"inconclusive: {line}", file=out)
    for failure in failures:
        print("", file=out)
        print(f"FAILED {failure}", file=out)
    if args.json:
        _write_results(args.json, judged, out)
    if failures:
        return EXIT_REGRESSION
    if not compared and not args.allow_missing:
        configs = sum(1 for m in judged for r in m.reports if r.get("status") == STATUS_OK)
        print(f"npf compare: error: nothing was compared: no baseline in {base} applies to any of the {configs} "
              f"finished configuration(s) in {args.new} (the notes above say why); is {base} the baseline "
              f"folder (default {DEFAULT_BASELINE_DIR})? Pass --allow-missing to accept results without a "
              "baseline", file=sys.stderr)
        return EXIT_NOTHING_COMPARED
    return EXIT_OK


def _terminal_width() -> int:
    import shutil

    return shutil.get_terminal_size().columns


def _write_results(path: str, measurements: Sequence[Measurement], out: IO[str]) -> None:
    from pytest_neuronperf._util.atomic_write import write_atomic
    from pytest_neuronperf.report.results_file import environment_of, results_document
    from pytest_neuronperf.report.text import json_text

    env = environment_of(list(measurements)) if measurements else {}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomic(path, json_text(results_document(measurements, env)).encode("utf-8"))
    print(f"wrote {path}", file=out)


# --- show ---------------------------------------------------------------------------------------------

SHOW_EXAMPLES: Final = """\
examples:
  npf show
  npf show path/to/baselines

Lists every stored baseline: test, measurement, configuration, throughput, p50 and p99 as the
gate compares them (geometric means over every stored round, the figures the reports show as
baseline), the rounds, the environment it was measured in (env1, env2, ... explained below the
table) and its age. Without BASELINE_DIR: npf_baseline_dir of the ini file pytest would read
here, else .neuronperf/baselines, under the rootdir.
"""


def _split_entry(key: str) -> tuple[str, str, str]:
    parts = key.rsplit("::", 2)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (key, "", "")


def cmd_show(args: argparse.Namespace, out: IO[str]) -> int:
    from datetime import datetime, timezone

    from pytest_neuronperf.baselines.schema import BaselineFileError
    from pytest_neuronperf.baselines.store import iter_baselines
    from pytest_neuronperf.gate.wording import age_text
    from pytest_neuronperf.report.figures import shown_value, stored_figures
    from pytest_neuronperf.report.summary import table
    from pytest_neuronperf.spec.fields import FINGERPRINT_FIELDS

    if args.baseline_dir is None:
        settings, ini = project_settings(args)
        root = ini.rootdir / settings.baseline_dir
    else:
        root = Path(args.baseline_dir)
    if not root.is_dir():
        raise InputError(f"baseline folder {root} does not exist"
                         + ("" if root.exists() else " (record baselines with pytest --npf-save-baseline)"))
    errors: list[BaselineFileError] = []
    envs: dict[tuple[tuple[str, str], ...], str] = {}
    rows: list[dict[str, Any]] = []
    now = datetime.now(timezone.utc)
    for module, contents in iter_baselines(root, on_error=errors.append):
        for key in sorted(contents.entries):
            test, measurement, config = _split_entry(key)
            for record in contents.entries[key]:
                fp = tuple(sorted(record.fingerprint.items()))
                env = envs.setdefault(fp, f"env{len(envs) + 1}")
                # What the gate compares a run with, as every report shows a baseline: over every stored round.
                shown = stored_figures(record.rounds)
                rows.append({
                    "test": f"{module}::{test}", "measurement": measurement, "configuration": config,
                    "throughput": shown_value(shown.throughput), "p50_ms": shown_value(shown.p50_ms),
                    "p99_ms": shown_value(shown.p99_ms),
                    "rounds": str(len(record.rounds)), "environment": env,
                    "saved": age_text(record.saved_at, now),
                })
    if rows:
        for line in table(rows, ("test", "measurement", "configuration", "throughput", "p50_ms", "p99_ms", "rounds",
                                 "environment", "saved")):
            print(line, file=out)
        print("", file=out)
        for fp, name in envs.items():
            values = dict(fp)
            known = [f"{k}={values[k]}" for k in FINGERPRINT_FIELDS if k in values]
            extra = [f"{k}={v}" for k, v in fp if k not in FINGERPRINT_FIELDS]
            print(f"{name}: {', '.join(known + extra)}", file=out)
    elif not errors:
        print(f"no baselines stored in {root}", file=out)
    for exc in errors:
        print(f"error: {exc}", file=sys.stderr)
    return EXIT_BAD_INPUT if errors else EXIT_OK


# --- report -------------------------------------------------------------------------------------------

REPORT_EXAMPLES: Final = """\
examples:
  npf report results.json --html report.html
  npf report results.json --md summary.md
  npf report results.json --html report.html --md summary.md

RESULTS is the file written by pytest --npf-json=results.json (or npf run --json).
The HTML report needs matplotlib: pip install "pytest-neuronperf[report]".
"""


def cmd_report(args: argparse.Namespace, out: IO[str]) -> int:
    from pytest_neuronperf.report.markdown import write_markdown
    from pytest_neuronperf.report.results_file import ResultsFileError, load_results

    if not args.html and not args.md:
        raise InputError("nothing to write; give --html FILE and/or --md FILE")
    if args.html:
        from pytest_neuronperf.report.html import ReportDependencyError, require_matplotlib

        try:
            require_matplotlib()
        except ReportDependencyError as exc:
            raise InputError(str(exc)) from None
    try:
        doc = load_results(args.results)
    except ResultsFileError as exc:
        raise InputError(str(exc)) from None
    if args.md:
        print(f"wrote {write_markdown(doc, args.md)}", file=out)
    if args.html:
        from pytest_neuronperf.report.html import write_html

        print(f"wrote {write_html(doc, args.html)}", file=out)
    return EXIT_OK


# --- run ----------------------------------------------------------------------------------------------

RUN_EXAMPLES: Final = """\
examples:
  npf run examples.models:TinyMLP --inputs 1x64 --duration 10
  npf run examples.models:TinyMLP --inputs 1x64,8x64 --batch-sizes 1,8 --n-models 1,2 --workers 1,2
  npf run mypkg.models:TwoTower --inputs "1x64;1x16" --duration 5s --json out.json --csv out.csv
  npf run path/to/models.py:Net --inputs 4x3x224x224 --device cpu --compile-mode max-autotune
  npf run mypkg.models:Bert --inputs input_ids=1x128:int64:0-30000 attention_mask=1x128:int64:1-1
  npf run model.pt2 --inputs 8x3x224x224
  npf run mypkg.models:tiny_gpt2 --streaming --input-tokens 128 --output-tokens 64 --slo ttft<=200ms,tpot<=50ms

MODEL is MODULE:CLASS (a module importable from here, or a .py file) naming a model class or
zero-argument factory defined at the module's top level, or a model file: TorchScript
(torch.jit.save), an ExportedProgram (torch.export.save) or an AOTInductor package. Each SHAPE
such as 1x64 becomes torch.randn(1, 64); SHAPE:DTYPE:LOW-HIGH draws the values of another dtype
(int64, int32, bool, float16, bfloat16, ...) from LOW..HIGH (integers: both included, default
0-1). Arguments joined by ';' or spaces are the inputs of a multi-input model; NAME=SHAPE names
them, and the model is called with them as keyword arguments (model(**inputs)); inputs separated
by ',' are one input per batch size.
"""


def parse_shape(text: str) -> tuple[int, ...]:
    words = [w.strip() for w in text.strip().lower().split("x")]
    if not words or not all(w.isdigit() and int(w) > 0 for w in words):
        raise InputError(f"--inputs: expected a shape such as 1x64 (positive sizes joined by x), got {text!r}")
    return tuple(int(w) for w in words)


def parse_inputs(text: str) -> list[tuple[tuple[int, ...], ...]]:
    """``1x64`` -> [((1, 64),)]; ``1x64;1x8,4x64;4x8`` -> two multi-input items."""
    items = [item for item in text.split(",") if item.strip()]
    if not items:
        raise InputError("--inputs: expected at least one shape such as 1x64")
    return [tuple(parse_shape(shape) for shape in item.split(";") if shape.strip()) for item in items]


def make_inputs(shapes: list[tuple[tuple[int, ...], ...]]) -> Any:
    import torch

    tensors = [tuple(torch.randn(*shape) for shape in item) for item in shapes]
    items = [t[0] if len(t) == 1 else t for t in tensors]
    return items[0] if len(items) == 1 else items


def load_model(spec: str, what: str = "MODEL") -> Any:
    """The class or factory that ``MODULE:CLASS`` (or ``path/to/file.py:CLASS``) names; ``what`` names the
    argument in messages (``MODEL``, or ``A`` / ``B`` for ``npf ab``)."""
    import importlib
    import importlib.util

    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise InputError(f"{what}: expected MODULE:CLASS such as examples.models:TinyMLP, got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name).resolve()
        if not path.is_file():
            raise InputError(f"{what}: no such file {module_name!r}")
        module_name = path.stem
        loaded = getattr(sys.modules.get(module_name), "__file__", None)
        if loaded and Path(loaded).resolve() != path:
            # Model copies import the class by module name: two files of one name would both be the first.
            raise InputError(f"{what}: {str(path)!r} would be imported as module {module_name!r}, which is "
                             f"already imported from {loaded!r}; model copies import a class by its module "
                             "name, so give one of the files another name")
        # Model copies import the class again by module name, so its folder has to be on the path.
        sys.path.insert(0, str(path.parent))
    elif "" not in sys.path and os.getcwd() not in sys.path:
        # The console script does not put the current folder on the path, as `python -m` does.
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"{what}: cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:  # the module itself is broken: a usage error that says how, not a traceback
        raise InputError(f"{what}: importing module {module_name!r} raised {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"{what}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InputError(f"{what}: {spec!r} is not a class or factory")
    return obj


def _at_least_one(option: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"{option}: expected a whole number of at least 1, got {text!r}")
        return value

    return parse


def _int_list(option: str, allow_max: bool = False) -> Callable[[str], list[int | str]]:
    from pytest_neuronperf.config.settings import SettingsError, parse_int_list

    def parse(text: str) -> list[int | str]:
        try:
            return list(parse_int_list(text, option, allow_max=allow_max))
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return parse


def take_models_back(args: argparse.Namespace, names: Sequence[str]) -> None:
    """Models written after ``--inputs`` (``npf run --inputs 1x64 pkg:Net``): argparse hands ``--inputs``
    every word after it, so each missing positional takes the last such word that is no input."""
    from pytest_neuronperf.spec import input_spec

    for name in reversed(names):
        if getattr(args, name) is not None:
            continue
        words = list(args.inputs or [])
        if len(words) > 1:
            try:
                input_spec.parse_arg(words[-1])
            except ValueError:
                setattr(args, name, words.pop())
                args.inputs = words
                continue
        raise InputError(f"{name.upper()}: no model given; name it before --inputs, e.g. "
                         "npf run pkg.models:Net --inputs 1x64")


def _inputs_of(args: argparse.Namespace) -> Any:
    """The models' inputs from --inputs; None where a generative model's prompt is built (--input-tokens)."""
    from pytest_neuronperf.spec import input_spec

    if not args.inputs:
        if getattr(args, "input_tokens", None):
            return None
        raise InputError("--inputs: required: the shapes of the model's inputs, such as --inputs 1x64 (a generative "
                         "model may take --input-tokens N instead, and the runner builds its prompt)")
    try:
        shapes = input_spec.parse(args.inputs)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return input_spec.make_inputs(shapes)


def cmd_run(args: argparse.Namespace, out: IO[str]) -> int:
    import pytest_neuronperf as npf
    from pytest_neuronperf.errors import BenchmarkError, DeviceUnavailableError
    from pytest_neuronperf.spec.matrix import config_text

    take_models_back(args, ["model"])
    model = ab_model(args.model, "MODEL")
    inputs = _inputs_of(args)
    params: dict[str, Any] = {"duration": args.duration, "device_type": args.device, "rounds": args.rounds}
    for name, value in (("batch_sizes", args.batch_sizes), ("n_models", args.n_models),
                        ("workers_per_model", args.workers), ("model_name", args.model_name),
                        ("verbosity", args.verbosity), ("compile_mode", args.compile_mode),
                        ("cost_per_hour", args.cost_per_hour)):
        if value is not None:
            params[name] = value
    params.update(load_params(args))
    try:
        reports: list[dict[str, Any]] = npf.benchmark(model, inputs, **params)  # type: ignore[assignment]
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise InputError(option_named(str(exc))) from None
    except (BenchmarkError, DeviceUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REGRESSION
    npf.print_reports(reports, file=out)
    failed = [r for r in reports if r.get("status") in ("error", "overloaded", "invalid")]
    for r in failed:
        print(f"{r.get('status')}: {config_text(r)}: {r.get('reason')}", file=out)
    if args.json:
        print(f"wrote {npf.write_json(reports, args.json)}", file=out)
    if args.csv:
        print(f"wrote {npf.write_csv(reports, args.csv)}", file=out)
    return EXIT_REGRESSION if failed else EXIT_OK


# --- ab -----------------------------------------------------------------------------------------------

AB_EXAMPLES: Final = """\
examples:
  npf ab mymodels:NetFp16 mymodels:Net --inputs 1x64 --duration 10
  npf ab new/models_v2.py:Net old/models_v1.py:Net --inputs 1x3x224x224 --tolerance throughput=5%,p99=10%
  npf ab model_new.pt model_old.pt --inputs 8x128 --n-models 1 --workers 1 --json ab.json --strict

A is the model under test, B the reference; each is MODULE:CLASS (a module importable from here,
or a .py file) naming a model class or zero-argument factory, or a TorchScript file. Both get the
same inputs (SHAPES as for npf run) and are measured in alternating rounds (A B B A A B ...) in
this run, so both share the machine's load and drift. Every configuration runs --rounds round
pairs, each round --duration / --rounds seconds long, then one more pair at a time while the gate
is undecided, up to --max-rounds pairs; the gate judges throughput, p50 and p99 (and capacity and a
generative model's token metrics, where both measured them) from the per-pair ratios. Two .py files
of the same name cannot be compared (copies import classes by module name).

The output is A's report table, B's, then the verdict of each configuration and metric, the
round pairs it took, and a last line verdict: pass, fail or inconclusive.

exit status:
  0  no regression (an inconclusive verdict too, unless --strict)
  1  A is slower than B beyond the tolerance, a model failed to run, or (--strict) inconclusive
  2  bad input (an unknown model, bad shapes, a bad option)
  3  nothing was compared (every configuration was skipped, e.g. --n-models beyond this machine)
"""

def ab_model(spec: str, what: str) -> Any:
    """``npf ab``'s A or B: a TorchScript (or model index) file path, else MODULE:CLASS as :func:`load_model`."""
    module_part = spec.rpartition(":")[0]
    if module_part.endswith(".py") or (":" in spec and not Path(spec).is_file()):
        return load_model(spec, what)
    if Path(spec).is_file():
        if spec.endswith(".py"):
            raise InputError(f"{what}: {spec!r} is a Python file; name the model in it as {spec}:CLASS")
        return spec
    if "/" in spec or os.sep in spec or Path(spec).suffix:
        raise InputError(f"{what}: no such file {spec!r} (expected a TorchScript file, or MODULE:CLASS)")
    raise InputError(f"{what}: expected MODULE:CLASS such as examples.models:TinyMLP, or a TorchScript file, "
                     f"got {spec!r}")


def _ab_plan(model: Any, inputs: Any, params: dict[str, Any], what: str) -> Plan:
    from pytest_neuronperf.runner.benchmark import prepare

    try:
        return prepare(model, inputs, **params)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise InputError(f"{what}: {option_named(str(exc))}") from None


def _ab_document(args: argparse.Namespace, paired: Sequence[PairedReport], judged: MeasurementJudgement,
                 verdict: str, status: int, device: str, against: str) -> dict[str, Any]:
    """A results file (``npf report`` reads it) whose measurements are A, judged against B, and B, plus
    an ``ab`` section: who is who, the verdict, and the round pairs of each configuration."""
    from pytest_neuronperf.baselines.environment import fingerprint
    from pytest_neuronperf.gate.evaluate import GateRules, judge_measurement
    from pytest_neuronperf.gate.verdict import Verdict
    from pytest_neuronperf.report.results_file import Measurement, results_document

    env = fingerprint(device)
    current = Measurement(args.a, "current", device, env, judged.verdict.value, [p.current for p in paired],
                          [o.to_dict() for o in judged.outcomes], judged.notes + judged.errors)
    references = [p.reference for p in paired if p.reference is not None]
    measured = judge_measurement(args.b, references, {}, GateRules(compare=False))
    reference = Measurement(args.b, "reference", device, env,
                            (Verdict.FAIL if measured.errors else Verdict.MEASURED).value, references,
                            [o.to_dict() for o in measured.outcomes], measured.notes + measured.errors)
    doc = results_document([current, reference], env)
    doc["ab"] = {
        "current": args.a, "reference": args.b, "against": against, "verdict": verdict, "exit_status": status,
        "tolerance": str(args.tolerance), "strict": args.strict, "rounds": args.rounds,
        "max_rounds": args.max_rounds, "duration": args.duration,
        "configurations": [{"config_key": o.key, "pairs": p.pairs, "verdict": o.verdict.value,
                            "note": o.note or p.missing}
                           for p, o in zip(paired, judged.outcomes, strict=True)],
    }
    return doc


@contextlib.contextmanager
def _one_benchmark_at_a_time() -> Iterator[None]:
    """Hold the machine's benchmark lock, as the plugin's benchmarks do, saying so when it has to wait."""
    from pytest_neuronperf._util.filelock import FileLock, LockTimeoutError, benchmark_lock_path

    path = benchmark_lock_path()
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except LockTimeoutError:
        print(f"npf ab: another benchmark on this machine holds {path}; waiting for it to finish", file=sys.stderr)
        lock = FileLock(path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def cmd_ab(args: argparse.Namespace, out: IO[str]) -> int:
    import pytest_neuronperf as npf
    from pytest_neuronperf.ab import compare_interleaved
    from pytest_neuronperf.backends.registry import canonical_device_type
    from pytest_neuronperf.errors import BenchmarkError, DeviceUnavailableError
    from pytest_neuronperf.gate.evaluate import GateRules
    from pytest_neuronperf.gate.verdict import Verdict, combine
    from pytest_neuronperf.spec.fields import STATUS_OK
    from pytest_neuronperf.spec.matrix import config_text

    if args.max_rounds < args.rounds:
        raise InputError(f"--max-rounds: expected at least --rounds ({args.rounds}) round pairs, "
                         f"got {args.max_rounds}")
    if args.json and Path(args.json).is_dir():
        raise InputError(f"--json: {args.json!r} is a folder; give a file name such as ab.json")
    try:
        canonical_device_type(args.device)
    except ValueError as exc:
        raise InputError(f"--device: {exc}") from None

    take_models_back(args, ["a", "b"])
    model_a = ab_model(args.a, "A")
    model_b = ab_model(args.b, "B")
    inputs = _inputs_of(args)
    params: dict[str, Any] = {"duration": args.duration, "device_type": args.device, "rounds": args.rounds}
    for name, value in (("batch_sizes", args.batch_sizes), ("n_models", args.n_models),
                        ("workers_per_model", args.workers), ("verbosity", args.verbosity),
                        ("compile_mode", args.compile_mode)):
        if value is not None:
            params[name] = value
    params.update(load_params(args))
    against = f"of reference {args.b}"
    try:
        current = _ab_plan(model_a, inputs, params, "A")
        reference = _ab_plan(model_b, inputs, params, "B")
    except DeviceUnavailableError as exc:
        print(f"npf ab: error: {exc}", file=sys.stderr)
        return EXIT_REGRESSION
    rules = GateRules(tolerance=args.tolerance, duration_name="--duration", max_rounds_name="--max-rounds")
    try:
        # Nothing to run (every configuration skipped): no need to queue behind the machine's benchmarks.
        with _one_benchmark_at_a_time() if current.matrix.runs else contextlib.nullcontext():
            paired, judged = compare_interleaved(args.a, current, reference, rules, max_rounds=args.max_rounds,
                                                 against=against, reference_label=f"reference {args.b}")
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise InputError(str(exc)) from None
    except BenchmarkError as exc:
        side = "" if str(exc).startswith("the reference") else f"A ({args.a}) failed: "
        print(f"npf ab: error: {side}{exc}", file=sys.stderr)
        return EXIT_REGRESSION

    # A configuration B could not be measured in compared nothing: that is B failing, not a pass.
    broken_pairs = [p for p in paired
                    if p.missing and p.reference is None and p.current.get("status") == STATUS_OK]
    errors = judged.errors + [f"{config_text(p.current)}: {p.missing} (B: {args.b})" for p in broken_pairs]
    compared = any(o.judgements for o in judged.outcomes)
    verdict = combine([o.verdict for o in judged.outcomes])
    if errors:
        verdict = Verdict.FAIL
    elif not compared:
        verdict = Verdict.INCONCLUSIVE
    strict_fail = args.strict and verdict is Verdict.INCONCLUSIVE
    if verdict is Verdict.FAIL or strict_fail:
        status = EXIT_REGRESSION
    else:
        status = EXIT_OK if compared else EXIT_NOTHING_COMPARED

    print(f"A (current): {args.a}", file=out)
    npf.print_reports([p.current for p in paired], file=out)
    print("", file=out)
    print(f"B (reference): {args.b}", file=out)
    references = [p.reference for p in paired if p.reference is not None]
    if references:
        npf.print_reports(references, file=out)
    else:
        print("(no configuration of B was measured)", file=out)
    if args.json:
        doc = _ab_document(args, paired, judged, verdict.value, status, current.backend.name, against)
        from pytest_neuronperf._util.atomic_write import write_atomic
        from pytest_neuronperf.report.text import json_text

        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        write_atomic(args.json, json_text(doc).encode("utf-8"))
        print("", file=out)
        print(f"wrote {args.json}", file=out)
    print("", file=out)
    for line in _verdict_lines(paired, judged, rules, {id(p) for p in broken_pairs}):
        print(line, file=out)
    for line in errors:
        print(f"npf ab: error: {line}", file=sys.stderr)
    if not compared and not errors:
        print("nothing was compared: no configuration of A and B was measured side by side (the lines above "
              "say why)", file=out)
    if strict_fail:
        print("inconclusive fails under --strict", file=out)
    print(f"verdict: {verdict.value}", file=out)
    return status


def _verdict_lines(paired: Sequence[PairedReport], judged: MeasurementJudgement, rules: GateRules,
                   broken: set[int]) -> list[str]:
    """Each metric's judgement (the failure table and lines on a regression), then each configuration's
    verdict and the round pairs it took; ``broken`` holds the ids of the pairs whose B could not be measured."""
    from pytest_neuronperf.gate.verdict import Verdict
    from pytest_neuronperf.spec.matrix import config_text

    lines: list[str] = [f"A vs B, tolerance {rules.tolerance}:"]
    regressed = judged.verdict is Verdict.FAIL and any(o.verdict is Verdict.FAIL for o in judged.outcomes)
    if regressed:
        lines += judged.failure_message().splitlines()
        lines.append("")
    for p, o in zip(paired, judged.outcomes, strict=True):
        cfg = config_text(p.current)
        note = o.note or p.missing
        if id(p) in broken:
            lines.append(f"{cfg}: error ({note})")
            continue
        pairs = f" after {p.pairs} round pair{'' if p.pairs == 1 else 's'}" if p.pairs else ""
        lines.append(f"{cfg}: {o.verdict.value}{pairs}" + (f" ({note})" if note else ""))
        if not regressed:
            lines += [f"  {j.verdict.value}: {j.message}" + (f" ({j.hint})" if j.hint else "")
                      for j in o.judgements]
    return lines


# --- the parser ---------------------------------------------------------------------------------------


def _checked(parse: Callable[[str, str], Any], option: str) -> Callable[[str], Any]:
    """An argparse type from a settings parser: its message becomes argparse's error (exit 2)."""
    from pytest_neuronperf.config.settings import SettingsError

    def convert(text: str) -> Any:
        try:
            return parse(text, option)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    return convert


def _add_matrix_options(parser: argparse.ArgumentParser) -> None:
    """The sweep options that ``npf run`` and ``npf ab`` share."""
    parser.add_argument("--batch-sizes", type=_int_list("--batch-sizes"), metavar="LIST",
                        help="batch size of each input, paired by position (default: each input's first dimension)")
    parser.add_argument("--n-models", type=_int_list("--n-models", allow_max=True), metavar="LIST",
                        help="model copies to sweep, such as 1,2 or 1,max")
    parser.add_argument("--workers", type=_int_list("--workers"), metavar="LIST",
                        help="worker threads per model copy to sweep, such as 1,2")
    from pytest_neuronperf.spec.params import COMPILE_MODES

    parser.add_argument("--compile-mode", choices=COMPILE_MODES, metavar="MODE",
                        help="torch.compile the model in each copy with this mode before the warm-up: "
                             f"{', '.join(COMPILE_MODES)} (default: no torch.compile)")
    _add_load_options(parser)


# The serving options: (option, keyword of benchmark(), argparse type, metavar, help).
_LOAD_OPTIONS: tuple[tuple[str, str, Callable[[str], Any], str, str], ...] = (
    ("--request-rate", "request_rate", float, "RPS",
     "open-loop load: requests/s offered to the whole configuration on a schedule fixed before the window; "
     "latency counts from each request's scheduled arrival (default: closed loop)"),
    ("--arrival", "arrival", str, "KIND", "arrival process of the open-loop load: poisson (default), gamma, constant"),
    ("--burstiness", "burstiness", float, "K", "gamma arrivals' shape: 1 is Poisson, below 1 burstier"),
    ("--max-concurrency", "max_concurrency", int, "N",
     "a request that arrives when N are in the system (waiting or in service) is dropped (open-loop load)"),
    ("--seed", "seed", int, "N", "seed of the arrival schedule (default: 0)"),
    ("--slo", "slo", str, "SLO",
     "latency objective such as p99<=20ms or p50<=5ms,p99<=20ms: marks the configurations that meet it and, "
     "without --request-rate, finds each one's capacity (the highest rate that meets it)"),
    ("--capacity-resolution", "capacity_resolution", float, "F",
     "the capacity search stops once it knows the capacity to within this fraction (default: 0.05)"),
    ("--output-tokens", "output_tokens", _int_list("--output-tokens"), "LIST",
     "generative model (--streaming): new tokens per request, or a list that requests take in turn"),
    ("--input-tokens", "input_tokens", _int_list("--input-tokens"), "LIST",
     "generative model (--streaming): the runner builds each prompt of this many token ids (in place of --inputs)"),
)


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    for option, _, kind, metavar, text in _LOAD_OPTIONS:
        parser.add_argument(option, type=kind, metavar=metavar, help=text)
    parser.add_argument("--streaming", action="store_true", default=None,
                        help="a generative model: its call streams tokens (or it has generate()); every token is "
                             "timed: TTFT, TPOT, ITL, output tokens/s, goodput with --slo ttft<=...,tpot<=...")


def load_params(args: argparse.Namespace) -> dict[str, Any]:
    """The serving keywords of ``benchmark()`` that the command line set."""
    out: dict[str, Any] = {}
    for _, keyword, _, _, _ in _LOAD_OPTIONS:
        value = getattr(args, keyword, None)
        if value is not None:
            out[keyword] = value
    if getattr(args, "streaming", None):
        out["streaming"] = True
    return out


def option_named(message: str) -> str:
    """A runner error as the command line says it: ``--request-rate: ...`` for ``request_rate: ...``."""
    for option, keyword, _, _, _ in (*_LOAD_OPTIONS, ("--streaming", "streaming", str, "", "")):
        if message.startswith(f"{keyword}:"):
            message = option + message[len(keyword):]
            break
    message = message.replace("streaming=True", "--streaming").replace("inputs= (your own prompt)", "--inputs")
    for option, keyword, _, _, _ in _LOAD_OPTIONS:
        message = message.replace(f"drop {keyword}", f"drop {option}").replace(f"{keyword}=,", f"{option},")
    return message.replace("give request_rate (requests/s) too, or slo= to", "give --request-rate too, or --slo to")


def build_parser() -> argparse.ArgumentParser:
    from pytest_neuronperf.config.settings import (
        Tolerance,
        parse_duration,
        parse_fingerprint_keys,
        parse_max_rounds,
        parse_rounds,
        parse_tolerance,
    )
    from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS

    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="npf", formatter_class=raw,
        description="pytest-neuronperf from the shell: compare results with baselines, show baselines, "
                    "write reports, run a benchmark, compare two models in alternating rounds.",
        epilog="run 'npf COMMAND --help' for each command's options and examples",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    compare = sub.add_parser("compare", help="judge a results file against stored baselines",
                             description="Judge saved results against stored baselines with the plugin's gate.",
                             epilog=COMPARE_EXAMPLES, formatter_class=raw)
    compare.add_argument("baseline", metavar="BASELINE", nargs="?",
                         help="baseline folder, one baseline file, or a results file to compare with (default: "
                              "npf_baseline_dir of the ini file, else .neuronperf/baselines, under the rootdir)")
    compare.add_argument("new", metavar="RESULTS", nargs="?", help="results file written by pytest --npf-json")
    compare.add_argument("--tolerance", type=_checked(parse_tolerance, "--tolerance"), default=None,
                         help="allowed change, one value for all metrics (8%% or 0.08) or per metric "
                              "(throughput=5%%,p99=10%%); a test's own tolerance= still wins, as in pytest "
                              f"(default: npf_tolerance of the ini file, else {str(Tolerance()).replace('%', '%%')})")
    compare.add_argument("--strict", action="store_true", default=None,
                         help="fail on inconclusive comparisons too, not only on clear regressions "
                              "(default: npf_strict of the ini file)")
    compare.add_argument("--require-baseline", action="store_true", default=None,
                         help="a configuration without a baseline fails, as under pytest --npf-require-baseline "
                              "(default: npf_require_baseline of the ini file)")
    compare.add_argument("--allow-missing", action="store_true",
                         help="exit 0, not 3, when no baseline applies to any result (a first run, say)")
    compare.add_argument("--fingerprint-keys", type=_checked(parse_fingerprint_keys, "--fingerprint-keys"),
                         default=None, metavar="FIELDS",
                         help="environment fields that must match for a baseline to apply, or none "
                              "(default: npf_fingerprint_keys of the ini file, else "
                              f"{','.join(DEFAULT_FINGERPRINT_KEYS)})")
    compare.add_argument("--json", metavar="FILE",
                         help="also write the judged results (a results file that npf report reads)")
    compare.set_defaults(handler=cmd_compare)

    show = sub.add_parser("show", help="list the stored baselines", description="List the stored baselines.",
                          epilog=SHOW_EXAMPLES, formatter_class=raw)
    show.add_argument("baseline_dir", metavar="BASELINE_DIR", nargs="?", default=None,
                      help=f"baseline folder (default: npf_baseline_dir of the ini file, else {DEFAULT_BASELINE_DIR}, "
                           "under the rootdir)")
    show.set_defaults(handler=cmd_show)

    report = sub.add_parser("report", help="write HTML / Markdown reports from a results file",
                            description="Write the HTML report and/or the Markdown summary of saved results.",
                            epilog=REPORT_EXAMPLES, formatter_class=raw)
    report.add_argument("results", metavar="RESULTS", help="results file written by pytest --npf-json")
    report.add_argument("--html", metavar="FILE", help="write the HTML report (with plots) here")
    report.add_argument("--md", metavar="FILE", help="write the Markdown summary here")
    report.set_defaults(handler=cmd_report)

    run = sub.add_parser("run", help="benchmark a model and print the report table",
                         description="Benchmark a model over the configuration matrix and print the table.",
                         epilog=RUN_EXAMPLES, formatter_class=raw)
    run.add_argument("model", metavar="MODEL", nargs="?",
                     help="MODULE:CLASS (e.g. examples.models:TinyMLP), FILE.py:CLASS, or a model file "
                          "(TorchScript, torch.export .pt2, AOTInductor package)")
    run.add_argument("--inputs", metavar="SHAPE", nargs="+",
                     help="[NAME=]SHAPE[:DTYPE[:LOW-HIGH]]: 1x64, 1x32:int64:0-30000; 'AxB;CxD' or 'AxB CxD' for "
                          "a multi-input model, NAME= for keyword inputs; ',' between batch sizes")
    run.add_argument("--duration", type=_checked(parse_duration, "--duration"), default=10.0, metavar="S",
                     help="seconds measured per configuration, such as 10, 10s or 2m (default: 10)")
    _add_matrix_options(run)
    run.add_argument("--rounds", type=_at_least_one("--rounds"), default=1, metavar="N",
                     help="rounds per configuration, the duration split between them (default: 1)")
    run.add_argument("--device", default="cpu", help="device type: cpu, cuda, neuron, ... (default: cpu)")
    run.add_argument("--model-name", help="name shown in the reports (default: the class name)")
    run.add_argument("--cost-per-hour", type=float, metavar="PRICE",
                     help="instance price per hour: reports the cost per 1M inferences (at capacity with --slo)")
    run.add_argument("--verbosity", type=int, choices=(0, 1, 2), help="runner log level: 0, 1 or 2")
    run.add_argument("--json", metavar="FILE", help="also write the reports as JSON")
    run.add_argument("--csv", metavar="FILE", help="also write the reports as CSV")
    run.set_defaults(handler=cmd_run)

    ab = sub.add_parser("ab", help="compare model A with reference B, measured in alternating rounds",
                        description="Measure model A and reference B in alternating rounds (A B B A ...) in one "
                                    "run and gate A's throughput, p50 and p99 against B's.",
                        epilog=AB_EXAMPLES, formatter_class=raw)
    ab.add_argument("a", metavar="A", nargs="?",
                    help="the model under test: MODULE:CLASS, FILE.py:CLASS or a model file (TorchScript, .pt2)")
    ab.add_argument("b", metavar="B", nargs="?", help="the reference, in the same forms as A")
    ab.add_argument("--inputs", metavar="SHAPE", nargs="+",
                    help="the inputs of A and B, as for npf run: [NAME=]SHAPE[:DTYPE[:LOW-HIGH]] such as 1x64 or "
                         "input_ids=1x32:int64:0-30000; ';' or a space between arguments, ',' between batch sizes")
    ab.add_argument("--duration", type=_checked(parse_duration, "--duration"), default=10.0, metavar="S",
                    help="seconds measured per configuration and model over the first --rounds rounds, such as "
                         "10, 10s or 2m; each round is S/ROUNDS long, and so is every later one (default: 10)")
    ab.add_argument("--rounds", type=_checked(parse_rounds, "--rounds"), default=3, metavar="N",
                    help="round pairs before the first look (default: 3)")
    ab.add_argument("--max-rounds", type=_checked(parse_max_rounds, "--max-rounds"), default=10, metavar="N",
                    help="most round pairs per configuration while the verdict is undecided (default: 10)")
    ab.add_argument("--tolerance", type=_checked(parse_tolerance, "--tolerance"), default=Tolerance(),
                    help="allowed change of A against B, one value for all metrics (8%% or 0.08) or per metric "
                         f"(throughput=5%%,p99=10%%); default: {str(Tolerance()).replace('%', '%%')}")
    ab.add_argument("--strict", action="store_true", help="exit 1 on an inconclusive verdict too")
    _add_matrix_options(ab)
    ab.add_argument("--device", default="cpu", help="device type: cpu, cuda, neuron, ... (default: cpu)")
    ab.add_argument("--verbosity", type=int, choices=(0, 1, 2), help="runner log level: 0, 1 or 2")
    ab.add_argument("--json", metavar="FILE",
                    help="also write both models' reports and the verdicts (a results file npf report reads)")
    ab.set_defaults(handler=cmd_ab)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pytest_neuronperf.baselines.schema import BaselineFileError

    parser = build_parser()
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:
        parser.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    args = parser.parse_args(arguments)
    handler: Callable[[argparse.Namespace, IO[str]], int] = args.handler
    try:
        return handler(args, sys.stdout)
    except (InputError, BaselineFileError) as exc:
        print(f"npf {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"npf {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except RecursionError:
        print(f"npf {args.command}: error: an input file nests lists or objects too deeply to be read",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"npf {args.command}: interrupted", file=sys.stderr)
        return 130
