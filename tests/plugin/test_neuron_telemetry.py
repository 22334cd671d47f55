"""A window in which the device failed, through the plugin: the test fails with the counters, nothing is saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.standins.fixtures import FakeNeuron

pytestmark = pytest.mark.usefixtures("no_leftover_children")

INVALID = """
import pytest, torch
from npf_models import Tiny

@pytest.mark.neuron_benchmark(model=Tiny, inputs=torch.zeros(1, 4), device_type="neuron", compile=True,
                              n_models=1, workers_per_model=1, duration=0.6)
def test_on_neuron():
    pass
"""


def test_an_invalid_run_fails_its_test_with_the_counters_and_is_not_saved(
        perf_project: pytest.Pytester, fake_neuron: FakeNeuron, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_neuron.devices(1, 2)
    monkeypatch.setenv("NPF_STANDIN_MONITOR_ERRORS", "hardware=1")
    perf_project.makepyfile(test_neuron=INVALID)
    result = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "-o", "npf_rounds=1", "-o",
                                               "npf_max_rounds=1", "--npf-save-baseline")
    result.assert_outcomes(failed=1)
    assert "the device reported hardware errors 1 during the window (neuron-monitor)" in result.stdout.str()
    assert not list((Path(perf_project.path) / ".neuronperf" / "baselines").rglob("*.json"))
