"""Bad input through the real plugin: option values, marker keywords, model files, devices, imports."""

from __future__ import annotations

import json
import zipfile

import pytest

from pytest_neuronperf.session.fixture import GATE_KEYWORDS, runner_keywords
from pytest_neuronperf.spec import fields
from pytest_neuronperf.spec.metrics import METRIC_NAMES
from tests.reliability import harness

METRICS_LISTED = ", ".join(METRIC_NAMES)
FINGERPRINT_FIELDS = ", ".join(fields.FINGERPRINT_FIELDS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--npf-duration=-1"], "--npf-duration: expected seconds such as 10, 10s, 2m or 500ms, got '-1'"),
        (["--npf-duration=abc"], "--npf-duration: expected seconds such as 10, 10s, 2m or 500ms, got 'abc'"),
        (["--npf-duration=0"], "--npf-duration: expected a duration above 0, got '0'"),
        (["--npf-tolerance=abc"],
         "--npf-tolerance: expected a percentage such as 10% or a fraction such as 0.1, got 'abc'"),
        (["--npf-tolerance=150%"], "--npf-tolerance: expected a tolerance above 0% and at most 100%, got '150%'"),
        (["--npf-tolerance=latency=5%"],
         f"--npf-tolerance: expected metric=tolerance pairs with metrics {METRICS_LISTED} "
         "(such as throughput=5%,p99=10%), got 'latency=5%'"),
        (["--npf-rounds=0"], "--npf-rounds: expected a whole number of rounds, at least 1, got '0'"),
        (["--npf-max-rounds=0"], "--npf-max-rounds: expected a whole number of rounds, at least 1, got '0'"),
        (["--npf-n-models=0"],
         "--npf-n-models: expected positive integers such as 1,2 or the word max, got '0' in '0'"),
        (["--npf-workers=two"], "--npf-workers: expected positive integers such as 1,2, got 'two' in 'two'"),
        (["--npf-verbosity=5"], "--npf-verbosity: expected 0 (silent), 1 (info) or 2 (debug), got '5'"),
        (["--npf-timeout=never"], "--npf-timeout: expected seconds such as 10, 10s, 2m or 500ms, got 'never'"),
        (["--npf-device=!!"], "--npf-device: expected a device type such as neuron, cpu or cuda, got '!!'"),
        (["--npf-fingerprint-keys=gpu"],
         f"--npf-fingerprint-keys: unknown environment field 'gpu'; use some of {FINGERPRINT_FIELDS}, or none"),
        (["--npf-baseline-dir="], "--npf-baseline-dir: expected a path, got an empty value"),
        (["--npf-skip", "--npf-only"],
         "--npf-skip: cannot be combined with --npf-only (one skips the performance tests, the other runs only them)"),
    ],
)
def test_invalid_option_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest_subprocess(*harness.QUIET_PLUGINS, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {message}" in result.errlines


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("npf_duration = abc", "npf_duration (ini): expected seconds such as 10, 10s, 2m or 500ms, got 'abc'"),
        ("npf_timeout = -5s", "npf_timeout (ini): expected seconds such as 10, 10s, 2m or 500ms, got '-5s'"),
        ("npf_strict = maybe",
         "npf_strict (ini): expected true or false (also 1/0, yes/no, on/off), got 'maybe'"),
    ],
)
def test_invalid_ini_values_name_the_ini_key(pytester: pytest.Pytester, ini: str, message: str) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest_subprocess(*harness.QUIET_PLUGINS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {message}" in result.errlines


MARKER_MISTAKES = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, durations=1, n_model=2, {harness.QUICK})
def test_typo():
    pass
"""

POSITIONAL = harness.HEADER + """
@pytest.mark.neuron_benchmark(m.Fine, inputs=torch.zeros(1, 4))
def test_positional():
    pass
"""


def test_unknown_marker_keywords_are_collection_errors_listing_the_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_typo=MARKER_MISTAKES, test_positional=POSITIONAL)
    done = harness.run(pytester)
    assert done.result.ret == pytest.ExitCode.INTERRUPTED
    done.result.assert_outcomes(errors=2)
    valid = (f"valid keywords are the runner's parameters ({', '.join(runner_keywords())}) "
             f"and the gate's ({', '.join(GATE_KEYWORDS)})")
    assert ("test_typo.py::test_typo: @pytest.mark.neuron_benchmark: unknown keyword(s) durations, n_model; "
            + valid) in done.output
    assert "test_positional.py::test_positional: @pytest.mark.neuron_benchmark takes keyword arguments only" \
        in done.output
    assert not done.leftovers


MODEL_FILES = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model="missing.pt", {harness.QUICK})
def test_missing_file():
    pass


@pytest.mark.neuron_benchmark(model="garbage.pt", {harness.QUICK})
def test_not_an_archive():
    pass


@pytest.mark.neuron_benchmark(model="plain.zip.pt", {harness.QUICK})
def test_archive_that_is_not_torchscript():
    pass


@pytest.mark.neuron_benchmark(model="truncated_index.json", {harness.QUICK})
def test_truncated_model_index():
    pass


@pytest.mark.neuron_benchmark(model="index_of_nothing.json", {harness.QUICK})
def test_index_naming_a_missing_artifact():
    pass


@pytest.mark.neuron_benchmark(model=m.Fine, {harness.QUICK})
def test_later_one_passes():
    pass
"""


