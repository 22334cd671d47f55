"""Options and ini keys: precedence, parsing and usage errors (no benchmark runs)."""

from __future__ import annotations

import pytest

import pytest_neuronperf.runner.benchmark  # noqa: F401  (numpy loads once here, not inside in-process pytester runs)
from pytest_neuronperf.plugin import SETTINGS_KEY, get_settings


def test_ini_values_apply_and_the_command_line_wins(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nnpf_duration = 2m\nnpf_tolerance = 5%\nnpf_rounds = 4\n")
    config = pytester.parseconfigure("--npf-duration=10s")
    settings = get_settings(config)
    assert settings.duration == 10.0
    assert settings.tolerance.throughput == pytest.approx(0.05)
    assert settings.rounds == 4


def test_defaults(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nnpf_duration =\n")  # an empty ini value is no value
    config = pytester.parseconfigure()
    assert SETTINGS_KEY not in config.stash  # nothing given: built on first need, not at start-up
    settings = get_settings(config)
    assert settings.duration is None and settings.compare is True and settings.save_baseline is False
    assert settings.baseline_dir == ".neuronperf/baselines"


def test_given_options_are_resolved_at_start_up(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("--npf-no-compare")
    assert config.stash[SETTINGS_KEY].compare is False


def test_settings_are_not_guessed_before_configure(pytester: pytest.Pytester) -> None:
    # Before pytest_configure the given options are not resolved yet; defaults would silently ignore them.
    config = pytester.parseconfig("--npf-duration=5s")
    with pytest.raises(RuntimeError, match="outside pytest_configure"):
        get_settings(config)


def test_no_compare_flag(pytester: pytest.Pytester) -> None:
    assert get_settings(pytester.parseconfigure("--npf-no-compare")).compare is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--npf-duration=-1"], "--npf-duration: "),
        (["--npf-duration=abc"], "--npf-duration: "),
        (["--npf-tolerance=abc"], "--npf-tolerance: "),
        (["--npf-rounds=0"], "--npf-rounds: "),
        (["--npf-skip", "--npf-only"], "--npf-skip: cannot be combined with --npf-only"),
        (["--npf-device=tpu"], "--npf-device: device_type='tpu' is unknown; use one of cpu, cuda, gpu, neuron"),
    ],
)
def test_invalid_values_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_invalid_ini_value_names_the_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nnpf_duration = soon\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "npf_duration (ini): " in result.stderr.str()


def test_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.neuron_benchmark(model="m.pt", inputs=None)
        def test_x():
            pass
    """)
    result = pytester.runpytest("--strict-markers", "--co", "-q")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*test_x*"])


def test_unknown_marker_keyword_fails_collection_listing_valid_ones(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.neuron_benchmark(model="m.pt", inputs=None, durration=5)
        def test_x():
            pass
    """)
    result = pytester.runpytest("--co")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    text = result.stdout.str()
    assert "unknown keyword(s) durration" in text
    assert "duration" in text and "max_p99_ms" in text and "workers_per_model" in text


def test_positional_marker_arguments_are_rejected(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.neuron_benchmark("m.pt")
        def test_x():
            pass
    """)
    result = pytester.runpytest("--co")
    assert "takes keyword arguments only" in result.stdout.str()


def test_skip_and_only_select_performance_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest
        @pytest.mark.neuron_benchmark(model="m.pt", inputs=None)
        def test_marked():
            pass
        def test_fixture(npf_bench):
            pass
        def test_plain():
            pass
    """)
    skipped = pytester.runpytest("--npf-skip")
    skipped.assert_outcomes(passed=1, skipped=2)
    assert "performance tests skipped (--npf-skip)" in pytester.runpytest("--npf-skip", "-rs").stdout.str()
    only = pytester.runpytest("--npf-only", "-p", "no:randomly", "--co", "-q")
    only.stdout.fnmatch_lines(["*test_marked*", "*test_fixture*", "*1 deselected*"])


def test_help_lists_the_options(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--help").stdout.str()
    for flag in ("--npf-duration", "--npf-save-baseline", "--npf-tolerance", "--npf-no-compare",
                 "--npf-require-baseline", "--npf-json", "--npf-csv", "--npf-rounds", "--npf-max-rounds",
                 "--npf-against"):
        assert flag in text
    assert "npf_duration" in text  # ini keys too
