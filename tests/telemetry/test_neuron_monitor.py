"""neuron-monitor during a window: its config, its JSON stream, the figures, a crash, and a missing tool."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest

from pytest_neuronperf.telemetry.neuron_monitor import NeuronMonitor, Telemetry, iter_documents, monitor_config
from tests.standins.fixtures import BIN

MONITOR = str(BIN / "neuron-monitor")


def report(util: float = 50.0, errors: dict[str, int] | None = None, timed_out: int = 0,
           latency: bool = True) -> dict[str, object]:
    stats = {"p50": 0.002, "p99": 0.004} if latency else None
    return {"neuron_runtime_data": [{"pid": 7, "neuron_runtime_tag": "7", "error": "", "report": {
        "neuroncore_counters": {"neuroncores_in_use": {"0": {"neuroncore_utilization": util}}},
        "execution_stats": {"error_summary": {"numerical": 0, **(errors or {})},
                            "execution_summary": {"completed": 10, "timed_out": timed_out},
                            "latency_stats": {"device_latency": stats, "total_latency": stats}},
        "memory_used": {"neuron_runtime_used_bytes": {"neuron_device": 3 << 20, "usage_breakdown": {
            "neuroncore_memory_usage": {"0": {"tensors": 1 << 20, "model_code": 2 << 20}}}}},
    }}]}


def test_the_config_watches_only_the_copies_and_reports_at_least_five_times_a_window() -> None:
    config = monitor_config(["123", "45"], window_s=2.0)
    assert config["period"] == "400ms"
    assert monitor_config(["1"], 60)["period"] == "1s"
    [runtime] = config["neuron_runtimes"]
    assert runtime["tag_filter"] == "^(123|45)$"
    assert {m["type"] for m in runtime["metrics"]} == {"neuroncore_counters", "execution_stats", "memory_used"}


def test_reports_fold_into_the_window_figures() -> None:
    t = Telemetry()
    t.add(report(util=40.0))
    t.add(report(util=60.0, latency=False))  # nothing ran in that period: its latency is null
    f = t.fields()
    assert f["device_util_avg"] == 50.0 and f["device_util_peak"] == 60.0
    assert f["device_latency_ms_p50"] == 2.0 and f["device_latency_ms_p99"] == 4.0
    assert f["device_mem_tensors_mb"] == 1.0 and f["device_mem_model_code_mb"] == 2.0 and f["device_mem_mb"] == 3.0
    assert f["device_errors"] == 0 and f["device_executions"] == 20 and f["telemetry_reports"] == 2
    assert t.invalid_reason() is None


def test_errors_or_failed_executions_make_the_window_invalid_naming_the_counters() -> None:
    t = Telemetry()
    t.add(report())
    t.add(report(errors={"numerical": 2, "hardware": 1}, timed_out=3))
    assert t.invalid_reason() == ("the device reported numerical errors 2, hardware errors 1, timed_out 3 during the "
                                  "window (neuron-monitor)")


def test_documents_spanning_lines_and_log_noise_are_read() -> None:
    text = 'starting\n{"a":\n 1}\n{"b": 2}{"c": 3}\nnot json\n{"d"'
    assert list(iter_documents(io.StringIO(text))) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_the_stand_in_monitor_streams_reports_for_the_tagged_copies(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "monitor.jsonl"
    monkeypatch.setenv("NPF_STANDIN_MONITOR_TAGS", "111,222")
    monkeypatch.setenv("NPF_STANDIN_MONITOR_LOG", str(log))
    monkeypatch.setenv("NPF_STANDIN_MONITOR_ERRORS", "transient=1")
    with NeuronMonitor(["111"], window_s=0.5, executable=MONITOR) as monitor:
        time.sleep(0.6)
    f = monitor.telemetry.fields()
    assert monitor.note is None
    assert f["telemetry_reports"] is not None and int(f["telemetry_reports"]) >= 3
    assert f["device_util_peak"] is not None and f["device_util_avg"] is not None
    # Only the tagged copy's runtime (two cores) is read, not the other process's.
    assert set(monitor.telemetry.utilization) == {"0", "1"}
    assert monitor.telemetry.invalid_reason() == "the device reported transient errors 1 during the window " \
                                                 "(neuron-monitor)"
    config = json.loads(log.read_text().splitlines()[0])["config"]
    assert config["neuron_runtimes"][0]["tag_filter"] == "^(111)$"


def test_a_monitor_that_crashes_leaves_a_note_and_what_it_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPF_STANDIN_MONITOR_TAGS", "9")
    monkeypatch.setenv("NPF_STANDIN_MONITOR_CRASH", "2")
    with NeuronMonitor(["9"], window_s=0.5, executable=MONITOR) as monitor:
        time.sleep(0.8)
    assert monitor.note is not None
    assert "exited with code 3 during the window after 2 report(s)" in monitor.note
    assert monitor.telemetry.reports == 2


def test_without_neuron_monitor_on_path_it_says_so_and_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with NeuronMonitor(["1"], window_s=1.0) as monitor:
        pass
    assert monitor.note is not None and "neuron-monitor is not on PATH" in monitor.note
    assert monitor.telemetry.fields()["device_util_avg"] is None
