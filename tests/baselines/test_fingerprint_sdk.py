"""The SDK, driver and GPU fields of the fingerprint: where they are read from, and what a mismatch says."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_neuronperf.baselines import environment
from pytest_neuronperf.baselines.environment import (
    NO_CUDA,
    NOT_APPLICABLE,
    NOT_INSTALLED,
    UNKNOWN,
    Sources,
    fingerprint,
    fingerprint_differences,
)
from pytest_neuronperf.baselines.schema import BaselineRecord
from pytest_neuronperf.baselines.store import BaselineStore
from pytest_neuronperf.spec.fields import (
    CUDA_FINGERPRINT_FIELDS,
    DEFAULT_FINGERPRINT_KEYS,
    FINGERPRINT_FIELDS,
    NEURON_FINGERPRINT_FIELDS,
)

REPO = Path(__file__).resolve().parents[2]
MODULE = "tests/models/test_bert.py"
KEY = "test_bert::default::b1-n1-w1-p1"
KEYS = DEFAULT_FINGERPRINT_KEYS
COMMON: dict[str, str] = {
    "instance_type": "trn1.2xlarge", "cpu_model": "Xeon", "cpu_count": "8", "torch": "2.1.2",
    "torch_neuronx": "2.1.2.2.3.0", "python": "3.10.12",
}
NEURON = {**COMMON, "device_type": "neuron", "neuronx_cc": "2.16.372.0", "neuron_runtime": "2.22.14.0",
          "neuron_driver": "2.19.64.0", "gpu_name": NOT_APPLICABLE, "cuda_driver": NOT_APPLICABLE,
          "cuda_runtime": NOT_APPLICABLE}
# A CPU baseline saved before the SDK fields existed.
OLD_CPU = {**COMMON, "device_type": "cpu", "instance_type": "m5.large", "torch_neuronx": NOT_INSTALLED}


def _tool(bin_dir: Path, name: str, body: str) -> Path:
    """An executable stand-in ``name`` in ``bin_dir`` running ``body`` (Python)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(0o755)
    return path


def _marking(marker: Path, output: str) -> str:
    return f"""
        import sys
        open({str(marker)!r}, "a").write(" ".join(sys.argv[1:]) + "\\n")
        print({output!r})
        """


def _sources(tmp_path: Path, **kw: Any) -> Sources:
    env = {"PATH": str(tmp_path / "bin"), **kw.pop("env", {})}
    return Sources(sys_module=str(tmp_path / "sys" / "module"), dpkg_status=str(tmp_path / "dpkg-status"),
                   env=env, **kw)


def _driver(tmp_path: Path, version: str) -> None:
    path = tmp_path / "sys" / "module" / "neuron" / "version"
    path.parent.mkdir(parents=True)
    path.write_text(version + "\n")


def _record(fp: dict[str, str], throughput: float = 100.0) -> BaselineRecord:
    return BaselineRecord(fingerprint=fp, config={"batch_size": 1, "n_models": 1, "workers_per_model": 1,
                                                  "pipeline_size": 1},
                          rounds=[{"throughput": throughput}], report={"throughput_avg": throughput},
                          saved_at="2024-05-01T12:00:00Z")


# -- where the fields come from -------------------------------------------------------------------------


def test_every_fingerprint_holds_every_field_in_display_order(tmp_path: Path) -> None:
    for device in ("cpu", "neuron", "cuda"):
        assert tuple(fingerprint(device, _sources(tmp_path))) == FINGERPRINT_FIELDS
    assert set(NEURON_FINGERPRINT_FIELDS + CUDA_FINGERPRINT_FIELDS) <= set(DEFAULT_FINGERPRINT_KEYS)


