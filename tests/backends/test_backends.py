"""The Neuron and CUDA backends: core discovery, placement arithmetic, error texts (stand-ins only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pytest_neuronperf.backends import neuron_cores
from pytest_neuronperf.backends.base import Backend, Placement
from pytest_neuronperf.backends.cuda import CudaBackend
from pytest_neuronperf.backends.neuron import NeuronBackend
from pytest_neuronperf.backends.registry import get_backend
from pytest_neuronperf.spec.model_source import ModelSource

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:DeprecationWarning")


def dev_dir(tmp_path: Path, n_nodes: int) -> str:
    folder = tmp_path / "dev"
    folder.mkdir()
    for i in range(n_nodes):
        (folder / f"neuron{i}").touch()
    (folder / "null").touch()
    (folder / "neuron_extra").touch()  # not a device node: the name must be neuron<N>
    return str(folder)


def neuron(tmp_path: Path, **kwargs: object) -> NeuronBackend:
    """A backend that finds the stand-in neuron-ls on PATH and no device nodes unless given a dev_dir."""
    kwargs.setdefault("dev_dir", str(tmp_path / "no-dev"))
    return NeuronBackend(**kwargs)  # type: ignore[arg-type]


def envs(placements: list[Placement]) -> list[str]:
    return [p.env[neuron_cores.VISIBLE_CORES_VAR] for p in placements]


# -- discovery ------------------------------------------------------------------


def test_neuron_ls_total_is_the_sum_of_nc_count(fake_neuron, tmp_path):
    fake_neuron.devices(3, 4)
    backend = neuron(tmp_path)
    inventory = backend.inventory()
    assert (inventory.total, inventory.source) == (12, "neuron-ls")
    assert backend.unavailable_reason() is None
    assert backend.max_copies(1) == 12
    assert backend.max_copies(5) == 2


def test_parse_neuron_ls_uneven_devices_and_bad_output():
    text = json.dumps([{"neuron_device": 0, "nc_count": 2}, {"neuron_device": 1, "nc_count": 4},
                       {"neuron_device": 2, "neuroncore_ids": [6, 7]}])
    assert neuron_cores.parse_neuron_ls(text) == 8
    assert neuron_cores.parse_neuron_ls("[]") == 0
    with pytest.raises(ValueError, match="not JSON"):
        neuron_cores.parse_neuron_ls("NeuronDevice 0 ...")
    with pytest.raises(ValueError, match="array of devices"):
        neuron_cores.parse_neuron_ls('{"nc_count": 2}')
    with pytest.raises(ValueError, match="no usable nc_count"):
        neuron_cores.parse_neuron_ls('[{"neuron_device": 0, "nc_count": "2"}]')


def test_failing_neuron_ls_falls_back_to_device_nodes(fake_neuron, tmp_path):
    fake_neuron.neuron_ls_fails(3)
    backend = neuron(tmp_path, dev_dir=dev_dir(tmp_path, 12), instance_type=lambda: "inf2.48xlarge")
    assert backend.inventory().total == 24
    assert backend.unavailable_reason() is None


def test_failing_neuron_ls_and_no_devices_says_both(fake_neuron, tmp_path):
    fake_neuron.neuron_ls_fails(3)
    reason = neuron(tmp_path).unavailable_reason()
    assert reason is not None and reason.startswith("no NeuronCores found: ")
    assert "exited with status 3 (stand-in neuron-ls: failed to open the Neuron driver)" in reason
    assert "no-dev/neuron* devices" in reason


@pytest.mark.parametrize(
    ("instance", "nodes", "env", "expected"),
    [
        ("inf2.48xlarge", 12, {}, 24),
        ("inf2.48xlarge", 3, {}, 6),  # a container that sees 3 of the 12 devices
        ("inf1.6xlarge", 4, {}, 16),
        ("trn1.32xlarge", 16, {}, 32),
        ("trn2.48xlarge", 16, {}, 64),
        ("trn2.48xlarge", 16, {"NEURON_LOGICAL_NC_CONFIG": "1"}, 128),
        ("trn1.2xlarge", 1, {"NEURON_LOGICAL_NC_CONFIG": "1"}, 2),  # LNC only applies to trn2
    ],
)
def test_cores_from_device_nodes_table(instance, nodes, env, expected):
    assert neuron_cores.cores_from_device_nodes(nodes, instance, env) == expected


def test_device_nodes_on_an_unknown_instance_leave_max_unknown(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("NEURON_RT_VISIBLE_CORES", raising=False)
    backend = neuron(tmp_path, dev_dir=dev_dir(tmp_path, 2), instance_type=lambda: "m5.large")
    assert backend.unavailable_reason() is None  # the devices are there
    assert backend.max_copies(1) is None
    assert "instance type 'm5.large' is not in the table" in backend.inventory().problems[-1]
    # One copy still runs: the runtime judges whether core 0 exists.
    assert envs(backend.placements(1, 1)) == ["0"]


def test_nothing_present_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    backend = neuron(tmp_path, dev_dir=dev_dir(tmp_path, 0))
    assert backend.unavailable_reason() == (
        f"no NeuronCores found: neuron-ls is not on PATH and there are no {tmp_path}/dev/neuron* devices"
    )
    assert backend.max_copies(1) is None
    with pytest.raises(RuntimeError, match="no NeuronCores found"):
        backend.placements(1, 1)


def test_discovery_runs_once_per_backend(fake_neuron, tmp_path):
    backend = neuron(tmp_path)
    assert backend.max_copies(1) == 4
    fake_neuron.devices(8, 2)
    assert backend.max_copies(1) == 4
    assert neuron(tmp_path).max_copies(1) == 16


# -- NEURON_RT_VISIBLE_CORES ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "cores"),
    [("0-3", [0, 1, 2, 3]), ("4-7", [4, 5, 6, 7]), ("1,3", [1, 3]), ("0,2-3", [0, 2, 3]), (" 5 ", [5]),
     ("3,1,1", [1, 3])],
)
def test_parse_core_list(text, cores):
    assert neuron_cores.parse_core_list(text) == cores


@pytest.mark.parametrize(
    ("text", "message"),
    [("a", "'a' is not a core index"), ("3-1", "runs backwards"), ("", "is empty"), ("1,,2", "'' is not"),
     ("-1", "'-1' is not"), ("1-2-3", "'1-2-3' is not"), ("0:3", "'0:3' is not")],
)
def test_parse_core_list_rejects_malformed(text, message):
    with pytest.raises(ValueError, match="NEURON_RT_VISIBLE_CORES") as info:
        neuron_cores.parse_core_list(text)
    assert message in str(info.value)


@pytest.mark.parametrize(("cores", "text"), [([3], "3"), ([2, 3], "2-3"), ([4, 5, 6, 7], "4-7"), ([1, 3], "1,3")])
def test_format_core_list(cores, text):
    assert neuron_cores.format_core_list(cores) == text


def test_outer_visible_cores_limit_usable_cores(fake_neuron, tmp_path, monkeypatch):
    fake_neuron.devices(4, 2)
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "4-7")
    backend = neuron(tmp_path)
    assert backend.usable_cores() == [4, 5, 6, 7]
    assert backend.max_copies(1) == 4
    assert envs(backend.placements(2, 2)) == ["4-5", "6-7"]


def test_outer_visible_cores_beyond_the_machine_are_rejected(fake_neuron, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "2-5")
    with pytest.raises(ValueError, match=r"names core\(s\) 4, 5 but this machine has 4 NeuronCores \(0-3\)"):
        neuron(tmp_path).max_copies(1)


def test_malformed_outer_visible_cores_is_an_error_not_a_skip(fake_neuron, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "all")
    backend = neuron(tmp_path)
    assert backend.unavailable_reason() is None
    with pytest.raises(ValueError, match="NEURON_RT_VISIBLE_CORES='all'"):
        backend.placements(1, 1)


def test_outer_num_cores_caps_the_count(fake_neuron, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "3")
    assert neuron(tmp_path).usable_cores() == [0, 1, 2]
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "0")  # the runtime's "all"
    assert neuron(tmp_path).usable_cores() == [0, 1, 2, 3]


# -- placements -----------------------------------------------------------------


def test_pipeline_division_on_four_cores(fake_neuron, tmp_path):
    backend = neuron(tmp_path)
    assert backend.max_copies(2) == 2
    assert backend.max_copies(3) == 1
    assert backend.max_copies(5) is None
    placements = backend.placements(2, 2)
    assert envs(placements) == ["0-1", "2-3"]
    assert [p.cores for p in placements] == [(0, 1), (2, 3)]
    assert [p.copy_index for p in placements] == [0, 1]
    assert all(p.threads == 1 and p.cpu_affinity is None for p in placements)
    assert envs(backend.placements(4, 1)) == ["0", "1", "2", "3"]


def test_non_contiguous_outer_cores_give_comma_lists(fake_neuron, tmp_path, monkeypatch):
    fake_neuron.devices(4, 2)
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "0,2-3,6")
    backend = neuron(tmp_path)
    assert envs(backend.placements(2, 2)) == ["0,2", "3,6"]
    assert envs(backend.placements(4, 1)) == ["0", "2", "3", "6"]


def test_too_many_copies_name_the_cores(fake_neuron, tmp_path, monkeypatch):
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "1-3")
    with pytest.raises(ValueError, match=r"n_models=2 x pipeline_size=2 needs 4 NeuronCores but 3 are usable "
                                         r"\(cores 1-3 from NEURON_RT_VISIBLE_CORES='1-3'\)"):
        neuron(tmp_path).placements(2, 2)
    with pytest.raises(ValueError, match="pipeline_size must be a whole number >= 1"):
        neuron(tmp_path).placements(1, 0)


def test_default_workers_neuron():
    backend = NeuronBackend()
    assert backend.default_workers(1) == [1, 2]
    assert backend.default_workers(4) == [4]


# -- inside a copy ----------------------------------------------------------------


def test_enter_copy_sets_visible_cores_and_drops_num_cores(monkeypatch):
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "0-7")
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "8")
    threads: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    placement = Placement(copy_index=1, cores=(2, 3), env={"NEURON_RT_VISIBLE_CORES": "2-3"}, threads=1)
    NeuronBackend().enter_copy(placement)
    assert os.environ["NEURON_RT_VISIBLE_CORES"] == "2-3"
    assert "NEURON_RT_NUM_CORES" not in os.environ
    assert threads == [1]


def test_load_model_refuses_a_model_class():
    source = ModelSource.factory(torch.nn.Identity)
    with pytest.raises(ValueError, match=r"compile it first with pytest_neuronperf.torch.compile\(.*compile=True"):
        NeuronBackend().load_model(source, Placement(copy_index=0, cores=(0,)))


def test_copy_sees_its_cores_before_torch_neuronx_loads(fake_neuron, tmp_path):
    artifact = tmp_path / "m.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(4, 2), torch.ones(1, 4)), str(artifact))
    code = f"""
