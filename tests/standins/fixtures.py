"""Fixtures that put the Neuron stand-ins (``torch_neuronx``, ``neuron-ls``) in front of the real ones.

tests/conftest.py imports them: ``from tests.standins.fixtures import fake_neuron``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

STANDINS = Path(__file__).resolve().parent
BIN = STANDINS / "bin"
REPO_ROOT = STANDINS.parent.parent

_CLEARED_ENV = (
    "NEURON_RT_VISIBLE_CORES",
    "NEURON_RT_NUM_CORES",
    "NEURON_LOGICAL_NC_CONFIG",
    "NPF_STANDIN_DEVICES",
    "NPF_STANDIN_CORES",
    "NPF_STANDIN_NEURON_LS_EXIT",
    "NPF_STANDIN_FAIL_BATCH_SIZES",
    "NPF_STANDIN_CRASH_BATCH_SIZES",
)


@dataclass
class FakeNeuron:
    """Handles on the stand-ins: the log they write and knobs for what they pretend."""

    monkeypatch: pytest.MonkeyPatch
    log: Path
    bin: Path = BIN
    root: Path = STANDINS

    def devices(self, n_devices: int, cores_per_device: int) -> None:
        """Make the stand-in neuron-ls report ``n_devices`` x ``cores_per_device`` NeuronCores."""
        self.monkeypatch.setenv("NPF_STANDIN_DEVICES", str(n_devices))
        self.monkeypatch.setenv("NPF_STANDIN_CORES", str(cores_per_device))

    def neuron_ls_fails(self, status: int = 1) -> None:
        self.monkeypatch.setenv("NPF_STANDIN_NEURON_LS_EXIT", str(status))

    def fail_batch_sizes(self, *sizes: int) -> None:
        """Make the stand-in compiler fail for these batch sizes."""
        self.monkeypatch.setenv("NPF_STANDIN_FAIL_BATCH_SIZES", ",".join(map(str, sizes)))

    def crash_batch_sizes(self, *sizes: int) -> None:
        """Make the process running the stand-in compiler die at these batch sizes."""
        self.monkeypatch.setenv("NPF_STANDIN_CRASH_BATCH_SIZES", ",".join(map(str, sizes)))

    def records(self, event: str | None = None) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines() if line]
        return [r for r in lines if event is None or r["event"] == event]

    @property
    def models(self) -> ModuleType:
        """``npf_standin_models``: small models and compile functions importable by child processes."""
        import npf_standin_models

        return npf_standin_models

    def subprocess_env(self) -> dict[str, str]:
        """This process's environment with the package and the stand-ins importable (for ``python -c``)."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        return env


@pytest.fixture
def fake_neuron(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeNeuron]:
    """Stand-in ``neuron-ls`` first on PATH, stand-in ``torch_neuronx`` first on sys.path and PYTHONPATH.

    Both environment variables and sys.path are patched so that spawned
    processes (which copy the parent's sys.path) and ``subprocess`` children
    (which read PYTHONPATH) find the stand-ins too. No outer NeuronCore
    settings leak in from the calling environment.
    """
    neuron_ls = BIN / "neuron-ls"
    if not os.access(neuron_ls, os.X_OK):
        neuron_ls.chmod(neuron_ls.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    for name in _CLEARED_ENV:
        monkeypatch.delenv(name, raising=False)
    log = tmp_path / "standin-log.jsonl"
    monkeypatch.setenv("NPF_STANDIN_LOG", str(log))
    monkeypatch.setenv("PATH", os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(STANDINS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    )
    monkeypatch.syspath_prepend(str(STANDINS))
    preloaded = {name for name in ("torch_neuronx", "npf_standin_models") if name in sys.modules}
    yield FakeNeuron(monkeypatch=monkeypatch, log=log)
    for name in ("torch_neuronx", "npf_standin_models"):
        if name not in preloaded:
            sys.modules.pop(name, None)
