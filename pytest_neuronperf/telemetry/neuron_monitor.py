"""neuron-monitor during a timed window: device latency, NeuronCore utilisation, device memory, errors.

``neuron-monitor -c FILE`` streams one JSON report per period to stdout (aws-neuronx-tools; see the
Neuron SDK's neuron-monitor user guide). The config asks only for the copies' processes (their tag:
the pid, unless ``NEURON_PROCESS_TAG`` says otherwise) and only for the metric groups read here:
``neuroncore_counters`` (per-core utilisation in percent), ``execution_stats`` (error and execution
counts of the period, and its total and device latency percentiles in seconds) and ``memory_used``
(device memory by kind, per core). Counts are per period, so they add up over the window.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Final

MONITOR: Final = "neuron-monitor"
METRIC_GROUPS: Final = ("neuroncore_counters", "execution_stats", "memory_used")
ERROR_KINDS: Final = ("generic", "numerical", "transient", "model", "runtime", "hardware")
# Execution outcomes that mean the device did not do what was asked; "completed" is the good one.
BAD_EXECUTIONS: Final = ("completed_with_err", "completed_with_num_err", "timed_out", "incorrect_input",
                         "failed_to_queue")
STOP_GRACE_S: Final = 2.0
MB: Final = 1024 * 1024


def period_text(window_s: float) -> str:
    """1 s, or a fifth of the window when that is shorter: at least five reports per window."""
    ms = max(100, min(1000, int(window_s * 1000 / 5)))
    return "1s" if ms == 1000 else f"{ms}ms"


def monitor_config(tags: Iterable[str], window_s: float) -> dict[str, Any]:
    """The neuron-monitor config that watches only the processes tagged ``tags``."""
    pattern = "^(" + "|".join(re.escape(t) for t in sorted(set(tags))) + ")$"
    return {
        "period": period_text(window_s),
        "neuron_runtimes": [{"tag_filter": pattern, "metrics": [{"type": g} for g in METRIC_GROUPS]}],
    }


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass
class Telemetry:
    """The reports of one window, folded as they arrive."""

    reports: int = 0
    utilization: dict[str, list[float]] = field(default_factory=dict)  # core -> per period
    device_p50_s: list[tuple[float, float]] = field(default_factory=list)  # (p50, executions) per period
    device_p99_s: list[float] = field(default_factory=list)
    total_p50_s: list[tuple[float, float]] = field(default_factory=list)
    total_p99_s: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    executions: dict[str, int] = field(default_factory=dict)
    tensors_bytes: int = 0
    model_code_bytes: int = 0
    device_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    def add(self, report: Mapping[str, Any]) -> None:
        """Fold one neuron-monitor report (a whole JSON document) in."""
        self.reports += 1
        runtimes = report.get("neuron_runtime_data")
        if not isinstance(runtimes, list):
            return
        tensors = code = device = 0
        for runtime in runtimes:
            if not isinstance(runtime, Mapping):
                continue
            if runtime.get("error"):
                self._problem(f"neuron-monitor: {runtime['error']}")
            data = runtime.get("report")
            if not isinstance(data, Mapping):
                continue
            self._counters(data.get("neuroncore_counters"))
            self._execution(data.get("execution_stats"))
            used = self._memory(data.get("memory_used"))
            tensors, code, device = tensors + used[0], code + used[1], device + used[2]
        # Memory is a level, not a count: the window's figure is its highest total.
        self.tensors_bytes = max(self.tensors_bytes, tensors)
        self.model_code_bytes = max(self.model_code_bytes, code)
        self.device_bytes = max(self.device_bytes, device)

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def _counters(self, group: object) -> None:
        if not isinstance(group, Mapping):
            return
        cores = group.get("neuroncores_in_use")
        if not isinstance(cores, Mapping):
            return
        for core, values in cores.items():
            util = _number(values.get("neuroncore_utilization")) if isinstance(values, Mapping) else None
            if util is not None:
                self.utilization.setdefault(str(core), []).append(util)

    def _execution(self, group: object) -> None:
        if not isinstance(group, Mapping):
            return
        errors = group.get("error_summary")
        if isinstance(errors, Mapping):
            for kind, count in errors.items():
                n = _number(count)
                if n is not None:
                    self.errors[str(kind)] = self.errors.get(str(kind), 0) + int(n)
        summary = group.get("execution_summary")
        done = 0.0
        if isinstance(summary, Mapping):
            for kind, count in summary.items():
                n = _number(count)
                if n is not None:
                    self.executions[str(kind)] = self.executions.get(str(kind), 0) + int(n)
            done = _number(summary.get("completed")) or 0.0
        latency = group.get("latency_stats")
        if not isinstance(latency, Mapping):
            return
        for key, p50s, p99s in (("device_latency", self.device_p50_s, self.device_p99_s),
                                ("total_latency", self.total_p50_s, self.total_p99_s)):
            stats = latency.get(key)
            if not isinstance(stats, Mapping):
                continue  # null: nothing ran in this period
            p50, p99 = _number(stats.get("p50")), _number(stats.get("p99"))
            if p50 is not None:
                p50s.append((p50, max(done, 1.0)))
            if p99 is not None:
                p99s.append(p99)

    @staticmethod
    def _memory(group: object) -> tuple[int, int, int]:
        if not isinstance(group, Mapping):
            return 0, 0, 0
        used = group.get("neuron_runtime_used_bytes")
        if not isinstance(used, Mapping):
            return 0, 0, 0
        device = int(_number(used.get("neuron_device")) or 0)
        breakdown = used.get("usage_breakdown")
        per_core = breakdown.get("neuroncore_memory_usage") if isinstance(breakdown, Mapping) else None
        tensors = code = 0
        if isinstance(per_core, Mapping):
            for values in per_core.values():
                if isinstance(values, Mapping):
                    tensors += int(_number(values.get("tensors")) or 0)
                    code += int(_number(values.get("model_code")) or 0)
        return tensors, code, device

    # ---------------------------------------------------------------- the window's figures

    def invalid_reason(self) -> str | None:
        """Why the window is no measurement: device errors, or executions that failed; None when clean."""
        bad = [f"{kind} errors {n}" for kind, n in self.errors.items() if n]
        bad += [f"{kind} {self.executions[kind]}" for kind in BAD_EXECUTIONS if self.executions.get(kind)]
        if not bad:
            return None
        return "the device reported " + ", ".join(bad) + " during the window (neuron-monitor)"

    def fields(self) -> dict[str, float | int | str | None]:
        """The report fields of this window."""
        def weighted_median(pairs: Sequence[tuple[float, float]]) -> float | None:
            if not pairs:
                return None
            ordered = sorted(pairs)
            half, seen = sum(w for _, w in ordered) / 2, 0.0
            for value, weight in ordered:
                seen += weight
                if seen >= half:
                    return value
            return ordered[-1][0]

        def ms(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds * 1000, 4)

        utils = [u for values in self.utilization.values() for u in values]
        out: dict[str, float | int | str | None] = {
            "device_latency_ms_p50": ms(weighted_median(self.device_p50_s)),
            "device_latency_ms_p99": ms(max(self.device_p99_s, default=None)),
            "runtime_latency_ms_p50": ms(weighted_median(self.total_p50_s)),
            "runtime_latency_ms_p99": ms(max(self.total_p99_s, default=None)),
            "device_util_avg": round(sum(utils) / len(utils), 2) if utils else None,
            "device_util_peak": round(max(utils), 2) if utils else None,
            "device_mem_tensors_mb": round(self.tensors_bytes / MB, 3) if self.reports else None,
            "device_mem_model_code_mb": round(self.model_code_bytes / MB, 3) if self.reports else None,
            "device_mem_mb": round(self.device_bytes / MB, 3) if self.reports else None,
            "device_errors": sum(self.errors.values()) if self.reports else None,
            "device_executions": self.executions.get("completed") if self.reports else None,
            "device_failed_executions": sum(self.executions.get(k, 0) for k in BAD_EXECUTIONS)
            if self.reports else None,
            "telemetry_reports": self.reports,
        }
        return out


def iter_documents(stream: IO[str]) -> Iterable[dict[str, Any]]:
    """The JSON documents of a stream, one after another (each may span lines); bad text is skipped."""
    decoder = json.JSONDecoder()
    buffer = ""
    for line in stream:
        buffer += line
        while True:
            text = buffer.lstrip()
            if not text:
                buffer = ""
                break
            try:
                doc, end = decoder.raw_decode(text)
            except json.JSONDecodeError:
                if text[0] != "{":
                    # Not the start of a report (a log line): drop up to the next one.
                    at = text.find("{")
                    buffer = "" if at < 0 else text[at:]
                    continue
                buffer = text
                break
            buffer = text[end:]
            if isinstance(doc, dict):
                yield doc


class NeuronMonitor:
    """Runs neuron-monitor for the copies tagged ``tags`` while the ``with`` block lasts."""

    def __init__(self, tags: Iterable[str], window_s: float, executable: str | None = None) -> None:
        self.tags = list(tags)
        self.window_s = window_s
        self.executable = executable or shutil.which(MONITOR)
        self.telemetry = Telemetry()
        self.note: str | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._config: str | None = None
        self._lock = threading.Lock()
        self._stopping = False

    def __enter__(self) -> NeuronMonitor:
        if self.executable is None:
            self.note = (f"{MONITOR} is not on PATH, so no device telemetry was collected (it comes with "
                         "aws-neuronx-tools)")
            return self
        fd, self._config = tempfile.mkstemp(prefix="npf-neuron-monitor-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(monitor_config(self.tags, self.window_s), fh)
        try:
            self._proc = subprocess.Popen([self.executable, "-c", self._config], stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
        except OSError as exc:
            self.note = f"{MONITOR} could not start ({exc}), so no device telemetry was collected"
            return self
        self._reader = threading.Thread(target=self._read, name="npf-neuron-monitor", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for doc in iter_documents(self._proc.stdout):
                with self._lock:
                    if self._stopping:
                        return
                    self.telemetry.add(doc)

    def fields(self) -> dict[str, Any]:
        return self.telemetry.fields()

    def invalid_reason(self) -> str | None:
        return self.telemetry.invalid_reason()

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is not None:
            code = proc.poll()
            with self._lock:
                self._stopping = True
            if code is None:
                proc.terminate()
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            elif self.note is None:
                self.note = (f"{MONITOR} exited with code {code} during the window after "
                             f"{self.telemetry.reports} report(s): the telemetry covers part of it")
            if self._reader is not None:
                self._reader.join(STOP_GRACE_S)
        if self._config is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._config)
