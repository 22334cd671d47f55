"""Live progress: plain lines when not on a TTY, nothing with -q, the workers' progress under xdist."""

from __future__ import annotations

import pytest

from pytest_neuronperf.runner.events import Progress
from pytest_neuronperf.session.progress_view import _is_tty, describe

TEST = """
import torch
from npf_models import Tiny

def test_tiny(npf_bench):
    npf_bench(Tiny, torch.zeros(1, 4), n_models=1, workers_per_model=[1, 2], duration=0.2)
"""


def test_a_log_gets_one_line_per_configuration(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_p=TEST)
    result = perf_project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    progress = [line for line in result.stdout.lines if line.startswith("neuronperf test_p.py::test_tiny")]
    assert len(progress) == 2, progress
    assert progress[0].startswith(
        "neuronperf test_p.py::test_tiny: configuration 1/2 (n_models=1 workers=1 batch=1 pipeline=1), 3 rounds, ~")
    assert progress[1].startswith("neuronperf test_p.py::test_tiny: configuration 2/2 (n_models=1 workers=2 ")
    assert progress[0].endswith(" s left")


def test_quiet_shows_no_progress(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_p=TEST)
    result = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
    assert "configuration 1/2" not in result.stdout.str()


def test_xdist_controller_prints_worker_progress(perf_project: pytest.Pytester) -> None:
    perf_project.makepyfile(test_p=TEST)
    result = perf_project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["[[]gw0[]] neuronperf test_p.py::test_tiny: configuration */2*"])


def test_describe_and_tty_detection() -> None:
    event = Progress("m", 0, 4, "n_models=1 workers=1 batch=1 pipeline=1", "running", 1, 3, 0.0)
    assert describe("t.py::t", event) == (
        "neuronperf t.py::t: configuration 1/4 (n_models=1 workers=1 batch=1 pipeline=1), round 2/3: "
        "running, ~0 s left"
    )

    class Method:
        def isatty(self) -> bool:
            return True

    class Flag:
        isatty = False

    assert _is_tty(Method()) and not _is_tty(Flag())


@pytest.mark.parametrize("width", [40, 60, 80, 120, 160])
def test_the_live_line_fits_the_terminal(width: int) -> None:
    event = Progress("m", 11, 13, "n_models=16 workers=4 batch=32 pipeline=2", "running", 2, 10, 0.0)
    label = "tests/perf/test_language_models.py::test_distilbert_sequence_classification[batch32]"
    line = describe(label, event, width)
    assert len(line) < width
    if width >= 80:
        assert line.endswith(": 12/13 n16 w4 b32 p2 r3/10 running ~0s")
        # The test's name is cut from the left: its end tells tests apart.
        assert "sequence_classification[batch32]:" in line
    if width >= 160:
        assert f"npf {label}: 12/13" in line
