"""The latency objective (slo): its text form, what it refuses, and what breaks it."""

from __future__ import annotations

import math

import pytest

from pytest_neuronperf.spec.slo import Constraint, Slo, parse_slo

FORM = 'slo="p99<=20ms", slo="p50<=5ms,p99<=20ms" or slo="ttft<=200ms,tpot<=50ms"'


def only(slo: Slo | None) -> Constraint:
    assert slo is not None and len(slo.constraints) == 1
    return slo.constraints[0]


@pytest.mark.parametrize(("text", "percentile", "max_ms"), [
    ("p99<=20ms", 99.0, 20.0),
    ("p99.9<=1s", 99.9, 1000.0),
    ("p90<=500us", 90.0, 0.5),
    ("p99.99<=2.5ms", 99.99, 2.5),
    ("p50<=.5ms", 50.0, 0.5),
    ("  P99 <= 20 MS ", 99.0, 20.0),
])
def test_one_constraint_reads_as_a_percentile_and_a_bound_in_ms(text: str, percentile: float, max_ms: float) -> None:
    c = only(parse_slo(text))
    assert c.percentile == percentile and c.max_ms == pytest.approx(max_ms)


def test_several_constraints_are_kept_in_percentile_order() -> None:
    slo = parse_slo("p99<=20ms, p50<=5ms")
    assert slo is not None
    assert slo.constraints == (Constraint(50.0, 5.0), Constraint(99.0, 20.0))
    assert slo.text() == "p50<=5ms,p99<=20ms"
    assert slo.highest_percentile == 99.0 and [c.percentile for c in slo.constraints] == [50.0, 99.0]


def test_the_text_is_in_ms_whatever_unit_was_given_and_reads_back_the_same() -> None:
    slo = parse_slo("p50<=500us,p99.9<=1s")
    assert slo is not None and slo.text() == "p50<=0.5ms,p99.9<=1000ms"
    assert parse_slo(slo.text()) == slo


def test_no_slo_stays_none_and_a_parsed_one_passes_through() -> None:
    assert parse_slo(None) is None
    slo = parse_slo("p99<=20ms")
    assert parse_slo(slo) is slo


@pytest.mark.parametrize("text", ["p99<20", "p99<=20", "99<=20ms", "p99<20ms", "p99=20ms", "p99<=20 sec",
                                  "p99<=-1ms", "p99<=20ms,", "p99<=20ms;p50<=5ms", "p99 <= ms", "pmax<=1ms"])
def test_text_not_of_the_form_is_refused_naming_slo_and_showing_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"^slo: cannot read ") as info:
        parse_slo(text)
    assert FORM in str(info.value)


@pytest.mark.parametrize("value", ["", "   ", 20, 0.99, ["p99<=20ms"]])
def test_anything_but_text_is_refused_naming_slo_and_showing_the_form(value: object) -> None:
    with pytest.raises(ValueError, match=r'^slo: expected text such as "p99<=20ms"') as info:
        parse_slo(value)
    assert FORM in str(info.value)


@pytest.mark.parametrize("text", ["p0<=1ms", "p0.0<=1ms", "p101<=1ms", "p100.5<=1ms"])
def test_a_percentile_outside_0_to_100_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^slo: percentile p[\d.]+ in .* is not in \(0, 100\)") as info:
        parse_slo(text)
    assert FORM in str(info.value)


@pytest.mark.parametrize("text", ["p100<=1ms", "p100.0<=1ms"])
def test_the_maximum_is_refused_with_a_percentile_to_use_instead(text: str) -> None:
    # No sample minimum can state a maximum: a search could never give its steps enough samples.
    with pytest.raises(ValueError, match=r"^slo: p[\d.]+ in .* is the maximum.*such as p99\.9") as info:
        parse_slo(text)
    assert FORM in str(info.value)


@pytest.mark.parametrize("text", ["p99<=0ms", "p99<=0s", "p50<=5ms,p99<=0.0us"])
def test_a_bound_of_zero_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^slo: .* bounds the latency at 0; give a time > 0"):
        parse_slo(text)


@pytest.mark.parametrize("text", ["p99<=20ms,p99<=30ms", "p99<=20ms,p99.0<=1s"])
def test_the_same_percentile_twice_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^slo: .* bounds the same percentile twice"):
        parse_slo(text)


def test_the_name_in_the_message_is_the_callers() -> None:
    with pytest.raises(ValueError, match=r"^--npf-slo: cannot read"):
        parse_slo("p99<20", name="--npf-slo")


# -- violations ---------------------------------------------------------------------------------------

SLO = parse_slo("p50<=5ms,p99<=20ms")


def latencies(p50: float, p99: float) -> dict[float, float]:
    return {50.0: p50, 99.0: p99}


def test_latencies_within_every_bound_meet_it_and_a_bound_itself_is_met() -> None:
    assert SLO is not None
    assert SLO.violations(latencies(1.0, 10.0).__getitem__) == []
    assert SLO.violations(latencies(5.0, 20.0).__getitem__) == []


def test_each_broken_bound_is_one_violation_naming_its_percentile_value_and_bound() -> None:
    assert SLO is not None
    assert SLO.violations(latencies(1.0, 25.0).__getitem__) == ["p99 25 ms > 20 ms"]
    assert SLO.violations(latencies(6.0, 25.0).__getitem__) == ["p50 6 ms > 5 ms", "p99 25 ms > 20 ms"]


def test_nothing_measured_meets_nothing() -> None:
    assert SLO is not None
    broken = SLO.violations(lambda q: math.nan)
    assert len(broken) == 2 and all("nan ms" in v for v in broken)


def test_violations_ask_for_exactly_the_bounded_percentiles() -> None:
    asked: list[float] = []

    def percentile_ms(q: float) -> float:
        asked.append(q)
        return 0.5

    slo = parse_slo("p90<=1ms,p99.9<=3ms")
    assert slo is not None and slo.violations(percentile_ms) == []
    assert asked == [90.0, 99.9]


def test_a_constraint_is_labelled_by_its_percentile() -> None:
    assert Constraint(99.9, 3.0).label == "p99.9" and Constraint(50.0, 0.5).text() == "p50<=0.5ms"


def test_per_request_bounds_are_read_beside_percentiles() -> None:
    slo = parse_slo("ttft<=200ms, tpot<=0.05s,p99<=1s, e2e<=900ms")
    assert slo is not None
    assert [(c.percentile, c.max_ms) for c in slo.constraints] == [(99.0, 1000.0)]
    assert [(r.metric, r.max_ms) for r in slo.request_limits] == [("ttft", 200.0), ("tpot", 50.0), ("e2e", 900.0)]
    assert slo.text() == "p99<=1000ms,ttft<=200ms,tpot<=50ms,e2e<=900ms"
    assert parse_slo(slo.text()) == slo


@pytest.mark.parametrize(("text", "match"), [
    ("ttft<=1ms,ttft<=2ms", "bounds ttft twice"),
    ("tpot<=0ms", "bounds the latency at 0"),
    ("itl<=5ms", "cannot read 'itl<=5ms'"),
])
def test_bad_per_request_bounds_are_refused(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_slo(text)
