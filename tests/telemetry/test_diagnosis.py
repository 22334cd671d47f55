"""The one-line diagnosis: device-bound, host-bound, a waiting device, and the host's overhead."""

from __future__ import annotations

from pytest_neuronperf.telemetry.diagnosis import diagnose


def test_a_busy_device_is_the_bottleneck() -> None:
    text = diagnose({"device_util_avg": 93.0, "cpu_percent_avg": 40.0})
    assert text is not None and text.startswith("device busy 93%: device-bound")


def test_an_idle_device_beside_saturated_host_cpus_is_host_bound() -> None:
    text = diagnose({"device_util_avg": 34.0, "cpu_percent_avg": 97.0, "workers_per_model": 2})
    assert text is not None and "device busy 34% while the host CPUs were 97% busy: host-bound" in text


def test_an_idle_device_with_an_idle_host_asks_for_more_in_flight() -> None:
    text = diagnose({"gpu_util_avg": 20.0, "cpu_percent_avg": 30.0, "workers_per_model": 1})
    assert text is not None and "the device waits between calls; more workers per copy (now 1)" in text


def test_the_host_overhead_is_the_gap_between_host_and_device_latency() -> None:
    text = diagnose({"device_util_avg": 60.0, "latency_ms_p50": 1.5, "device_latency_ms_p50": 1.0})
    assert text is not None and text.endswith("host overhead 0.5 ms per inference (p50 1.5 ms on the host, "
                                              "1 ms on the device)")


def test_without_telemetry_there_is_no_diagnosis() -> None:
    assert diagnose({"latency_ms_p50": 1.0, "cpu_percent_avg": 50.0}) is None
