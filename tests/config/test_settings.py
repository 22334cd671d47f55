from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_neuronperf.config import settings as settings_module
from pytest_neuronperf.config.options import OPTIONS, Option
from pytest_neuronperf.config.settings import (
    MAX,
    PARSERS,
    Settings,
    SettingsError,
    Tolerance,
    convert,
    parse_bool,
    parse_device,
    parse_duration,
    parse_fingerprint_keys,
    parse_int_list,
    parse_max_rounds,
    parse_path,
    parse_revision,
    parse_rounds,
    parse_timeout,
    parse_tolerance,
    parse_verbosity,
)
from pytest_neuronperf.spec.fields import DEFAULT_FINGERPRINT_KEYS, FINGERPRINT_FIELDS
from pytest_neuronperf.spec.metrics import METRIC_NAMES

METRICS_LISTED = ", ".join(METRIC_NAMES)

DURATION_HELP = "expected seconds such as 10, 10s, 2m or 500ms, got"


def error_text(excinfo: pytest.ExceptionInfo[SettingsError]) -> str:
    return str(excinfo.value)


# --- SettingsError ------------------------------------------------------------------------------


def test_settings_error_reads_option_then_message() -> None:
    err = SettingsError("--npf-duration", "expected seconds such as 10, 10s, 2m or 500ms, got 'abc'")
    assert isinstance(err, ValueError)
    assert str(err) == "--npf-duration: expected seconds such as 10, 10s, 2m or 500ms, got 'abc'"
    assert (err.option, err.message) == ("--npf-duration", DURATION_HELP + " 'abc'")


def test_settings_error_survives_pickling() -> None:
    # xdist workers and model-copy processes send errors home pickled.
    err = pickle.loads(pickle.dumps(SettingsError("--npf-rounds", "bad")))
    assert isinstance(err, SettingsError)
    assert str(err) == "--npf-rounds: bad"


# --- durations ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10", 10.0),
        ("10.5", 10.5),
        ("10s", 10.0),
        ("500ms", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        (" 3 s ", 3.0),
        (".5s", 0.5),
        ("1.", 1.0),
        ("10S", 10.0),
    ],
)
def test_parse_duration_accepts(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", f"--npf-duration: {DURATION_HELP} 'abc'"),
        ("", f"--npf-duration: {DURATION_HELP} ''"),
        ("   ", f"--npf-duration: {DURATION_HELP} '   '"),
        ("-1", f"--npf-duration: {DURATION_HELP} '-1'"),
        ("nan", f"--npf-duration: {DURATION_HELP} 'nan'"),
        ("inf", f"--npf-duration: {DURATION_HELP} 'inf'"),
        ("1e3", f"--npf-duration: {DURATION_HELP} '1e3'"),
        ("10d", f"--npf-duration: {DURATION_HELP} '10d'"),
        ("10 s s", f"--npf-duration: {DURATION_HELP} '10 s s'"),
        ("\u0661\u0660", f"--npf-duration: {DURATION_HELP} '\u0661\u0660'"),  # Arabic-Indic digits
        ("0", "--npf-duration: expected a duration above 0, got '0'"),
        ("0ms", "--npf-duration: expected a duration above 0, got '0ms'"),
        ("9" * 400, "--npf-duration: expected a finite duration, got '" + "9" * 57 + "...'"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse_duration(text)
    assert error_text(excinfo) == message


def test_parse_duration_names_the_option_it_is_given() -> None:
    with pytest.raises(SettingsError, match=r"^npf_duration \(ini\): expected seconds"):
        parse_duration("x", "npf_duration (ini)")


def test_parse_timeout_is_a_duration_named_timeout() -> None:
    assert parse_timeout("15m") == 900.0
    with pytest.raises(SettingsError) as excinfo:
        parse_timeout("soon")
    assert error_text(excinfo) == f"--npf-timeout: {DURATION_HELP} 'soon'"


@given(
    st.decimals(min_value="0.001", max_value="100000", places=3),
    st.sampled_from([("", 1.0), ("s", 1.0), ("ms", 0.001), ("m", 60.0), ("h", 3600.0)]),
)
def test_parse_duration_scales_by_unit(number: Any, unit: tuple[str, float]) -> None:
    suffix, scale = unit
    assert parse_duration(f"{number}{suffix}") == pytest.approx(float(number) * scale)


# --- tolerance ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10%", Tolerance(0.1, 0.1, 0.1)),
        ("0.1", Tolerance(0.1, 0.1, 0.1)),
        ("100%", Tolerance(1.0, 1.0, 1.0)),
        ("1", Tolerance(1.0, 1.0, 1.0)),
        (" 2.5 % ", Tolerance(0.025, 0.025, 0.025)),
        ("throughput=5%,p99=10%,p50=8%", Tolerance(0.05, 0.08, 0.10)),
        ("p99=20%", Tolerance(0.05, 0.05, 0.20)),
        ("Throughput = 0.05 , p50=0.2", Tolerance(0.05, 0.2, 0.05)),
    ],
)
def test_parse_tolerance_accepts(text: str, expected: Tolerance) -> None:
    got = parse_tolerance(text)
    for name in ("throughput", "p50", "p99"):
        assert getattr(got, name) == pytest.approx(getattr(expected, name))


