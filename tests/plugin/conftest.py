from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

MODELS = '''
import os, time
import torch

class Service(torch.nn.Module):
    """Sleeps NPF_SERVICE_US microseconds per call (read when the copy builds the model).

    Sleeping, not spinning: the service time holds while other tests load the CPU, so the plugin
    tests see the slowdowns they set up and no others.
    """
    def __init__(self):
        super().__init__()
        self.s = float(os.environ.get("NPF_SERVICE_US", "1000")) / 1e6
    def forward(self, x):
        time.sleep(self.s)
        return x

class Tiny(torch.nn.Module):
    def forward(self, x):
        return x * 2
'''


@pytest.fixture
def perf_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with a model module the model copies can import, and quick default settings."""
    pytester.makepyfile(npf_models=MODELS)
    # A wide tolerance: these tests set up 2x slowdowns, and the machine runs other tests meanwhile.
    pytester.makeini("[pytest]\nnpf_rounds = 3\nnpf_max_rounds = 4\nnpf_tolerance = 25%\n")
    return pytester


@pytest.fixture
def baseline_files(pytester: pytest.Pytester) -> Callable[[], dict[str, Any]]:
    def read() -> dict[str, Any]:
        root = Path(pytester.path) / ".neuronperf" / "baselines"
        return {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("*.json"))}

    return read
