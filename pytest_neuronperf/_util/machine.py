"""Facts about this machine read from local sources only (never the network)."""

from __future__ import annotations

import functools
import os
import platform

DMI_PRODUCT_NAME = "/sys/devices/virtual/dmi/id/product_name"


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


@functools.cache
def instance_type() -> str:
    """The EC2 instance type (the DMI product name there), else the machine's product name or 'unknown'."""
    return _read_text(DMI_PRODUCT_NAME) or "unknown"


@functools.cache
def cpu_model() -> str:
    cpuinfo = _read_text("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "Hardware") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask), sorted."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))