import os, sys
os.environ["NEURON_RT_NUM_CORES"] = "4"
from pytest_neuronperf.backends.neuron import NeuronBackend
from pytest_neuronperf.spec.model_source import ModelSource
backend = NeuronBackend(dev_dir={str(tmp_path / "no-dev")!r})
placement = backend.placements(2, 2)[1]
assert "torch_neuronx" not in sys.modules
backend.enter_copy(placement)
model = backend.load_model(ModelSource.torchscript({str(artifact)!r}), placement)
print(tuple(model(*backend.prepare_inputs((__import__("torch").ones(1, 4),), placement)).shape))
"""
    done = subprocess.run([sys.executable, "-c", code], env=fake_neuron.subprocess_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 2)"
    imports = fake_neuron.records("import")
    assert [(r["visible_cores"], r["num_cores"]) for r in imports] == [("2-3", None)]


# -- errors -----------------------------------------------------------------------


def test_explain_resource_error_names_the_cores():
    backend = NeuronBackend()
    text = "RuntimeError: nrt_load failed: NERR_RESOURCE_NC (status 4)"
    assert backend.explain_error(text, Placement(copy_index=1, cores=(4, 5, 6, 7))) == (
        "NeuronCores 4-7 are held by another process (see neuron-ls): stop it, or set "
        "NEURON_RT_VISIBLE_CORES for this run to cores that are free"
    )
    single = backend.explain_error(text, Placement(copy_index=0, cores=(2,)))
    assert single is not None and single.startswith("NeuronCore 2 is held by another process (see neuron-ls)")


def test_explain_child_state_error():
    message = NeuronBackend().explain_error("nrt_init: NRT_STATE_CHILD", Placement(copy_index=3, cores=(3,)))
    assert message is not None
    assert "initialised in the parent process before model copy 3 started" in message
    assert "tracing or loading a Neuron model in the test process" in message
    assert NeuronBackend().explain_error("ValueError: shapes differ", Placement(copy_index=0, cores=(0,))) is None


# -- CUDA -------------------------------------------------------------------------


@pytest.mark.skipif(torch.version.cuda is not None, reason="this torch has CUDA")
def test_cuda_unavailable_here():
    backend = CudaBackend(nvidia_smi="npf-no-such-nvidia-smi")
    reason = backend.unavailable_reason()
    assert reason is not None and "built without CUDA support" in reason
    assert "npf-no-such-nvidia-smi is not on PATH" in reason
    assert backend.max_copies(1) is None
    assert not torch.cuda.is_initialized()


def test_cuda_with_no_visible_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    backend = CudaBackend(device_count=lambda: 0)
    assert backend.unavailable_reason() == "no CUDA GPU is visible (CUDA_VISIBLE_DEVICES='')"
    with pytest.raises(ValueError, match=r"n_models=1 needs 1 GPU \(one copy per GPU\) but 0 are visible"):
        backend.placements(1, 1)


def test_cuda_one_copy_per_gpu():
    backend = CudaBackend(device_count=lambda: 2)
    assert isinstance(backend, Backend)
    assert backend.unavailable_reason() is None
    assert backend.max_copies(1) == 2
    placements = backend.placements(2, 1)
    assert [p.cores for p in placements] == [(0,), (1,)]
    assert all(p.threads and p.threads >= 1 for p in placements)
    assert backend.default_workers(1) == [1, 2]
    with pytest.raises(ValueError, match="n_models=3 needs 3 GPUs"):
        backend.placements(3, 1)
    for call in (lambda: backend.placements(1, 2), lambda: backend.max_copies(2)):
        with pytest.raises(ValueError, match="pipeline_sizes=2 is not supported with device_type='cuda'"):
            call()


def test_cuda_explains_out_of_memory():
    text = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
    message = CudaBackend(device_count=lambda: 1).explain_error(text, Placement(copy_index=1, cores=(1,)))
    assert message is not None and message.startswith("GPU cuda:1 ran out of memory")


def test_registry_finds_both_backends():
    assert type(get_backend("gpu")).__name__ == "CudaBackend"
    assert isinstance(get_backend("neuron"), NeuronBackend)
    assert isinstance(get_backend("neuron"), Backend)


def test_backend_modules_import_no_torch():
    code = (
        "import sys\n"
        "import pytest_neuronperf.backends.cuda, pytest_neuronperf.backends.neuron\n"
        "import pytest_neuronperf.model_index\n"
        "print(sorted(m for m in ('torch', 'torch_neuronx') if m in sys.modules))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- through the runner -------------------------------------------------------------


@pytest.fixture
def fresh_backends():
    get_backend.cache_clear()
    yield
    get_backend.cache_clear()


def test_benchmark_copies_see_their_cores(fake_neuron, fresh_backends, tmp_path, monkeypatch):
    from pytest_neuronperf import model_index
    from pytest_neuronperf.runner.benchmark import benchmark

    fake_neuron.devices(4, 2)
    monkeypatch.setenv("NEURON_RT_VISIBLE_CORES", "4-7")
    monkeypatch.setenv("NEURON_RT_NUM_CORES", "8")
    artifact = tmp_path / "m_b2_p2.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(4, 2), torch.ones(2, 4)), str(artifact))
    index = model_index.save(model_index.create(artifact, batch_size=2, pipeline_size=2), tmp_path / "m.json")
    reports = benchmark(index, torch.ones(2, 4), duration=0.3, device_type="neuron", timeout=60)
    assert [(r["status"], r["n_models"], r["pipeline_size"], r["workers_per_model"]) for r in reports] == [
        ("finished", 1, 2, 2), ("finished", 2, 2, 2)]
    seen = sorted((r["visible_cores"], r["num_cores"]) for r in fake_neuron.records("import"))
    assert seen == [("4-5", None), ("4-5", None), ("6-7", None)]
    assert "torch_neuronx" not in sys.modules
