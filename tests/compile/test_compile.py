"""compile(): one artifact per batch size x pipeline size, failures recorded, a cache, interrupts (stand-ins)."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from pytest_neuronperf import model_index
from pytest_neuronperf.compile.cache import cache_key, state_digest
from pytest_neuronperf.compile.parent import compile as npf_compile

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


def sizes(index: dict) -> list[tuple[int, int, str]]:
    return [(c["batch_size"], c["pipeline_size"], c["status"]) for c in index["model_configs"]]


def test_compiles_every_batch_and_pipeline_size(fake_neuron, tmp_path):
    model = fake_neuron.models.TinyModel()
    inputs = [torch.rand(1, 4), torch.rand(2, 4)]
    path = npf_compile(model, inputs, batch_sizes=[1, 2], pipeline_sizes=[1, 2], models_dir=tmp_path / "models",
                       compiler_args=["--auto-cast", "none"])
    assert path == str(tmp_path / "models" / "TinyModel.json")
    index = model_index.load(path)
    assert index["model_name"] == "TinyModel"
    assert sizes(index) == [(1, 1, "finished"), (1, 2, "finished"), (2, 1, "finished"), (2, 2, "finished")]
    for config in index["model_configs"]:
        name = os.path.basename(config["filename"])
        assert re.fullmatch(rf"TinyModel_b{config['batch_size']}_p{config['pipeline_size']}_[0-9a-f]{{8}}\.pt", name)
        assert config["compile_s"] >= 0
        assert config["input_shapes"] == [[config["batch_size"], 4]]
        compiled = torch.jit.load(config["filename"])
        x = inputs[config["batch_size"] - 1]
        assert torch.allclose(compiled(x), model(x))
    on_disk = json.loads(Path(path).read_text())
    assert not os.path.isabs(on_disk["model_configs"][0]["filename"])  # relative to the index
    traces = fake_neuron.records("trace")
    assert [t["batch_size"] for t in traces] == [1, 1, 2, 2]
    assert all(t["compiler_args"] == ["--auto-cast", "none"] for t in traces)
    assert all(r["pid"] != os.getpid() for r in fake_neuron.records())
    assert "torch_neuronx" not in sys.modules  # the parent never imported it


def test_failures_are_recorded_and_the_rest_carries_on(fake_neuron, tmp_path):
    fake_neuron.fail_batch_sizes(2)
    fake_neuron.crash_batch_sizes(4)
    inputs = [torch.rand(bs, 4) for bs in (1, 2, 4, 8)]
    path = npf_compile(fake_neuron.models.TinyModel(), inputs, batch_sizes=[1, 2, 4, 8], models_dir=tmp_path,
                       model_name="tiny net", verbosity=0)
    index = model_index.load(path)
    assert os.path.basename(path) == "tiny_net.json"
    assert sizes(index) == [(1, 1, "finished"), (2, 1, "error"), (4, 1, "error"), (8, 1, "finished")]
    failed, crashed = index["model_configs"][1:3]
    assert failed["error"] == "RuntimeError: stand-in neuronx-cc: simulated compile failure for batch size 2"
    assert crashed["error"] == "the compile process ended (exit code 9) while compiling this configuration"
    assert re.fullmatch(r"tiny_net_b4_p1_[0-9a-f]{8}\.pt", os.path.basename(crashed["filename"]))
    assert not os.path.exists(failed["filename"]) and not os.path.exists(crashed["filename"])
    assert [c["batch_size"] for c in model_index.configs(path)] == [1, 8]
    assert len({r["pid"] for r in fake_neuron.records("trace")}) == 2  # a fresh process after the crash


def test_cache_reuses_artifacts_until_recompile(fake_neuron, tmp_path):
    model = fake_neuron.models.TinyModel()
    inputs = [torch.rand(1, 4), torch.rand(2, 4)]
    first = model_index.load(npf_compile(model, inputs, batch_sizes=[1, 2], models_dir=tmp_path))
    assert len(fake_neuron.records("trace")) == 2
    cache = sorted(os.listdir(tmp_path / ".cache"))
    assert len(cache) == 2 and all(name.endswith(".json") for name in cache)

    second = model_index.load(npf_compile(model, inputs, batch_sizes=[1, 2], models_dir=tmp_path))
    assert len(fake_neuron.records("trace")) == 2  # the compiler did not run
    assert [c["filename"] for c in second["model_configs"]] == [c["filename"] for c in first["model_configs"]]
    assert [c["compile_s"] for c in second["model_configs"]] == [c["compile_s"] for c in first["model_configs"]]
    assert all(c["cached"] for c in second["model_configs"])

    os.remove(first["model_configs"][0]["filename"])  # a cache entry whose artifact is gone is a miss
    with torch.no_grad():
        model.linear.bias.add_(1.0)  # as are other weights
    third = model_index.load(npf_compile(model, inputs, batch_sizes=[1, 2], models_dir=tmp_path, recompile=True))
    assert [t["batch_size"] for t in fake_neuron.records("trace")] == [1, 2, 1, 2]
    assert not any(c.get("cached") for c in third["model_configs"])
    assert third["model_configs"][0]["filename"] != first["model_configs"][0]["filename"]


def test_cache_key_covers_everything_that_changes_the_artifact():
    base = dict(source_text="class M: ...", weights="w", inputs=(torch.zeros(2, 3),), compiler_args=["-O1"],
                batch_size=2, pipeline_size=1, compiler="torch_neuronx.trace",
                versions={"torch": "2.1", "torch-neuronx": "2.1.2", "neuronx-cc": "2.14"})
    key = cache_key(**base)
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert cache_key(**{**base, "inputs": (torch.zeros(2, 3),)}) == key  # values do not matter, shapes do
    changes = {
        "source_text": "class M: pass", "weights": "v", "inputs": (torch.zeros(2, 4),),
        "compiler_args": ["-O2"], "batch_size": 4, "pipeline_size": 2, "compiler": "m:f",
        "versions": {**base["versions"], "neuronx-cc": "2.15"},
    }
    for name, value in changes.items():
        assert cache_key(**{**base, name: value}) != key, name
    assert cache_key(**{**base, "inputs": (torch.zeros(2, 3, dtype=torch.float16),)}) != key


def test_state_digest_follows_the_weights():
    torch.manual_seed(1)
    model = torch.nn.Linear(3, 2)
    digest = state_digest(model)
    assert state_digest(model) == digest
    assert state_digest(torch.nn.Linear(3, 2)) != digest
    with torch.no_grad():
        model.weight[0, 0] += 1
    assert state_digest(model) != digest
    assert state_digest(torch.nn.Linear(3, 2).to(torch.bfloat16)) != ""
    assert state_digest(len) == ""


def test_model_class_is_built_in_the_child_with_stable_weights(fake_neuron, tmp_path):
    models = fake_neuron.models
    x = torch.rand(3, 4)
    first = model_index.load(npf_compile(models.TinyModel, x, batch_sizes=3, models_dir=tmp_path,
                                         compile_fn=models.cpu_trace, compiler_args={"lnc": 2}))
    assert first["model_name"] == "TinyModel"
    calls = fake_neuron.records("compile_fn")
    assert [(c["batch_size"], c["pipeline_size"], c["compiler_args"]) for c in calls] == [(3, 1, {"lnc": 2})]
    again = model_index.load(npf_compile(models.TinyModel, x, batch_sizes=3, models_dir=tmp_path,
                                         compile_fn=models.cpu_trace, compiler_args={"lnc": 2}))
    assert len(fake_neuron.records("compile_fn")) == 1  # seeded construction hashes the same
    assert again["model_configs"][0]["filename"] == first["model_configs"][0]["filename"]
    assert again["model_configs"][0]["cached"] is True


def test_multi_input_tuple(fake_neuron, tmp_path):
    pair = (torch.rand(2, 3), torch.rand(2, 3))
    index = model_index.load(npf_compile(fake_neuron.models.PairModel(), pair, batch_sizes=2, models_dir=tmp_path))
    config = index["model_configs"][0]
    assert config["input_shapes"] == [[2, 3], [2, 3]]
    assert torch.allclose(torch.jit.load(config["filename"])(*pair), pair[0] * 2 + pair[1])


def test_keyboard_interrupt_returns_the_partial_index(fake_neuron, tmp_path):
    models = fake_neuron.models
    inputs = [torch.rand(1, 4), torch.rand(2, 4), torch.rand(4, 4)]
    path = npf_compile(models.TinyModel(), inputs, batch_sizes=[1, 2, 4], models_dir=tmp_path,
                       compile_fn=models.interrupting_compile, verbosity=0)
    assert sizes(model_index.load(path)) == [(1, 1, "finished")]


def test_input_pairing_errors(tmp_path):
    with pytest.raises(ValueError, match=r"got 2 input\(s\) but 3 batch size\(s\)"):
        npf_compile(torch.nn.Identity(), [torch.rand(1), torch.rand(2)], batch_sizes=[1, 2, 4], models_dir=tmp_path)
    with pytest.raises(ValueError, match=r"got 1 input\(s\) but 2 batch size\(s\)"):
        npf_compile(torch.nn.Identity(), torch.rand(1, 4), batch_sizes=[1, 2], models_dir=tmp_path)
    assert not os.listdir(tmp_path)


def test_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"compile_fn: .* cannot be sent to the compile process"):
        npf_compile(torch.nn.Identity(), torch.rand(1), models_dir=tmp_path, compile_fn=lambda *a, **k: None)
    with pytest.raises(ValueError, match="verbosity"):
        npf_compile(torch.nn.Identity(), torch.rand(1), models_dir=tmp_path, verbosity=5)
    with pytest.raises(TypeError, match=r"expected an nn\.Module instance"):
        npf_compile("model.pt", torch.rand(1), models_dir=tmp_path)

    def nested() -> torch.nn.Module:
        return torch.nn.Identity()

    with pytest.raises(ValueError, match="defined inside a function"):
        npf_compile(nested, torch.rand(1), models_dir=tmp_path)


def test_without_torch_neuronx_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.endswith("standins")])
    with pytest.raises(ImportError, match=r"compile needs torch-neuronx .*pip install --extra-index-url") as info:
        npf_compile(torch.nn.Linear(2, 2), torch.rand(1, 2), models_dir=tmp_path)
    assert str(info.value).startswith("compile needs torch-neuronx")  # not "ImportError: compile needs ..."