TOL_FORMAT = "expected a percentage such as 10% or a fraction such as 0.1, got"
TOL_RANGE = "expected a tolerance above 0% and at most 100%, got"
TOL_PAIRS = (f"expected metric=tolerance pairs with metrics {METRICS_LISTED} "
             "(such as throughput=5%,p99=10%), got")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", f"{TOL_FORMAT} 'abc'"),
        ("", f"{TOL_FORMAT} ''"),
        ("nan%", f"{TOL_FORMAT} 'nan%'"),
        ("-5%", f"{TOL_FORMAT} '-5%'"),
        ("0%", f"{TOL_RANGE} '0%'"),
        ("0", f"{TOL_RANGE} '0'"),
        ("150%", f"{TOL_RANGE} '150%'"),
        ("10", f"{TOL_RANGE} '10'"),
        ("latency=5%", f"{TOL_PAIRS} 'latency=5%'"),
        ("throughput=5%,p50", f"{TOL_PAIRS} 'p50'"),
        ("p50=5%,p50=6%", "p50 is given twice in 'p50=5%,p50=6%'"),
        ("throughput=", "expected for throughput a percentage such as 10% or a fraction such as 0.1, got ''"),
        ("p99=200%", "expected for p99 a tolerance above 0% and at most 100%, got '200%'"),
    ],
)
def test_parse_tolerance_rejects(text: str, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse_tolerance(text)
    assert error_text(excinfo) == f"--npf-tolerance: {message}"


def test_tolerance_defaults_to_five_percent_and_maps_report_fields() -> None:
    tol = Tolerance(throughput=0.05, p50=0.08, p99=0.2)
    assert Tolerance() == Tolerance(0.05, 0.05, 0.05)
    assert tol.for_metric("throughput") == tol.for_metric("throughput_avg") == 0.05
    assert tol.for_metric("p50") == tol.for_metric("latency_ms_p50") == tol.for_metric("infer_ms_p50") == 0.08
    assert tol.for_metric("p99") == tol.for_metric("latency_ms_p99") == tol.for_metric("infer_ms_p99") == 0.2
    with pytest.raises(KeyError, match="no tolerance for 'p90'"):
        tol.for_metric("p90")


def test_tolerance_prints_as_it_is_written() -> None:
    assert str(Tolerance()) == "5%"
    assert str(Tolerance(0.05, 0.08, 0.1)) == "throughput=5%,p50=8%,p99=10%"
    assert parse_tolerance(str(Tolerance(0.05, 0.08, 0.1))) == Tolerance(0.05, 0.08, 0.1)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), True])
def test_tolerance_rejects_out_of_range_fields(bad: float) -> None:
    with pytest.raises(SettingsError, match=r"^tolerance: p50 must be a fraction"):
        Tolerance(p50=bad)


# --- integer lists ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "allow_max", "expected"),
    [
        ("1,2", False, (1, 2)),
        ("1 2", False, (1, 2)),
        ("4", False, (4,)),
        (" 1, 2 ,\n3 ", False, (1, 2, 3)),
        ("2,2,1", False, (2, 1)),
        ("1,max", True, (1, MAX)),
        ("MAX", True, (MAX,)),
    ],
)
def test_parse_int_list_accepts(text: str, allow_max: bool, expected: tuple[int, ...]) -> None:
    assert parse_int_list(text, "--npf-n-models", allow_max=allow_max) == expected


