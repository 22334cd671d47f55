"""A one-line diagnosis of a configuration from its telemetry: device-bound, host-bound, or starved.

Thresholds: a device busy 80% of the window or more is the bottleneck; below 50% it waits for the host,
which is saturated when the host CPUs are 85% busy or more (the copies' threads cannot feed it), and
otherwise leaves the device idle between calls (too few requests in flight). Between 50% and 80% neither
side clearly limits. The gap between the host's p50 latency and the device's is the host's overhead per
inference (framework, copies in and out, the worker loop).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

DEVICE_BOUND: Final = 80.0
DEVICE_WAITS: Final = 50.0
HOST_SATURATED: Final = 85.0


def _number(report: Mapping[str, object], key: str) -> float | None:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def diagnose(report: Mapping[str, object]) -> str | None:
    """The diagnosis of a report with device telemetry (NeuronCore or GPU utilisation); None without it."""
    util = _number(report, "device_util_avg")
    if util is None:
        util = _number(report, "gpu_util_avg")
    if util is None:
        return None
    host = _number(report, "cpu_percent_avg")
    workers = report.get("workers_per_model")
    if util >= DEVICE_BOUND:
        text = (f"device busy {util:.0f}%: device-bound; more copies on more cores, a larger batch or a faster "
                "compiled model would help")
    elif util < DEVICE_WAITS and host is not None and host >= HOST_SATURATED:
        text = (f"device busy {util:.0f}% while the host CPUs were {host:.0f}% busy: host-bound; less pre- or "
                "postprocessing, or fewer copies per host core, would help")
    elif util < DEVICE_WAITS:
        busy = "" if host is None else f" with the host CPUs {host:.0f}% busy"
        text = (f"device busy {util:.0f}%{busy}: the device waits between calls; more workers per copy "
                f"(now {workers}) or a larger batch would keep it busy")
    else:
        text = f"device busy {util:.0f}%: neither the device nor the host is saturated"
    host_p50, device_p50 = _number(report, "latency_ms_p50"), _number(report, "device_latency_ms_p50")
    if host_p50 is not None and device_p50 is not None and host_p50 >= device_p50:
        text += f"; host overhead {host_p50 - device_p50:.3g} ms per inference (p50 {host_p50:.3g} ms on the host, " \
                f"{device_p50:.3g} ms on the device)"
    return text