def test_neuron_versions_from_neuron_ls_and_the_driver(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _tool(tmp_path / "bin", "neuron-ls", _marking(marker, "neuron-ls 2.22.14.0"))
    _tool(tmp_path / "bin", "nvidia-smi", _marking(tmp_path / "smi-ran", "NVIDIA H200, 550.54.15"))
    _driver(tmp_path, "2.19.64.0")
    fp = fingerprint("neuron", _sources(tmp_path))
    assert fp["neuron_runtime"] == "2.22.14.0"
    assert fp["neuron_driver"] == "2.19.64.0"
    assert fp["neuronx_cc"] == NOT_INSTALLED  # no neuronx-cc in this environment
    assert marker.read_text() == "--version\n"
    # The CUDA sources are not the Neuron device's: nvidia-smi never ran.
    assert not (tmp_path / "smi-ran").exists()
    assert {fp[k] for k in CUDA_FINGERPRINT_FIELDS} == {NOT_APPLICABLE}


def test_the_runtime_package_wins_over_neuron_ls(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _tool(tmp_path / "bin", "neuron-ls", _marking(marker, "neuron-ls 9.9.9.9"))
    (tmp_path / "dpkg-status").write_text(textwrap.dedent("""\
        Package: aws-neuronx-tools
        Status: install ok installed
        Version: 2.20.1.0

        Package: aws-neuronx-runtime-lib
        Status: install ok installed
        Architecture: amd64
        Version: 2.21.41.0-fb1705f5f
        Description: Neuron runtime
         continued description: Version: 0.0
        """))
    assert fingerprint("neuron", _sources(tmp_path))["neuron_runtime"] == "2.21.41.0"
    assert not marker.exists()


def test_neuronx_cc_comes_from_its_package_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "site" / "neuronx_cc-2.15.128.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: neuronx-cc\nVersion: 2.15.128.0\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert fingerprint("neuron", _sources(tmp_path))["neuronx_cc"] == "2.15.128.0"


def test_missing_and_broken_neuron_sources_never_raise(tmp_path: Path) -> None:
    fp = fingerprint("neuron", _sources(tmp_path))
    assert (fp["neuron_runtime"], fp["neuron_driver"]) == (NOT_INSTALLED, NOT_INSTALLED)
    _tool(tmp_path / "bin", "neuron-ls", "import sys; print('no driver', file=sys.stderr); sys.exit(1)\n")
    assert fingerprint("neuron", _sources(tmp_path))["neuron_runtime"] == UNKNOWN
    _tool(tmp_path / "bin", "neuron-ls", "print('neuron-ls, a build without a number')\n")
    assert fingerprint("neuron", _sources(tmp_path))["neuron_runtime"] == UNKNOWN
    _tool(tmp_path / "bin", "neuron-ls", "import time; time.sleep(30)\n")
    t0 = time.monotonic()
    assert fingerprint("neuron", _sources(tmp_path, timeout_s=0.5))["neuron_runtime"] == UNKNOWN
    assert time.monotonic() - t0 < 10


def test_cuda_identity_from_nvidia_smi(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    _tool(tmp_path / "bin", "nvidia-smi", _marking(marker, "NVIDIA H200, 550.54.15\nNVIDIA H200, 550.54.15"))
    _tool(tmp_path / "bin", "neuron-ls", _marking(tmp_path / "neuron-ls-ran", "neuron-ls 2.22.14.0"))
    fp = fingerprint("cuda", _sources(tmp_path))
    assert (fp["gpu_name"], fp["cuda_driver"]) == ("NVIDIA H200", "550.54.15")
    # This torch is the test environment's; a CPU build has no CUDA runtime.
    assert fp["cuda_runtime"] in {NO_CUDA, NOT_INSTALLED} or fp["cuda_runtime"][0].isdigit()
    assert marker.read_text() == "--query-gpu=name,driver_version --format=csv,noheader\n"
    assert not (tmp_path / "neuron-ls-ran").exists()
    assert {fp[k] for k in NEURON_FINGERPRINT_FIELDS} == {NOT_APPLICABLE}


def test_mixed_gpus_and_visible_devices(tmp_path: Path) -> None:
    _tool(tmp_path / "bin", "nvidia-smi", "print('NVIDIA A10G, 535.1\\nNVIDIA L4, 535.1')\n")
    assert fingerprint("cuda", _sources(tmp_path))["gpu_name"] == "NVIDIA A10G + NVIDIA L4"
    only_second = _sources(tmp_path, env={"CUDA_VISIBLE_DEVICES": "1"})
    assert fingerprint("cuda", only_second)["gpu_name"] == "NVIDIA L4"


def test_missing_and_hung_nvidia_smi_never_raise(tmp_path: Path) -> None:
    fp = fingerprint("cuda", _sources(tmp_path))
    assert (fp["gpu_name"], fp["cuda_driver"]) == (UNKNOWN, NOT_INSTALLED)
    _tool(tmp_path / "bin", "nvidia-smi", "import time; time.sleep(30)\n")
    t0 = time.monotonic()
    fp = fingerprint("cuda", _sources(tmp_path, timeout_s=0.5))
    assert (fp["gpu_name"], fp["cuda_driver"]) == (UNKNOWN, UNKNOWN)
    assert time.monotonic() - t0 < 10


def test_a_cpu_fingerprint_runs_no_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"the CPU fingerprint ran {args}")

    monkeypatch.setattr(subprocess, "run", no_process)
    monkeypatch.setattr(subprocess, "Popen", no_process)
    fp = fingerprint("cpu", _sources(tmp_path))
    assert {fp[k] for k in NEURON_FINGERPRINT_FIELDS + CUDA_FINGERPRINT_FIELDS} == {NOT_APPLICABLE}


def test_the_cuda_runtime_is_read_from_torch_version_py_without_importing_torch(tmp_path: Path) -> None:
    fake = tmp_path / "fake_site" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('this torch must not be imported')\n")
    (fake / "version.py").write_text("from typing import Optional\n__version__ = '2.4.0+cu124'\n"
                                     "cuda: Optional[str] = '12.4'\nhip: Optional[str] = None\n")
    code = ("import sys; from pytest_neuronperf.baselines.environment import torch_cuda_version; "
            "print(torch_cuda_version(), 'torch' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake_site"), str(REPO)])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.split() == ["12.4", "False"]