@pytest.mark.parametrize(
    ("text", "allow_max", "message"),
    [
        ("", False, "expected positive integers such as 1,2, got ''"),
        (" , ", False, "expected positive integers such as 1,2, got ' , '"),
        ("0", False, "expected positive integers such as 1,2, got '0' in '0'"),
        ("1,-1", False, "expected positive integers such as 1,2, got '-1' in '1,-1'"),
        ("1.5", False, "expected positive integers such as 1,2, got '1.5' in '1.5'"),
        ("max", False, "expected positive integers such as 1,2, got 'max' in 'max'"),
        ("1,two", True, "expected positive integers such as 1,2 or the word max, got 'two' in '1,two'"),
        ("9999999999", False, "expected positive integers such as 1,2, got '9999999999' in '9999999999'"),
    ],
)
def test_parse_int_list_rejects(text: str, allow_max: bool, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse_int_list(text, "--npf-workers", allow_max=allow_max)
    assert error_text(excinfo) == f"--npf-workers: {message}"


# --- small parsers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *[("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True)],
        *[("false", False), ("0", False), ("No", False), (" off ", False)],
    ],
)
def test_parse_bool_accepts(text: str, value: bool) -> None:
    assert parse_bool(text, "npf_strict (ini)") is value


@pytest.mark.parametrize("text", ["", "maybe", "2", "y", "t"])
def test_parse_bool_rejects(text: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse_bool(text, "npf_strict (ini)")
    assert error_text(excinfo) == (f"npf_strict (ini): expected true or false (also 1/0, yes/no, on/off), got {text!r}")


@pytest.mark.parametrize(
    ("text", "level"),
    [("0", 0), ("1", 1), ("2", 2), ("silent", 0), ("error", 0), ("INFO", 1), (" debug ", 2)],
)
def test_parse_verbosity_accepts(text: str, level: int) -> None:
    assert parse_verbosity(text) == level


@pytest.mark.parametrize("text", ["3", "-1", "", "loud"])
def test_parse_verbosity_rejects(text: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        parse_verbosity(text)
    assert error_text(excinfo) == f"--npf-verbosity: expected 0 (silent), 1 (info) or 2 (debug), got {text!r}"


def test_parse_rounds_and_max_rounds() -> None:
    assert parse_rounds("1") == 1
    assert parse_rounds(" 5 ") == 5
    assert parse_max_rounds("1") == 1
    assert parse_max_rounds("12") == 12
    for text in ("0", "-1", "x", "2.5", ""):
        with pytest.raises(SettingsError) as excinfo:
            parse_rounds(text)
        assert error_text(excinfo) == f"--npf-rounds: expected a whole number of rounds, at least 1, got {text!r}"
        with pytest.raises(SettingsError) as excinfo:
            parse_max_rounds(text)
        assert error_text(excinfo) == (
            f"--npf-max-rounds: expected a whole number of rounds, at least 1, got {text!r}"
        )


def test_parse_revision() -> None:
    assert parse_revision(" origin/main ") == "origin/main"
    assert parse_revision("v1.2^") == "v1.2^"
    for text in ("", "  ", "-x", "two words"):
        with pytest.raises(SettingsError) as excinfo:
            parse_revision(text)
        assert error_text(excinfo) == (
            f"--npf-against: expected a git revision such as origin/main, a tag or a sha, got {text!r}"
        )


def test_most_rounds_never_below_rounds() -> None:
    assert Settings().most_rounds == 10
    assert Settings(rounds=4, max_rounds=6).most_rounds == 6
    assert Settings(rounds=5, max_rounds=2).most_rounds == 5
    with pytest.raises(SettingsError, match=r"^--npf-against: cannot be combined with --npf-save-baseline"):
        Settings(against="main", save_baseline=True)


def test_parse_device() -> None:
    assert parse_device("neuron") == "neuron"
    assert parse_device(" CUDA ") == "cuda"
    assert parse_device("my-backend_2") == "my-backend_2"
    for text in ("", "2gpu", "cuda:0", "c p u"):
        with pytest.raises(SettingsError) as excinfo:
            parse_device(text)
        assert error_text(excinfo) == (
            f"--npf-device: expected a device type such as neuron, cpu or cuda, got {text!r}"
        )


def test_parse_path() -> None:
    assert parse_path("out/report.json", "--npf-json") == "out/report.json"
    assert parse_path(" spaced name.json", "--npf-json") == " spaced name.json"
    with pytest.raises(SettingsError) as excinfo:
        parse_path("  ", "--npf-json")
    assert error_text(excinfo) == "--npf-json: expected a path, got an empty value"
    with pytest.raises(SettingsError) as excinfo:
        parse_path("a\0b", "--npf-json")
    assert error_text(excinfo) == "--npf-json: a path cannot contain a NUL character, got 'a\\x00b'"


def test_parse_fingerprint_keys() -> None:
    assert parse_fingerprint_keys("instance_type, device_type") == ("instance_type", "device_type")
    assert parse_fingerprint_keys("cpu_count cpu_count") == ("cpu_count",)
    assert parse_fingerprint_keys("none") == ()
    known = ", ".join(FINGERPRINT_FIELDS)
    with pytest.raises(SettingsError) as excinfo:
        parse_fingerprint_keys("instance_type,gpu")
    assert error_text(excinfo) == (
        f"--npf-fingerprint-keys: unknown environment field 'gpu'; use some of {known}, or none"
    )
    with pytest.raises(SettingsError) as excinfo:
        parse_fingerprint_keys(",")
    assert error_text(excinfo) == f"--npf-fingerprint-keys: expected field names from {known}, or none, got ','"


ALL_PARSERS = [
    lambda t: parse_duration(t),
    lambda t: parse_timeout(t),
    lambda t: parse_tolerance(t),
    lambda t: parse_int_list(t, "--x"),
    lambda t: parse_int_list(t, "--x", allow_max=True),
    lambda t: parse_bool(t, "--x"),
    lambda t: parse_verbosity(t),
    lambda t: parse_rounds(t),
    lambda t: parse_max_rounds(t),
    lambda t: parse_revision(t),
    lambda t: parse_device(t),
    lambda t: parse_path(t, "--x"),
    lambda t: parse_fingerprint_keys(t),
] + [lambda t, o=o: PARSERS[o.field](t, o.flag) for o in OPTIONS]

TEXT = st.one_of(
    st.text(),
    st.text(alphabet="0123456789.,%=smh -+eEnaifxptroughu\t\n"),
    st.from_regex(r"\A\s*[0-9]{0,5}(\.[0-9]{0,3})?\s*(ms|s|m|h|%)?\s*\Z"),
)


@given(st.sampled_from(ALL_PARSERS), TEXT)
def test_parsers_raise_only_settings_error(parser: Any, text: str) -> None:
    try:
        parser(text)
    except SettingsError as exc:
        assert str(exc).startswith(f"{exc.option}: ")


# --- Settings -----------------------------------------------------------------------------------


def test_settings_defaults() -> None:
    s = Settings()
    assert s.duration is None
    assert s.save_baseline is False
    assert s.baseline_dir == ".neuronperf/baselines"
    assert s.tolerance == Tolerance(0.05, 0.05, 0.05)
    assert s.compare is True
    assert (s.require_baseline, s.skip, s.only, s.strict, s.overwrite_corrupt, s.recompile) == (False,) * 6
    assert (s.device, s.n_models, s.workers, s.verbosity, s.timeout) == (None,) * 5
    assert (s.json_path, s.csv_path, s.md_path, s.html_path) == (None,) * 4
    assert (s.rounds, s.max_rounds, s.against) == (3, 10, None)
    assert s.fingerprint_keys == (
        "device_type",
        "instance_type",
        "cpu_model",
        "cpu_count",
        "torch",
        "torch_neuronx",
        # The device stacks' versions: each compared only where a side's device type uses it.
        "neuronx_cc",
        "neuron_runtime",
        "neuron_driver",
        "gpu_name",
        "cuda_driver",
        "cuda_runtime",
    )
    assert s.fingerprint_keys == DEFAULT_FINGERPRINT_KEYS
    assert Settings.from_sources({}, {}) == s


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().rounds = 5  # type: ignore[misc]


def test_precedence_cli_over_ini_over_default() -> None:
    s = Settings.from_sources(
        cli={"duration": "5s", "rounds": None, "tolerance": None, "device": "CPU"},
        ini={"duration": "20s", "rounds": "7", "device": "neuron", "max_rounds": ""},
    )
    assert s.duration == 5.0  # command line beats ini
    assert s.rounds == 7  # ini fills in where the command line said nothing
    assert s.device == "cpu"
    assert s.tolerance == Tolerance()  # neither: default
    assert s.max_rounds == 10  # an unset ini key reads as "" and means "not given"


def test_ini_booleans_lists_and_flags() -> None:
    s = Settings.from_sources(
        cli={"save_baseline": True},
        ini={
            "strict": True,
            "recompile": "yes",
            "n_models": ["1", "max"],
            "workers": "1 2",
            "compare": "false",
            "fingerprint_keys": [],
        },
    )
    assert s.save_baseline is True
    assert s.strict is True
    assert s.recompile is True
    assert s.n_models == (1, MAX)
    assert s.workers == (1, 2)
    assert s.compare is False
    assert s.fingerprint_keys == DEFAULT_FINGERPRINT_KEYS


def test_no_compare_flag_beats_ini() -> None:
    s = Settings.from_sources(cli={"compare": False}, ini={"compare": "true"})
    assert s.compare is False
    s = Settings.from_sources(cli={"compare": True}, ini={"compare": "false"})
    assert s.compare is True


def test_programmatic_values_are_accepted() -> None:
    s = Settings.from_sources(
        cli={"rounds": 4, "duration": 2.5, "n_models": (1, 2), "tolerance": Tolerance(p99=0.3)},
        ini={},
    )
    assert (s.rounds, s.duration, s.n_models) == (4, 2.5, (1, 2))
    assert s.tolerance.p99 == 0.3


def test_cli_errors_name_the_flag_and_ini_errors_the_key() -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.from_sources(cli={"duration": "abc"}, ini={})
    assert error_text(excinfo) == f"--npf-duration: {DURATION_HELP} 'abc'"
    assert excinfo.value.option == "--npf-duration"

    with pytest.raises(SettingsError) as excinfo:
        Settings.from_sources(cli={}, ini={"duration": "abc"})
    assert error_text(excinfo) == f"npf_duration (ini): {DURATION_HELP} 'abc'"

    with pytest.raises(SettingsError) as excinfo:
        Settings.from_sources(cli={}, ini={"strict": "perhaps"})
    assert error_text(excinfo).startswith("npf_strict (ini): expected true or false")

    with pytest.raises(SettingsError) as excinfo:
        Settings.from_sources(cli={"rounds": True}, ini={})
    assert error_text(excinfo) == "--npf-rounds: expected a value, got True"


def test_a_bad_ini_value_is_not_reported_when_the_cli_overrides_it() -> None:
    assert Settings.from_sources(cli={"duration": "3"}, ini={"duration": "abc"}).duration == 3.0


@pytest.mark.parametrize(
    ("cli", "ini"),
    [
        ({"skip": True, "only": True}, {}),
        ({}, {"skip": "true", "only": True}),
        ({"only": True}, {"skip": "on"}),
    ],
)
def test_skip_and_only_together_are_refused(cli: dict[str, object], ini: dict[str, Any]) -> None:
    with pytest.raises(SettingsError) as excinfo:
        Settings.from_sources(cli, ini)
    assert error_text(excinfo) == (
        "--npf-skip: cannot be combined with --npf-only (one skips the performance tests, the other runs only them)"
    )


def test_unknown_fields_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="command line values for unknown settings nope"):
        Settings.from_sources({"nope": 1}, {})
    with pytest.raises(ValueError, match="ini values for unknown settings nada"):
        Settings.from_sources({}, {"nada": "1"})


def test_direct_construction_is_validated() -> None:
    with pytest.raises(SettingsError, match=r"^--npf-rounds: expected at least 1 round, got 0$"):
        Settings(rounds=0)
    with pytest.raises(SettingsError, match=r"^--npf-max-rounds: "):
        Settings(max_rounds=0)
    with pytest.raises(SettingsError, match=r"^--npf-fingerprint-keys: unknown environment fields gpu$"):
        Settings(fingerprint_keys=("gpu",))


@given(
    st.dictionaries(st.sampled_from([o.field for o in OPTIONS]), st.one_of(st.none(), TEXT, st.booleans())),
    st.dictionaries(st.sampled_from([o.field for o in OPTIONS]), st.one_of(st.none(), TEXT, st.booleans())),
)
def test_from_sources_raises_only_settings_error(cli: dict[str, Any], ini: dict[str, Any]) -> None:
    try:
        s = Settings.from_sources(cli, ini)
    except SettingsError:
        return
    assert isinstance(s, Settings)


# --- the option table ---------------------------------------------------------------------------

SAMPLE_TEXT = {
    "duration": "10s",
    "baseline_dir": "perf/baselines",
    "tolerance": "5%",
    "device": "cpu",
    "n_models": "1,max",
    "workers": "1,2",
    "json_path": "r.json",
    "csv_path": "r.csv",
    "md_path": "r.md",
    "html_path": "r.html",
    "verbosity": "2",
    "rounds": "5",
    "max_rounds": "6",
    "against": "origin/main",
    "timeout": "10m",
    "fingerprint_keys": "device_type",
    "preload": "transformers,off",
}


def test_every_settings_field_is_exactly_one_option() -> None:
    fields = [f.name for f in dataclasses.fields(Settings)]
    option_fields = [o.field for o in OPTIONS]
    assert sorted(option_fields) == sorted(fields)
    assert len(set(option_fields)) == len(option_fields)


def test_flags_ini_keys_and_dests_are_unique_and_derived() -> None:
    names: list[str] = []
    for option in OPTIONS:
        assert option.flag.startswith("--npf-")
        assert option.ini == option.dest == option.flag[2:].replace("-", "_")
        assert option.ini.startswith("npf_")
        assert option.help and option.help[0].islower() and not option.help.endswith(".")
        names.append(option.flag)
        if option.negative_flag:
            assert option.is_flag and option.negative_help
            names.append(option.negative_flag)
    assert len(set(names)) == len(names)
    assert len({o.ini for o in OPTIONS}) == len(OPTIONS)
    assert [(o.flag, o.negative_flag) for o in OPTIONS if o.negative_flag] == [("--npf-compare", "--npf-no-compare")]


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.flag)
def test_each_option_parses_to_its_fields_type(option: Option) -> None:
    default = getattr(Settings(), option.field)
    parse = PARSERS[option.field]
    if option.is_flag:
        assert isinstance(default, bool)
        assert option.metavar is None
        assert parse("true", option.flag) is True
        assert convert(option, True, option.flag) is True
        return
    assert option.metavar
    value = parse(SAMPLE_TEXT[option.field], option.flag)
    resolved = Settings.from_sources({option.field: SAMPLE_TEXT[option.field]}, {})
    assert getattr(resolved, option.field) == value
    if default is not None:
        assert type(value) is type(default)


