"""npf run under open-loop load: the options reach the runner, and an overloaded configuration says why."""

from __future__ import annotations

import pytest

from pytest_neuronperf.cli import EXIT_REGRESSION, main


@pytest.mark.usefixtures("no_leftover_children")
def test_an_overloaded_configuration_prints_its_reason_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "tests.serving_models:FixedService", "--inputs", "1x4", "--duration", "0.5",
                 "--n-models", "1", "--workers", "1", "--request-rate", "2000"])
    out = capsys.readouterr().out
    assert code == EXIT_REGRESSION, out
    assert "overloaded: n_models=1 workers=1 batch=1 pipeline=1: overloaded: " in out
    assert "request_rate=2000" in out and "lower request_rate" in out


def test_options_without_open_loop_load_name_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "tests.serving_models:FixedService", "--inputs", "1x4", "--burstiness", "0.5"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--burstiness: applies to open-loop load only; give --request-rate too, or --slo to" in err
