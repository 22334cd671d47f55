"""A test goes from an nn.Module to a gated Neuron benchmark in one marker (stand-ins for the Neuron software)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.standins.fixtures import FakeNeuron

TEST = """
import pytest, torch
from npf_models import Tiny

def record(copy_id, config, model):
    import json, os
    with open(os.environ["NPF_TEST_LOG"], "a") as fh:
        fh.write(json.dumps({"n": config["n_models"], "id": copy_id,
                             "cores": os.environ.get("NEURON_RT_VISIBLE_CORES")}) + "\\n")

@pytest.mark.neuron_benchmark(model=Tiny, inputs=torch.zeros(1, 4), device_type="neuron", compile=True,
                              compiler_args=["--optlevel", "1"], n_models=[1, "max"], workers_per_model=1,
                              duration=0.3, setup_fn=record)
def test_on_neuron():
    pass

"""


@pytest.mark.slow
def test_compile_then_benchmark_on_neuron_cores(perf_project: pytest.Pytester, fake_neuron: FakeNeuron,
                                                monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_neuron.devices(2, 2)
    log = tmp_path / "copies.jsonl"
    monkeypatch.setenv("NPF_TEST_LOG", str(log))
    perf_project.makepyfile(test_neuron=TEST)
    first = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "--npf-json=r.json")
    first.assert_outcomes(passed=1)
    (m,) = json.loads((perf_project.path / "r.json").read_text())["measurements"]
    assert m["device_type"] == "neuron"
    assert [(r["n_models"], r["status"]) for r in m["reports"]] == [(1, "finished"), (4, "finished")]
    assert all(r["model_filename"].endswith(".pt") for r in m["reports"])
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    four = sorted({s["cores"] for s in seen if s["n"] == 4})  # the same cores in every round
    assert four == ["0", "1", "2", "3"]
    traces = fake_neuron.records("trace")
    assert len(traces) == 1 and traces[0]["compiler_args"] == ["--optlevel", "1"]

    second = perf_project.runpytest_subprocess("-p", "no:cacheprovider")
    second.assert_outcomes(passed=1)
    assert len(fake_neuron.records("trace")) == 1  # compiled once: the second run reused the artifact
    perf_project.runpytest_subprocess("-p", "no:cacheprovider", "--npf-recompile").assert_outcomes(passed=1)
    assert len(fake_neuron.records("trace")) == 2
