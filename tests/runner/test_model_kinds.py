"""Models as users have them: torch.export programs (files and factories), AOTInductor packages, torch.compile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import pytest_neuronperf as npf
from pytest_neuronperf.backends.model_files import load_model_file, model_file_kind
from pytest_neuronperf.runner import compiled
from pytest_neuronperf.spec.params import COMPILE_MODES
from tests import kinds_models as km

ROOT = Path(__file__).resolve().parents[2]
ONE = {"duration": 0.2, "warmup": 2, "n_models": 1, "workers_per_model": 1}

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:DeprecationWarning")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("model_files")
    model, x = km.Pointwise().eval(), torch.randn(2, 16)
    files = {"torchscript": folder / "pointwise.pt", "exported_program": folder / "pointwise.pt2",
             "unknown": folder / "notes.pt2"}
    torch.jit.save(torch.jit.trace(model, x), str(files["torchscript"]))
    torch.export.save(torch.export.export(model, (x,)), str(files["exported_program"]))
    with zipfile.ZipFile(files["unknown"], "w") as archive:
        archive.writestr("notes/readme.txt", "a zip archive, but no model inside")
    return files


@pytest.fixture(scope="module")
def aoti_package(model_files: dict[str, Path]) -> Path:
    if not hasattr(torch._inductor, "aoti_compile_and_package"):
        pytest.skip(f"torch {torch.__version__} cannot build AOTInductor packages")
    program = torch.export.load(str(model_files["exported_program"]))
    path = model_files["exported_program"].with_name("pointwise_aoti.pt2")
    return Path(torch._inductor.aoti_compile_and_package(program, package_path=str(path)))


def test_the_kind_of_a_model_file_is_read_from_its_entries(model_files: dict[str, Path], tmp_path: Path) -> None:
    for kind, path in model_files.items():
        assert model_file_kind(str(path)) == kind
    not_a_zip = tmp_path / "x.pt"
    not_a_zip.write_bytes(b"\x00 not a zip")
    assert model_file_kind(str(not_a_zip)) == "unknown"


def test_each_kind_loads_with_its_own_loader_and_computes_the_model(model_files: dict[str, Path]) -> None:
    x = torch.randn(2, 16)
    expected = torch.jit.load(str(model_files["torchscript"]))(x)
    loaded = load_model_file(str(model_files["exported_program"]), "cpu")
    assert isinstance(loaded, torch.fx.GraphModule)
    assert torch.allclose(loaded(x), expected)


def test_an_archive_of_no_known_kind_names_both_loaders(model_files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match=r"could not be loaded with torch\.jit\.load .* nor with torch\.export\.load"
                                         r".*torch\.export\.save.*aoti_compile_and_package"):
        load_model_file(str(model_files["unknown"]), "cpu")


def test_a_pt2_file_from_torch_export_save_is_benchmarked(model_files: dict[str, Path]) -> None:
    (r,) = npf.benchmark(str(model_files["exported_program"]), torch.randn(2, 16), **ONE)
    assert r["status"] == "finished" and r["batch_size"] == 2 and r["total_infs"] > 0
    assert r["model_name"] == "pointwise" and r["compile_s"] is None


@pytest.mark.parametrize("factory", [km.exported_program, km.exported_module])
def test_a_factory_may_return_an_exported_program_or_its_module(factory: object) -> None:
    with pytest.raises(NotImplementedError, match="Calling eval"):
        km.exported_module().eval()  # what the loader must not do to it
    (r,) = npf.benchmark(factory, torch.randn(2, 16), **ONE)
    assert r["status"] == "finished" and r["total_infs"] > 0


@pytest.mark.slow  # building the package compiles C++ (about 20 s)
def test_an_aoti_package_is_benchmarked_and_refuses_compile_mode(aoti_package: Path,
                                                                  model_files: dict[str, Path]) -> None:
    assert model_file_kind(str(aoti_package)) == "aoti_package"
    x = torch.randn(2, 16)
    exported = load_model_file(str(model_files["exported_program"]), "cpu")
    assert torch.allclose(load_model_file(str(aoti_package), "cpu")(x), exported(x), atol=1e-5)
    (r,) = npf.benchmark(str(aoti_package), x, **ONE)
    assert r["status"] == "finished" and r["total_infs"] > 0
    with pytest.raises(ValueError, match=r"compile_mode: model .* is an AOTInductor package .*, compiled ahead"):
        npf.benchmark(str(aoti_package), x, compile_mode="default", **ONE)


def test_compile_mode_compiles_in_each_copy_and_reports_compile_s_apart() -> None:
    plain, compiled_report = (
        npf.benchmark(km.Pointwise, torch.randn(2, 16), compile_mode=mode, **ONE)[0] for mode in (None, "default"))
    assert plain["compile_s"] is None
    assert compiled_report["status"] == "finished" and compiled_report["total_infs"] > 0
    # Compilation (seconds) happened before the window: no timed inference came anywhere near it.
    assert compiled_report["compile_s"] > compiled_report["latency_ms_p100"] / 1000
    assert compiled_report["warmup_avg_ms"] < compiled_report["compile_s"] * 1000


@pytest.mark.parametrize("bad", ["fast", "", 1, True])
def test_compile_mode_is_checked_naming_the_choices(bad: object) -> None:
    with pytest.raises(ValueError, match=r"compile_mode: expected one of 'default', 'reduce-overhead', "
                                         r"'max-autotune', 'max-autotune-no-cudagraphs'"):
        npf.benchmark(km.Pointwise, torch.randn(2, 16), compile_mode=bad, **ONE)
    assert len(COMPILE_MODES) == 4


def test_settle_calls_until_consecutive_calls_stop_being_slow() -> None:
    durations = iter([900, 400, 10, 30, 11, 10, 12, 99, 99, 99])
    now = [0]

    def clock() -> int:
        return now[0]

    def call(i: int) -> None:
        now[0] += next(durations)

    # 30 is more than twice the fastest (10), so the three calls after it are the first stable run.
    assert compiled.settle(call, clock) == 7


def test_settle_gives_up_at_its_cap_on_a_model_that_never_settles() -> None:
    now = [0]

    def call(i: int) -> None:
        now[0] += 1 if i % 3 else 50

    assert compiled.settle(call, lambda: now[0]) == compiled.MAX_SETTLE_CALLS


@pytest.mark.slow  # dynamo traces the model before inductor finds no compiler
def test_a_missing_cxx_compiler_is_explained(tmp_path: Path) -> None:
    env = {**os.environ, "CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_neuronperf", "run", "tests.kinds_models:Pointwise", "--inputs", "2x16",
         "--compile-mode", "default", "--duration", "0.2", "--n-models", "1", "--workers", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "torch.compile (compile_mode) found no C++ compiler" in proc.stderr
    assert "during torch.compile (compile_mode='default')" in proc.stderr


@pytest.mark.slow
def test_the_marker_takes_compile_mode_and_the_results_file_has_compile_s(pytester: pytest.Pytester,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    pytester.makepyfile(test_compiled="""
        import pytest, torch
        from tests.kinds_models import Pointwise

        @pytest.mark.neuron_benchmark(model=Pointwise, inputs=torch.randn(2, 16), compile_mode="default",
                                      n_models=1, workers_per_model=1, warmup=2)
        def test_pointwise():
            pass
    """)
    result = pytester.runpytest_subprocess("--npf-duration=0.2", "--npf-rounds=1", "--npf-max-rounds=1",
                                           "--npf-json=out.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    text = (pytester.path / "out.json").read_text(encoding="utf-8")
    assert '"compile_s": ' in text
    reports = [r for r in _reports(json.loads(text))]
    assert reports and all(r["compile_s"] > 0 for r in reports)


def _reports(document: object) -> list[dict[str, object]]:
    """Every report dict in a results file, wherever its layout keeps them."""
    found: list[dict[str, object]] = []
    if isinstance(document, dict):
        if "compile_s" in document and "throughput_avg" in document:
            found.append(document)
        for value in document.values():
            found.extend(_reports(value))
    elif isinstance(document, list):
        for value in document:
            found.extend(_reports(value))
    return found
