"""``npf ab A B``: two models measured in alternating rounds from the shell, judged by the A/B gate.

The models are tiny busy-wait modules written under a temporary folder; every comparison runs one
configuration for a fraction of a second per side. Outcomes, messages, files and exit statuses are
asserted, never timings.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_neuronperf.cli import main
from pytest_neuronperf.report.results_file import as_measurements, load_results

ROOT = Path(__file__).resolve().parents[1]
MODULE = "npf_ab_cli_models"
# Spin (300 us a call) and its twin are the same model; Slow spins 1.5x as long; Broken raises.
MODELS = '''
import time

import torch


def _spin(ns: int) -> None:
    end = time.perf_counter_ns() + ns
    while time.perf_counter_ns() < end:
        pass


class Spin(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _spin(300_000)
        return x


class SpinTwin(Spin):
    pass


class Slow(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _spin(450_000)
        return x


class Broken(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("broken on purpose")
'''
# Short rounds, one configuration; a 20% tolerance keeps identical models far from a false alarm
# while a 1.5x slower p50 is still far beyond it.
QUICK = ["--inputs", "1x4", "--duration", "0.6", "--rounds", "2", "--max-rounds", "3", "--n-models", "1",
         "--workers", "1", "--tolerance", "20%", "--verbosity", "0"]


@pytest.fixture(scope="module")
def models_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The models module, one file for this test module (a second file of the same name is refused)."""
    path = tmp_path_factory.mktemp("ab_models") / f"{MODULE}.py"
    path.write_text(MODELS, encoding="utf-8")
    before = list(sys.path)
    yield path
    sys.path[:] = before
    sys.modules.pop(MODULE, None)


def _model(path: Path, name: str) -> str:
    return f"{path}:{name}"


def _ab(path: Path, a: str, b: str, *extra: str) -> list[str]:
    return ["ab", _model(path, a), _model(path, b), *QUICK, *extra]


