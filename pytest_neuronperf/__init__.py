"""pytest-neuronperf: inference throughput and latency tests, and a NeuronPerf-style benchmarking API.

Importing this package is cheap: torch, numpy and the runner load only when
a function that needs them is called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_neuronperf._util.log import set_verbosity
    from pytest_neuronperf.errors import BenchmarkError, DeviceUnavailableError
    from pytest_neuronperf.report.html import write_html
    from pytest_neuronperf.report.text import print_reports, write_csv, write_json
    from pytest_neuronperf.runner.benchmark import benchmark
    from pytest_neuronperf.runner.reports import get_reports

__all__ = [
    "BenchmarkError",
    "DeviceUnavailableError",
    "__version__",
    "benchmark",
    "cpu",
    "get_reports",
    "print_reports",
    "set_verbosity",
    "torch",
    "write_csv",
    "write_html",
    "write_json",
]

_LAZY = {
    "benchmark": "pytest_neuronperf.runner.benchmark",
    "BenchmarkError": "pytest_neuronperf.errors",
    "DeviceUnavailableError": "pytest_neuronperf.errors",
    "set_verbosity": "pytest_neuronperf._util.log",
    "get_reports": "pytest_neuronperf.runner.reports",
    "print_reports": "pytest_neuronperf.report.text",
    "write_csv": "pytest_neuronperf.report.text",
    "write_json": "pytest_neuronperf.report.text",
    "write_html": "pytest_neuronperf.report.html",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("torch", "cpu", "model_index"):
        return importlib.import_module(f"pytest_neuronperf.{name}")
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pytest-neuronperf")
        except PackageNotFoundError:
            return "0+unknown"
    raise AttributeError(f"module 'pytest_neuronperf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