def test_missing_and_corrupt_model_files_fail_with_what_is_wrong(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_model_files=MODEL_FILES)
    (pytester.path / "garbage.pt").write_bytes(b"\x00\x01 not a zip archive")
    with zipfile.ZipFile(pytester.path / "plain.zip.pt", "w") as archive:
        archive.writestr("notes.txt", "a zip archive, but no TorchScript inside")
    (pytester.path / "truncated_index.json").write_text('{"schema_version": 1, "model_na')
    (pytester.path / "index_of_nothing.json").write_text(json.dumps({
        "schema_version": 1, "model_name": "gone",
        "model_configs": [{"filename": "gone.pt", "batch_size": 1, "pipeline_size": 1, "status": "finished"}],
    }))
    done = harness.run(pytester)
    done.result.assert_outcomes(failed=5, passed=1)
    out = done.output
    assert "FileNotFoundError: model: no such file 'missing.pt'; pass the path of a TorchScript file" in out
    assert "ValueError: model: 'garbage.pt' is not a TorchScript archive; save the model with torch.jit.save" in out
    # Found out inside the copy, and reported from there with the configuration.
    assert ("raised ValueError: model: 'plain.zip.pt' could not be loaded with torch.jit.load" in out
            and "during model load (configuration: n_models=1" in out)
    assert "ValueError: model index 'truncated_index.json': not valid JSON" in out
    assert "FileNotFoundError: model: no such file 'gone.pt'" in out
    assert not done.leftovers, done.describe_leftovers()


UNAVAILABLE = harness.HEADER + f"""
@pytest.mark.neuron_benchmark(model=m.Fine, device_type="neuron", {harness.QUICK})
def test_on_neuron():
    pass


def test_fixture_on_neuron(npf_bench):
    npf_bench(m.Fine, torch.zeros(1, 4), device_type="neuron", duration=0.2)


@pytest.mark.neuron_benchmark(model=m.Fine, device_type="tpu", {harness.QUICK})
def test_unknown_device():
    pass
"""


def test_an_unavailable_device_skips_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_unavailable=UNAVAILABLE)
    # No neuron-ls on PATH and no /dev/neuron* here: the Neuron backend is unavailable.
    done = harness.run(pytester, "-rs", env={"PATH": "/usr/bin:/bin"})
    done.result.assert_outcomes(skipped=2, failed=1)
    done.result.stdout.fnmatch_lines(["SKIPPED [[]2[]] *device_type='neuron' is not available here: *"])
    assert "ValueError: device_type='tpu' is unknown; use one of cpu, cuda, gpu, neuron" in done.output
    assert not done.leftovers, done.describe_leftovers()


LOCAL_MODEL = """
import pytest
import torch


class LocalModel(torch.nn.Module):
    def forward(self, x):
        return x


@pytest.mark.neuron_benchmark(model=LocalModel, inputs=torch.zeros(1, 4), duration=0.2, n_models=1,
                              workers_per_model=1, warmup=1, rounds=1)
def test_local():
    pass
"""


def test_a_model_the_copy_cannot_import_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_local_model=LOCAL_MODEL)
    # importlib mode keeps test modules off sys.path; PYTHONSAFEPATH keeps the current folder off it too,
    # as the `pytest` console script does.
    done = harness.run(pytester, "--import-mode=importlib", env={"PYTHONSAFEPATH": "1"})
    done.result.assert_outcomes(failed=1)
    # ModelNotFoundError is the ImportError of a model that is not where it was looked for.
    assert ("raised ModelNotFoundError: model: the model-copy process could not import module 'test_local_model' to "
            "find 'LocalModel' (ModuleNotFoundError: No module named 'test_local_model'). Define the model in a "
            "module that is importable from sys.path (with pytest's importlib import mode, test modules are "
            "not), or pass multiprocess=False during model load") in done.output
    assert not done.leftovers, done.describe_leftovers()
