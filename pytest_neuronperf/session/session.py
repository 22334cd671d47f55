"""The plugin's session object: collects measurements, brings them home from xdist workers,
saves baselines, writes result files and prints the summary.

It is not a registered plugin: the plugin's hooks call it, so it is built only in
a run that benchmarks something (or asked for a result file), not in every run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_neuronperf.config.settings import Settings
    from pytest_neuronperf.report.results_file import Measurement
    from pytest_neuronperf.session.progress_view import ProgressView


class NpfSession:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.is_worker = hasattr(config, "workerinput")
        self.measurements: list[Measurement] = []
        self.saved: list[str] = []
        self.errors: list[str] = []
        self.written: list[str] = []
        self.progress: ProgressView | None = None  # the plugin attaches the terminal view

    @property
    def baseline_root(self) -> Path:
        return Path(self.config.rootpath) / self.settings.baseline_dir

    def add(self, measurement: Measurement) -> None:
        self.measurements.append(measurement)

    # -- xdist: workers send their measurements to the controller -----------------------------

    def payload(self) -> str:
        """This xdist worker's measurements, to send home to the controller."""
        return json.dumps([m.to_json() for m in self.measurements])

    def receive(self, payload: str) -> None:
        """Take the measurements a worker sent home (the :meth:`payload` of its session)."""
        from pytest_neuronperf.report.results_file import Measurement

        self.measurements.extend(Measurement.from_json(m) for m in json.loads(payload))

    # -- the end of the run -----------------------------------------------------------------------

    def finish(self, session: pytest.Session) -> None:
        """After the test loop of the xdist controller, or of a run without xdist: save baselines
        and write result files. Not called when the loop was interrupted: an interrupted run
        saves no baseline."""
        self.measurements.sort(key=lambda m: (m.nodeid, m.name))
        if self.settings.save_baseline:
            self._save_baselines()
        self._write_files()
        if self.errors:
            session.testsfailed += 1

    def _save_baselines(self) -> None:
        from pytest_neuronperf.baselines.keys import entry_key
        from pytest_neuronperf.baselines.schema import BaselineFileError, BaselineRecord
        from pytest_neuronperf.baselines.store import BaselineStore
        from pytest_neuronperf.gate.verdict import Verdict
        from pytest_neuronperf.spec.fields import STATUS_OK

        store = BaselineStore(self.baseline_root)
        by_module: dict[str, tuple[dict[str, BaselineRecord], dict[str, bool]]] = {}
        for m in self.measurements:
            updates, accumulate = by_module.setdefault(m.module_path, ({}, {}))
            for report, outcome in zip(m.reports, m.outcomes, strict=True):
                if report.get("status") != STATUS_OK or not report.get("rounds"):
                    continue
                key = entry_key(m.test_name, m.name, report)
                updates[key] = BaselineRecord.from_report(report, m.fingerprint)
                # Rounds accumulate only while performance is unchanged; a changed normal replaces them.
                accumulate[key] = outcome["verdict"] == Verdict.PASS and bool(outcome["judgements"])
        for module, (updates, accumulate) in sorted(by_module.items()):
            if not updates:
                continue
            try:
                result = store.save(module, updates, self.settings.fingerprint_keys, accumulate,
                                    overwrite_corrupt=self.settings.overwrite_corrupt)
            except (BaselineFileError, OSError) as exc:
                self.errors.append(f"baseline not saved for {module}: {exc}")
                continue
            self.saved.append(_relative(result.path, self.config.rootpath))
            if result.moved_aside is not None:
                kept = _relative(result.moved_aside, self.config.rootpath)
                self.saved.append(f"(unreadable old file kept as {kept})")

    def _write_files(self) -> None:
        if self.settings.json_path:
            from pytest_neuronperf._util.atomic_write import write_atomic
            from pytest_neuronperf.baselines.environment import fingerprint
            from pytest_neuronperf.report.results_file import results_document
            from pytest_neuronperf.report.text import json_text

            doc = results_document(self.measurements, fingerprint(self.settings.device or "cpu"))
            self._write(self.settings.json_path, "--npf-json",
                        lambda path: write_atomic(path, json_text(doc).encode()))
        if self.settings.csv_path:
            from pytest_neuronperf.report.text import write_csv
            from pytest_neuronperf.spec import fields

            rows = [row for m in self.measurements for row in m.flat_rows()]
            self._write(self.settings.csv_path, "--npf-csv",
                        lambda path: write_csv(rows, path, cols=fields.CSV_RUN_COLS))
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
            except OSError as exc:
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
        else:
            self.written.append(path)

    # -- terminal output --------------------------------------------------------------------------

    def terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        if self.is_worker or not (self.measurements or self.errors or self.saved or self.written):
            return
        from pytest_neuronperf.report.summary import summary_lines

        verbosity = config.get_verbosity()
        lines = summary_lines(self.measurements, verbose=verbosity > 0)
        if verbosity < 0:
            lines = lines[-1:] if lines else []
        for error in self.errors:
            lines.append(f"ERROR: {error}")
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