def test_help_with_default() -> None:
    by_field = {o.field: o for o in OPTIONS}
    assert by_field["rounds"].help_with_default.endswith("(default: 3)")
    assert by_field["tolerance"].help_with_default.endswith("(default: 5%)")
    assert by_field["baseline_dir"].help_with_default.endswith("(default: .neuronperf/baselines)")
    assert by_field["fingerprint_keys"].help_with_default.endswith(
        "(default: device_type,instance_type,cpu_model,cpu_count,torch,torch_neuronx,neuronx_cc,neuron_runtime,"
        "neuron_driver,gpu_name,cuda_driver,cuda_runtime)"
    )
    assert by_field["duration"].help_with_default == by_field["duration"].help
    assert by_field["strict"].help_with_default == by_field["strict"].help


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.shown_default is not None], ids=lambda o: o.flag)
def test_the_default_shown_in_help_is_the_settings_default(option: Option) -> None:
    assert option.shown_default is not None
    assert PARSERS[option.field](option.shown_default, option.flag) == getattr(Settings(), option.field)


def test_every_default_worth_showing_is_shown() -> None:
    # Fields whose default is a real value (not None, not a flag's False) say so in --help.
    defaults = Settings()
    for option in OPTIONS:
        default = getattr(defaults, option.field)
        assert (option.shown_default is not None) == (default is not None and not isinstance(default, bool)), option


def test_importing_settings_is_light() -> None:
    root = Path(settings_module.__file__).resolve().parents[1]
    code = (
        "import sys, json; import pytest_neuronperf.config.settings; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'numpy', 'pytest', '_pytest', 'torch_neuronx'))))"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