def test_identical_models_do_not_fail(models_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(_ab(models_file, "Spin", "SpinTwin"))
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[-1] in ("verdict: pass", "verdict: inconclusive"), out
    assert code == 0, out
    # A's table, then B's, then the verdict block with the round pairs used.
    assert lines[0] == f"A (current): {_model(models_file, 'Spin')}"
    assert f"B (reference): {_model(models_file, 'SpinTwin')}" in lines
    assert sum(1 for line in lines if line.startswith("throughput_avg")) == 2
    assert f"{MODULE}:Spin" in out and f"{MODULE}:SpinTwin" in out
    assert "A vs B, tolerance 20%:" in lines
    assert any(line.startswith("n_models=1 workers=1 batch=1 pipeline=1: ") and "round pairs" in line
               for line in lines), out
    for metric in ("throughput", "p50", "p99"):
        assert any(line.startswith("  ") and f": {metric} " in line for line in lines), (metric, out)
    assert "FAILED" not in out and "performance regression" not in out


def test_strict_fails_an_inconclusive_verdict(models_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Rounds this short leave p99 without enough samples, so the verdict is almost always inconclusive.
    code = main(_ab(models_file, "Spin", "Spin", "--strict"))
    out = capsys.readouterr().out
    last = out.splitlines()[-1]
    assert last in ("verdict: pass", "verdict: inconclusive"), out
    if last == "verdict: inconclusive":
        assert code == 1 and "inconclusive fails under --strict" in out
    else:
        assert code == 0


def test_slower_model_fails_naming_the_metric_and_the_reference(models_file: Path) -> None:
    # From the shell, as a user runs it: a subprocess with the module path in another folder.
    proc = subprocess.run(
        [sys.executable, "-m", "pytest_neuronperf", *_ab(models_file, "Slow", "Spin")],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )
    out = proc.stdout
    assert proc.returncode == 1, (out, proc.stderr[-3000:])
    assert out.splitlines()[-1] == "verdict: fail"
    assert f"performance regression in measurement '{_model(models_file, 'Slow')}'" in out
    against = f"of reference {_model(models_file, 'Spin')}"
    # p50 of a busy-wait model is its service time: +50%, far beyond 20%.
    failing = [line for line in out.splitlines() if line.startswith("n_models=1") and "beyond 20%" in line]
    assert any(": p50 " in line and against in line for line in failing), out
    assert "n_models=1 workers=1 batch=1 pipeline=1: fail after " in out


def test_json_holds_both_sides_and_the_verdicts(models_file: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "ab.json"
    code = main(_ab(models_file, "Slow", "Spin", "--json", str(target)))
    out = capsys.readouterr().out
    assert code == 1, out
    assert f"wrote {target}" in out
    doc = json.loads(target.read_text(encoding="utf-8"))
    ab = doc["ab"]
    assert ab["current"] == _model(models_file, "Slow") and ab["reference"] == _model(models_file, "Spin")
    assert ab["verdict"] == "fail" and ab["exit_status"] == 1 and ab["tolerance"] == "20%"
    [config] = ab["configurations"]
    assert config["config_key"] == "b1-n1-w1-p1" and config["verdict"] == "fail" and 2 <= config["pairs"] <= 3
    # A results file as pytest --npf-json writes it, so npf report reads it: A judged against B, and B.
    current, reference = as_measurements(load_results(target))
    assert (current.nodeid, current.name, current.verdict) == (ab["current"], "current", "fail")
    assert (reference.nodeid, reference.name, reference.verdict) == (ab["reference"], "reference", "measured")
    assert current.reports[0]["model_filename"] == f"{MODULE}:Slow"
    assert reference.reports[0]["model_filename"] == f"{MODULE}:Spin"
    assert len(current.reports[0]["rounds"]) == len(reference.reports[0]["rounds"]) == config["pairs"]
    [outcome] = current.outcomes
    assert outcome["baseline"]["model_filename"] == f"{MODULE}:Spin"
    p50 = next(j for j in outcome["judgements"] if j["metric"] == "p50")
    assert p50["verdict"] == "fail" and "of reference" in p50["message"]


def test_a_model_that_errors_exits_1_with_the_error(models_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_ab(models_file, "Broken", "Spin")) == 1
    captured = capsys.readouterr()
    assert f"npf ab: error: A ({_model(models_file, 'Broken')}) failed: " in captured.err
    assert "broken on purpose" in captured.err
    # A reference that errors compared nothing: that is an error too, never a pass.
    assert main(_ab(models_file, "Spin", "Broken")) == 1
    captured = capsys.readouterr()
    assert "npf ab: error: the reference (reference " in captured.err
    assert "could not be measured" in captured.err and "broken on purpose" in captured.err


def test_nothing_compared_exits_3(models_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # More copies than any machine has cores: the only configuration is skipped, so nothing is compared.
    args = _ab(models_file, "Spin", "Spin")
    args[args.index("--n-models") + 1] = "100000"
    assert main(args) == 3
    out = capsys.readouterr().out
    assert "skipped" in out and "nothing was compared" in out
    assert out.splitlines()[-1] == "verdict: inconclusive"


@pytest.mark.parametrize(("case", "expected"), [
    ("no module", "npf ab: error: A: cannot import module 'npf_ab_nowhere'"),
    ("no class", f"npf ab: error: B: module '{MODULE}' has no attribute 'Nope'"),
    ("bare name", "npf ab: error: A: expected MODULE:CLASS such as examples.models:TinyMLP, or a TorchScript file"),
    ("missing file", "npf ab: error: B: no such file 'nowhere/model.pt'"),
    ("not torchscript", "npf ab: error: B: model: "),
    ("python file", "is a Python file; name the model in it as"),
    ("bad inputs", "npf ab: error: --inputs: expected a shape such as 1x64"),
    ("rounds", "npf ab: error: --max-rounds: expected at least --rounds (4) round pairs, got 3"),
    ("device", "npf ab: error: --device: device_type='abacus' is unknown"),
    ("json folder", "npf ab: error: --json: "),
    ("same file name", f"would be imported as module '{MODULE}', which is already"),
])
def test_usage_errors_exit_2_naming_the_argument(case: str, expected: str, models_file: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spin = _model(models_file, "Spin")
    not_torchscript = tmp_path / "model.pt"
    not_torchscript.write_text("not a TorchScript archive", encoding="utf-8")
    other = tmp_path / "elsewhere" / f"{MODULE}.py"
    other.parent.mkdir()
    other.write_text(MODELS, encoding="utf-8")
    a, b, extra = {
        "no module": ("npf_ab_nowhere:Net", spin, []),
        "no class": (spin, _model(models_file, "Nope"), []),
        "bare name": ("Spin", spin, []),
        "missing file": (spin, "nowhere/model.pt", []),
        "not torchscript": (spin, str(not_torchscript), []),
        "python file": (spin, str(models_file), []),
        "bad inputs": (spin, spin, ["--inputs", "1x"]),
        "rounds": (spin, spin, ["--rounds", "4", "--max-rounds", "3"]),
        "device": (spin, spin, ["--device", "abacus"]),
        "json folder": (spin, spin, ["--json", str(tmp_path)]),
        "same file name": (spin, f"{other}:Spin", []),
    }[case]
    assert main(["ab", a, b, *QUICK, *extra]) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(("option", "expected"), [
    (["--tolerance", "lots"], "--tolerance: expected a percentage"),
    (["--rounds", "0"], "--rounds: expected a whole number of rounds, at least 1"),
    (["--duration", "soon"], "--duration: expected seconds"),
    (["--n-models", "0"], "--n-models"),
])
def test_bad_options_exit_2(option: list[str], expected: str, models_file: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    spin = _model(models_file, "Spin")
    with pytest.raises(SystemExit) as exit_info:
        main(["ab", spin, spin, *QUICK, *option])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err


def test_help_describes_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["ab", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for words in ("examples:", "npf ab", "--max-rounds", "--strict", "--json", "alternating rounds",
                  "exit status:", "verdict: pass, fail or inconclusive"):
        assert words in out, words
    # The command list shows it too.
    assert main([]) == 2
    assert "compare model A with reference B, measured in alternating rounds" in capsys.readouterr().err
