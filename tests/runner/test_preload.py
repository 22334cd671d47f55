"""The copies' forkserver imports the model's modules once, safely, and never for a reference revision."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import pytest_neuronperf as npf
from pytest_neuronperf.backends.registry import get_backend
from pytest_neuronperf.config.settings import SettingsError, parse_preload
from pytest_neuronperf.errors import BenchmarkError
from pytest_neuronperf.runner import launch
from pytest_neuronperf.runner.benchmark import prepare
from pytest_neuronperf.runner.replica import CopyJob

pytestmark = pytest.mark.usefixtures("no_leftover_children")
QUICK = {"duration": 0.3, "warmup": 2, "n_models": [1], "workers_per_model": [1]}
REPORT_ENV = "NPF_TEST_PRELOAD_REPORT"
PARENT_ENV = "NPF_TEST_PRELOAD_PARENT"
# A model module that says, from inside the copy, where it was imported and what the copy sees.
MODEL = """
import json, os, sys, threading
import torch
import {dep}  # a module of the user's own that the server has not imported yet
{extra}
IMPORTED_IN = os.getpid()


class Reporting(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        server = os.getppid()
        with open(os.environ["{env}"], "a") as fh:
            fh.write(json.dumps({{"imported_in": IMPORTED_IN, "copy": os.getpid(), "server": server,
                                 "server_threads": len(os.listdir(f"/proc/{{server}}/task")),
                                 "torch_threads": torch.get_num_threads()}}) + "\\n")

    def forward(self, x):
        return self.layer(x)
"""
_names = itertools.count()


@pytest.fixture(autouse=True)
def automatic_preload() -> Iterator[None]:
    launch.set_preload(())
    yield
    launch.set_preload(())


def model_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str = "") -> tuple[object, Path]:
    """A fresh module (a new name each time, so no earlier forkserver has it) and the file its copies write."""
    name = f"npf_preload_model_{os.getpid()}_{next(_names)}"
    (tmp_path / f"{name}_dep.py").write_text("VALUE = 1\n")
    (tmp_path / f"{name}.py").write_text(MODEL.format(extra=extra, env=REPORT_ENV, dep=f"{name}_dep"))
    monkeypatch.syspath_prepend(str(tmp_path))
    report = tmp_path / "report.jsonl"
    monkeypatch.setenv(REPORT_ENV, str(report))
    module = __import__(name)
    return module.Reporting, report


def reports_of(path: Path) -> list[dict[str, int]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_the_model_module_is_imported_by_the_forkserver_not_by_each_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, report = model_module(tmp_path, monkeypatch)
    (result,) = npf.benchmark(model, torch.randn(1, 4), rounds=2, **QUICK)
    assert result["status"] == "finished"
    seen = reports_of(report)
    assert len(seen) == 2
    for copy in seen:
        assert copy["imported_in"] == copy["server"] != copy["copy"]
        # The server forks: it must still be a single thread after importing torch and the model.
        assert copy["server_threads"] == 1
    assert seen[0]["server"] == seen[1]["server"], "both rounds fork from the same server"


def test_with_preloading_off_each_copy_imports_the_model_and_torch_threads_are_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, report = model_module(tmp_path, monkeypatch)
    npf.benchmark(model, torch.randn(1, 4), **QUICK)
    launch.set_preload(["off"])
    npf.benchmark(model, torch.randn(1, 4), **QUICK)
    preloaded, fresh = reports_of(report)
    assert fresh["imported_in"] == fresh["copy"]
    assert preloaded["imported_in"] == preloaded["server"]
    # Copies set their own thread count after the fork (backends/cpu.py apply_placement).
    assert preloaded["torch_threads"] == fresh["torch_threads"] >= 1


def test_a_module_that_fails_in_the_forkserver_only_is_imported_by_the_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The forkserver is a child of this process; the copies are the server's children.
    monkeypatch.setenv(PARENT_ENV, str(os.getpid()))
    extra = f'if os.getppid() == int(os.environ["{PARENT_ENV}"]):\n    raise RuntimeError("not in the forkserver")'
    model, report = model_module(tmp_path, monkeypatch, extra)
    (result,) = npf.benchmark(model, torch.randn(1, 4), **QUICK)
    assert result["status"] == "finished"
    (copy,) = reports_of(report)
    assert copy["imported_in"] == copy["copy"]


def test_a_module_that_fails_in_the_forkserver_and_the_copy_is_reported_from_the_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PARENT_ENV, str(os.getpid()))
    extra = (f'if os.getpid() != int(os.environ["{PARENT_ENV}"]):\n'
             '    raise RuntimeError("this model cannot be imported by a copy")')
    model, _ = model_module(tmp_path, monkeypatch, extra)
    with pytest.raises(BenchmarkError, match="this model cannot be imported by a copy") as info:
        npf.benchmark(model, torch.randn(1, 4), **QUICK)
    assert info.value.phase == "model load"


def _job(model: object) -> tuple[CopyJob, launch.CopyContext]:
    plan = prepare(model, torch.randn(1, 4), **QUICK)
    run = plan.matrix.runs[0]
    placement = plan.backend.placements(run.n_models, run.model.pipeline_size)[0]
    job = CopyJob(backend_name=plan.backend.name, placement=placement, run=run, config=run.as_dict(),
                  model_input=plan.model_inputs[0], preprocess_fn=None, postprocess_fn=None, env_setup_fn=None,
                  setup_fn=None, warmup=1, warmup_duration_s=0.0, duration_s=0.1, bin_ns=10_000_000,
                  keep_raw=False, loop_dataset=False)
    return job, launch.CopyContext("forkserver")


def test_preload_includes_the_model_module_its_bases_and_extra_modules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = model_module(tmp_path, monkeypatch)
    job, _ = _job(model)
    backend = get_backend("cpu")
    modules = launch.preload_for(job, backend, launch.user_values(job), None)
    assert model.__module__ in modules and "torch.nn.modules.module" in modules  # type: ignore[attr-defined]
    assert "__main__" not in modules
    launch.set_preload(["off", "json"])
    modules = launch.preload_for(job, backend, launch.user_values(job), None)
    assert model.__module__ not in modules and "json" in modules  # type: ignore[attr-defined]
    assert set(launch.BASE_PRELOAD) <= set(modules)


def test_reference_copies_preload_nothing_from_the_repository(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, _ = model_module(tmp_path, monkeypatch)
    job, _ = _job(model)
    launch.set_preload(["json"])
    redirect = (str(tmp_path), str(tmp_path / ".checkout"))
    modules = launch.preload_for(job, get_backend("cpu"), launch.user_values(job), redirect)
    assert model.__module__ not in modules  # type: ignore[attr-defined]
    # Modules from outside the repository, and the harness, still come preloaded.
    assert {"json", "torch.nn.modules.module", "pytest_neuronperf.runner.replica"} <= set(modules)
    current = launch.preload_for(job, get_backend("cpu"), launch.user_values(job), None)
    assert launch.SERVERS.get(modules) is not launch.SERVERS.get(current)


def test_each_module_set_has_its_server_and_the_oldest_beyond_the_limit_stops() -> None:
    sets = [("json",), ("json", "csv"), ("json", "csv", "ast"), ("json", "csv", "ast", "shlex")]
    servers = [launch.SERVERS.get(s) for s in sets]
    assert launch.SERVERS.get(sets[-1]) is servers[-1]
    assert launch.SERVERS.get(sets[0]) is not servers[0], "the least recently used server was let go"


def test_parse_preload_names_the_option_and_the_form() -> None:
    assert parse_preload("transformers, mypkg.models,OFF") == ("transformers", "mypkg.models", "off")
    with pytest.raises(SettingsError, match=r"--npf-preload: expected module names such as transformers"):
        parse_preload("my-module")
    with pytest.raises(ValueError, match="preload: expected module names"):
        launch.set_preload(["a b"])


def test_the_payload_reaches_the_server_as_one_importable_name() -> None:
    name = launch.payload_name(["json", "csv"], ["/x"])
    assert name.startswith(launch.PAYLOAD_PREFIX) and "." not in name[len(launch.PAYLOAD_PREFIX):]
    from pytest_neuronperf.runner import preload

    assert preload.PAYLOAD_PREFIX == launch.PAYLOAD_PREFIX