def test_the_default_sources_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    environment._device_fields.cache_clear()
    calls: list[str] = []
    real = environment.device_fields

    def counted(device_type: str, sources: Sources) -> dict[str, str]:
        calls.append(device_type)
        return real(device_type, sources)

    monkeypatch.setattr(environment, "device_fields", counted)
    try:
        assert fingerprint("cpu") == fingerprint("cpu")
        assert calls == ["cpu"]
    finally:
        environment._device_fields.cache_clear()


# -- comparing ------------------------------------------------------------------------------------------


def test_old_cpu_baselines_still_apply_after_the_upgrade(tmp_path: Path) -> None:
    now = {**OLD_CPU, **{k: NOT_APPLICABLE for k in NEURON_FINGERPRINT_FIELDS + CUDA_FINGERPRINT_FIELDS}}
    assert fingerprint_differences(OLD_CPU, now, KEYS) == []
    store = BaselineStore(tmp_path / "baselines")
    store.save(MODULE, {KEY: _record(OLD_CPU)}, KEYS)
    assert store.lookup(MODULE, KEY, now, KEYS).found


def test_a_baseline_of_another_neuron_sdk_says_which_version_changed(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    store.save(MODULE, {KEY: _record({**NEURON, "neuronx_cc": "2.15.128.0"})}, KEYS)
    found = store.lookup(MODULE, KEY, NEURON, KEYS)
    assert not found.found
    assert [m.differing for m in found.mismatches] == [("neuronx_cc",)]
    assert found.explain() == (
        f"no baseline for this environment in {store.path_for(MODULE)}: baseline recorded under another "
        "Neuron SDK: neuronx_cc 2.15.128.0 -> 2.16.372.0 (baseline -> this machine)"
    )


def test_several_changes_and_other_fields_in_one_message(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    theirs = {**NEURON, "instance_type": "inf2.xlarge", "neuron_runtime": "2.21.41.0", "neuron_driver": "2.18.12.0"}
    store.save(MODULE, {KEY: _record(theirs)}, KEYS)
    message = store.lookup(MODULE, KEY, NEURON, KEYS).explain()
    assert message.endswith(
        "baseline exists for instance_type=inf2.xlarge, not this machine's trn1.2xlarge, and recorded under "
        "another Neuron SDK: neuron_runtime 2.21.41.0 -> 2.22.14.0, neuron_driver 2.18.12.0 -> 2.19.64.0 "
        "(baseline -> this machine)"
    )


def test_a_gpu_change_is_named(tmp_path: Path) -> None:
    cuda = {**COMMON, "device_type": "cuda", "gpu_name": "NVIDIA H200", "cuda_driver": "550.54.15",
            "cuda_runtime": "12.4", **{k: NOT_APPLICABLE for k in NEURON_FINGERPRINT_FIELDS}}
    store = BaselineStore(tmp_path / "baselines")
    store.save(MODULE, {KEY: _record({**cuda, "gpu_name": "NVIDIA A100-SXM4-80GB", "cuda_driver": "535.104"})},
               KEYS)
    assert "another GPU or CUDA software: gpu_name NVIDIA A100-SXM4-80GB -> NVIDIA H200, cuda_driver 535.104 -> " \
           "550.54.15 (baseline -> this machine)" in store.lookup(MODULE, KEY, cuda, KEYS).explain()


def test_an_old_neuron_baseline_is_not_compared_and_not_lost(tmp_path: Path) -> None:
    old = {k: v for k, v in NEURON.items() if k not in NEURON_FINGERPRINT_FIELDS + CUDA_FINGERPRINT_FIELDS}
    store = BaselineStore(tmp_path / "baselines")
    store.save(MODULE, {KEY: _record(old, 90.0)}, KEYS)
    found = store.lookup(MODULE, KEY, NEURON, KEYS)
    assert not found.found
    message = found.explain()
    assert "neuronx_cc (not recorded) -> 2.16.372.0" in message
    assert "save it again here (--npf-save-baseline)" in message
    # Saving under this SDK adds a record; the old one stays in the file.
    store.save(MODULE, {KEY: _record(NEURON, 100.0)}, KEYS, {KEY: True})
    records = store.load(MODULE).records(KEY)
    assert sorted(r.report["throughput_avg"] for r in records) == [90.0, 100.0]  # type: ignore[type-var]
    assert store.lookup(MODULE, KEY, NEURON, KEYS).record == next(r for r in records if r.fingerprint == NEURON)


def test_leaving_a_version_out_of_the_keys_compares_across_it(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path / "baselines")
    store.save(MODULE, {KEY: _record({**NEURON, "neuron_driver": "2.18.12.0"})}, KEYS)
    keys = tuple(k for k in KEYS if k != "neuron_driver")
    assert store.lookup(MODULE, KEY, NEURON, keys).found


def test_npf_compare_against_results_of_another_sdk_names_the_versions(tmp_path: Path) -> None:
    from pytest_neuronperf.cli import _results_lookups
    from pytest_neuronperf.report.results_file import Measurement

    report = {"n_models": 1, "workers_per_model": 1, "pipeline_size": 1, "batch_size": 1, "status": "finished"}
    print_ = {"device_type": "neuron", "neuronx_cc": "2.16.372.0"}
    ours = Measurement("t.py::test", "default", "neuron", print_, "pass", [report], [])
    theirs = Measurement("t.py::test", "default", "neuron", {**print_, "neuronx_cc": "2.15.128.0"}, "pass",
                         [report], [])
    [lookup] = _results_lookups(ours, {("t.py::test", "default"): theirs}, tmp_path / "old.json",
                                ["device_type", "neuronx_cc"]).values()
    assert "measured it in another environment (neuronx_cc 2.15.128.0 -> 2.16.372.0: the earlier value, " \
           "then this one's)" in lookup.explain()
