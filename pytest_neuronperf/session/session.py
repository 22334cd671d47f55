"""The plugin's session object: collects measurements, brings them home from xdist workers,
saves baselines, writes result files and prints the summary.

It is not a registered plugin: the plugin's hooks call it, so it is built only in
a run that benchmarks something (or asked for a result file), not in every run.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_neuronperf.baselines.schema import BaselineRecord
    from pytest_neuronperf.config.settings import Settings
    from pytest_neuronperf.reference.worktree import ReferenceCheckout
    from pytest_neuronperf.report.results_file import Measurement
    from pytest_neuronperf.session.progress_view import ProgressView


# How the error of a measurement whose results a crashed xdist worker took with it begins.
LOST = "results lost"


class NpfSession:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.measurements: list[Measurement] = []
        self.saved: list[str] = []
        self.errors: list[str] = []
        self.written: list[str] = []
        self.warnings: list[str] = []
        self.lost_tests: dict[str, str] = {}  # xdist: test id -> what happened to its results
        self._unsent: list[Measurement] = []  # on an xdist worker: measured, not yet sent to the controller
        self.progress: ProgressView | None = None  # the plugin attaches the terminal view
        # --npf-against: the revision every benchmark is measured against, checked out (the plugin attaches it).
        self.revision: ReferenceCheckout | None = None

    @property
    def baseline_root(self) -> Path:
        return Path(self.config.rootpath) / self.settings.baseline_dir

    def add(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)
        if self.is_worker:
            self._unsent.append(measurement)

    # -- xdist: workers send each measurement to the controller as its test reports ---------------

    def payload(self) -> str:
        """This xdist worker's measurements not sent yet (JSON), to go to the controller; empty when none.

        The plugin attaches it to each test report, so a worker that crashes later loses nothing
        it had already reported.
        """
        if not self._unsent:
            return ""
        text = json.dumps([m.to_json() for m in self._unsent])
        self._unsent.clear()
        return text

    def receive(self, payload: str) -> None:
        """Take the measurements a worker sent (a :meth:`payload` of its session)."""
        from pytest_neuronperf.report.results_file import Measurement

        arrived = [Measurement.from_json(m) for m in json.loads(payload)]
        rerun = {m.nodeid for m in arrived} & set(self.lost_tests)
        if rerun:
            # xdist ran a lost test again on another worker: its new results replace the placeholder.
            self.measurements = [m for m in self.measurements if not (m.nodeid in rerun and m.error.startswith(LOST))]
            for nodeid in rerun:
                self.lost_tests[nodeid] += "; it ran again on another worker, whose results are kept"
        self.measurements.extend(arrived)

    def lost(self, nodeids: list[str], worker: str, error: object) -> None:
        """Benchmark tests that were running on an xdist worker when it died: their results never came."""
        from pytest_neuronperf.gate.verdict import Verdict
        from pytest_neuronperf.report.results_file import DEFAULT_NAME, Measurement

        why = f"xdist worker {worker} crashed while running it ({error})"
        for nodeid in nodeids:
            self.lost_tests[nodeid] = (f"results of {nodeid} lost: {why}; the results of the tests that "
                                       f"finished on {worker} before it are kept")
            self.measurements.append(Measurement(
                nodeid=nodeid, name=DEFAULT_NAME, device_type="", fingerprint={}, verdict=Verdict.ERROR.value,
                reports=[], outcomes=[], error=f"{LOST}: {why}",
            ))

    # -- the end of the run -----------------------------------------------------------------------

    def finish(self, session: pytest.Session) -> None:
        """After the test loop of the xdist controller, or of a run without xdist: save baselines
        and write result files. Not called when the loop was interrupted: an interrupted run
        saves no baseline."""
        self.measurements.sort(key=lambda m: (m.nodeid, m.name))
        if self.settings.save_baseline:
            self._save_baselines()
        self._write_files()
        if self.errors or self.lost_tests:
            session.testsfailed += 1

    def _save_baselines(self) -> None:
        from pytest_neuronperf.baselines.environment import current_commit
        from pytest_neuronperf.baselines.schema import utc_now
        from pytest_neuronperf.baselines.store import BaselineStore
        from pytest_neuronperf.gate.verdict import Verdict

        store = BaselineStore(self.baseline_root)
        # One stamp and one commit for the whole session: the stamp is the session id its rounds carry.
        saved_at = utc_now()
        commit = current_commit(Path(self.config.rootpath))
        by_module: dict[str, tuple[dict[str, BaselineRecord], dict[str, bool]]] = {}
        for m in self.measurements:
            if m.verdict == Verdict.ERROR:
                continue  # a measurement that raised has nothing trustworthy to keep
            updates, accumulate = by_module.setdefault(m.module_path, ({}, {}))
            # Not strict: a report without its outcome (never judged) is simply not saved.
            for report, outcome in zip(m.reports, m.outcomes, strict=False):
                # One entry that cannot be saved is reported and skipped; it never costs the others.
                try:
                    entry = self._baseline_entry(m, report, outcome, saved_at, commit)
                except Exception as exc:
                    self.errors.append(f"baseline not saved for {_where(m, report)}: {type(exc).__name__}: {exc}")
                    continue
                if entry is not None:
                    key, record, keep_rounds = entry
                    updates[key] = record
                    accumulate[key] = keep_rounds
        for module, (updates, accumulate) in sorted(by_module.items()):
            if not updates:
                continue
            try:
                result = store.save(module, updates, self.settings.fingerprint_keys, accumulate,
                                    overwrite_corrupt=self.settings.overwrite_corrupt)
            except Exception as exc:  # BaselineFileError, OSError, or a value the file cannot hold
                self.errors.append(f"baseline not saved for {module}: {exc}")
                continue
            self.saved.append(_relative(result.path, self.config.rootpath))
            if result.moved_aside is not None:
                kept = _relative(result.moved_aside, self.config.rootpath)
                self.saved.append(f"(unreadable old file kept as {kept})")

    def _baseline_entry(self, m: Measurement, report: dict[str, Any], outcome: dict[str, Any],
                        saved_at: str, commit: str | None) -> tuple[str, BaselineRecord, bool] | None:
        """(entry key, record, accumulate rounds) of one configuration, or None when it is not saved.

        The record is stamped ``saved_at`` and its rounds tagged with that session and ``commit``.
        """
        from dataclasses import replace

        from pytest_neuronperf.baselines.keys import entry_key
        from pytest_neuronperf.baselines.schema import BaselineRecord
        from pytest_neuronperf.gate.verdict import Verdict
        from pytest_neuronperf.spec.fields import STATUS_OK

        if report.get("status") != STATUS_OK or not report.get("rounds"):
            return None
        key = entry_key(m.test_name, m.name, report)
        record = replace(BaselineRecord.from_report(report, m.fingerprint), saved_at=saved_at).tagged(commit)
        record.to_json()  # a value the file cannot hold fails this entry here, not the module's whole save
        problems = baseline_quality(report["rounds"])
        if problems.unusable:
            self.errors.append(f"baseline not saved for {_where(m, report)}: {problems.unusable}")
            return None
        if problems.weak:
            advice = "run longer (--npf-duration) on a quieter machine, then save again"
            if self.settings.strict:
                self.errors.append(f"baseline not saved for {_where(m, report)} (--npf-strict): "
                                   f"{'; '.join(problems.weak)}; {advice}")
                return None
            self.warnings.append(f"weak baseline saved for {_where(m, report)}: {'; '.join(problems.weak)}; "
                                 f"{advice} (--npf-strict refuses such baselines)")
        # Rounds accumulate while the comparison found no change (pass, or inconclusive: on a noisy
        # machine that is the usual answer, and replacing would keep a single session forever); a fail
        # or an improvement is a changed normal and replaces them.
        judgements = outcome["judgements"]
        unchanged = (outcome["verdict"] in (Verdict.PASS, Verdict.INCONCLUSIVE)
                     and not any(j.get("improved") for j in judgements))
        return key, record, bool(judgements) and unchanged

    def _write_files(self) -> None:
        if self.settings.json_path:
            from pytest_neuronperf._util.atomic_write import write_atomic
            from pytest_neuronperf.baselines.environment import fingerprint
            from pytest_neuronperf.report.results_file import results_document
            from pytest_neuronperf.report.text import json_text

            self._write(self.settings.json_path, "--npf-json", lambda path: write_atomic(
                path, json_text(results_document(self.measurements, fingerprint(self.settings.device or "cpu")))
                .encode()))
        if self.settings.csv_path:
            from pytest_neuronperf.report.results_file import CSV_COLUMNS
            from pytest_neuronperf.report.text import write_csv

            self._write(self.settings.csv_path, "--npf-csv", lambda path: write_csv(
                [row for m in self.measurements for row in m.flat_rows()], path, cols=CSV_COLUMNS))
        if self.settings.md_path:
            from pytest_neuronperf.report.markdown import write_markdown

            self._write(self.settings.md_path, "--npf-md", lambda path: write_markdown(self.measurements, path))
        if self.settings.html_path:
            from pytest_neuronperf.report.html import ReportDependencyError, write_html

            try:
                self._write(self.settings.html_path, "--npf-html", lambda path: write_html(self.measurements, path))
            except ReportDependencyError as exc:
                self.errors.append(f"--npf-html: {exc}")
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary and self.measurements:
            # GitHub Actions shows this file on the run's page; other steps append to it too.
            from pytest_neuronperf.report.markdown import append_markdown

            try:
                append_markdown(self.measurements, step_summary)
            except Exception as exc:  # OSError mostly; nothing here may cost the files already written
                self.errors.append(f"GITHUB_STEP_SUMMARY: could not append to {step_summary}: {exc}")
            else:
                self.written.append("GitHub step summary")

    def _write(self, path: str, option: str, write: Any) -> None:
        target = Path(self.config.invocation_params.dir) / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write(str(target))
        except OSError as exc:
            self.errors.append(f"{option}: could not write {path}: {exc}")
        except ImportError:
            raise  # a missing report dependency has its own message
        except Exception as exc:
            # A report that cannot render one value must not cost the other files (or the baselines).
            self.errors.append(f"{option}: could not write {path}: {type(exc).__name__}: {exc}")
        else:
            self.written.append(path)

    # -- terminal output --------------------------------------------------------------------------

    def terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if self.is_worker or not (self.measurements or self.errors or self.lost_tests or self.warnings or self.saved
                                  or self.written):
            return
        from pytest_neuronperf.report.summary import summary_lines

        verbosity = config.get_verbosity()
        try:
            # The table fits the terminal pytest writes to (COLUMNS, or 80 without a terminal).
            width = config.get_terminal_writer().fullwidth
            lines = summary_lines(self.measurements, verbose=verbosity > 0, width=width)
        except Exception as exc:  # the files and baselines are written by now; still show what went wrong
            lines = [f"ERROR: the neuronperf table could not be shown: {type(exc).__name__}: {exc}"]
        if verbosity < 0:
            lines = lines[-1:] if lines else []
        for error in [*self.lost_tests.values(), *self.errors]:
            lines.append(f"ERROR: {error}")
        for warning in self.warnings:
            lines.append(f"WARNING: {warning}")
        if self.saved:
            lines.append("baselines saved: " + ", ".join(self.saved))
        if self.written:
            lines.append("results written: " + ", ".join(self.written))
        if not lines:
            return
        if verbosity >= 0:
            terminalreporter.write_sep("-", "neuronperf")
        for line in lines:
            terminalreporter.write_line(line)


def _relative(path: Path, root: Path | str) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return str(path)


def _where(m: Measurement, report: Mapping[str, Any]) -> str:
    from pytest_neuronperf.spec.matrix import config_text

    return f"{m.label} ({config_text(report)})"


@dataclass
class BaselineQuality:
    """What is wrong with the rounds a save would store: ``unusable`` is never saved, ``weak`` warns
    (and is refused under ``--npf-strict``)."""

    unusable: str = ""
    weak: list[str] = field(default_factory=list)


def baseline_quality(rounds: Sequence[Mapping[str, Any]]) -> BaselineQuality:
    """Judge the rounds of one configuration as a future baseline.

    A round with no inference cannot be compared with anything. Unstable rounds and percentiles
    from fewer effective samples than the gate's minimum make every later comparison against this
    baseline noisy or inconclusive: saved, but said so.
    """
    from pytest_neuronperf.spec.metrics import METRICS
    from pytest_neuronperf.stats.quantiles import min_samples_for_quantile

    quality = BaselineQuality()
    if not all(_number(r.get("n")) >= 1 and _number(r.get("throughput")) > 0 for r in rounds):
        quality.unusable = "a round completed no inference (nothing to compare later runs with)"
        return quality
    unstable = sum(1 for r in rounds if r.get("stable") is not True)
    if unstable:
        quality.weak.append(f"{unstable} of {len(rounds)} round(s) unstable (throughput drifted within the "
                            "window by more than 10%)")
    for metric in METRICS:
        if metric.quantile is None or metric.round_n_eff is None:
            continue
        if metric.optional and not any(r.get(metric.round_value) is not None for r in rounds):
            continue  # not measured by this configuration (a token metric of a model that does not stream)
        need = min_samples_for_quantile(metric.quantile)
        counts = [_number(r.get(metric.round_n_eff)) for r in rounds]
        have = math.nan if any(math.isnan(c) for c in counts) else min(counts)  # min() would skip a NaN
        if not have >= need:
            shown = f"{have:.0f}" if math.isfinite(have) else "no"
            quality.weak.append(f"{metric.name} rests on {shown} effective samples in its smallest round, "
                                f"the gate needs {need} to judge it")
    return quality


def _number(value: object) -> float:
    """A numeric field as a float; anything else (missing, null, text) as NaN, which fails every check."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)
