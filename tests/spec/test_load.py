"""Open-loop load: its keywords, the seeded arrival timeline and how it is dealt to the copies."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from pytest_neuronperf.spec.load import OpenLoad, arrival_offsets_ns, cap_of_copy, open_load, share_of_copy

# Long enough for a rate to be estimated within a few percent: about 100 000 arrivals.
LONG_S = 100.0
RATE = 1000.0


def gaps_s(offsets: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    diffs: npt.NDArray[np.float64] = np.diff(offsets).astype(np.float64) / 1e9
    return diffs


def cv(values: npt.NDArray[np.float64]) -> float:
    return float(values.std() / values.mean())


# -- the keywords -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0, -5, 0.0, math.nan, math.inf, True, False, "100", [100]])
def test_a_request_rate_that_is_no_positive_number_is_refused_by_name(rate: object) -> None:
    with pytest.raises(ValueError, match=r"^request_rate: "):
        open_load(rate)


@pytest.mark.parametrize("arrival", ["uniform", "", 3, "poison"])
def test_an_unknown_arrival_process_is_refused_with_the_known_ones(arrival: object) -> None:
    with pytest.raises(ValueError, match=r"^arrival: expected one of 'poisson', 'gamma', 'constant'"):
        open_load(100, arrival)


def test_arrival_names_are_read_in_any_case_and_none_is_poisson() -> None:
    assert open_load(100, "Constant") == OpenLoad(100.0, "constant")
    assert open_load(100, None) == OpenLoad(100.0, "poisson")


@pytest.mark.parametrize("arrival", ["poisson", "constant"])
def test_burstiness_belongs_to_gamma_arrivals_only(arrival: str) -> None:
    with pytest.raises(ValueError, match=r"^burstiness: applies to arrival='gamma' only"):
        open_load(100, arrival, burstiness=0.5)


@pytest.mark.parametrize("burstiness", [0, -1.0, math.nan, True, "0.5"])
def test_a_burstiness_that_is_no_positive_number_is_refused_by_name(burstiness: object) -> None:
    with pytest.raises(ValueError, match=r"^burstiness: "):
        open_load(100, "gamma", burstiness=burstiness)


def test_gamma_without_burstiness_is_poisson_shaped() -> None:
    load = open_load(100, "gamma")
    assert load is not None and load.burstiness == 1.0


@pytest.mark.parametrize("cap", [0, -1, 1.5, True, "4"])
def test_a_max_concurrency_that_is_no_whole_number_of_at_least_one_is_refused_by_name(cap: object) -> None:
    with pytest.raises(ValueError, match=r"^max_concurrency: expected a whole number >= 1"):
        open_load(100, max_concurrency=cap)


@pytest.mark.parametrize("seed", [-1, 1.0, True, "0", None])
def test_a_seed_that_is_no_whole_number_of_at_least_zero_is_refused_by_name(seed: object) -> None:
    with pytest.raises(ValueError, match=r"^seed: expected a whole number >= 0"):
        open_load(100, seed=seed)


@pytest.mark.parametrize(("keyword", "value"), [("arrival", "gamma"), ("arrival", "constant"),
                                                ("burstiness", 0.5), ("max_concurrency", 4)])
def test_open_loop_keywords_without_a_request_rate_are_refused_by_name(keyword: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{keyword}: applies to open-loop load only; give request_rate"):
        open_load(None, **{keyword: value})


def test_without_a_request_rate_the_load_is_closed_loop() -> None:
    assert open_load(None) is None
    assert open_load(None, "poisson", None, None, 7) is None


def test_a_valid_load_keeps_what_it_was_given() -> None:
    assert open_load(250, "gamma", 0.5, 8, 3) == OpenLoad(250.0, "gamma", 0.5, 8, 3)
    assert OpenLoad(250.0, "gamma", 0.5, 8, 3).with_rate(100) == OpenLoad(100, "gamma", 0.5, 8, 3)


# -- the arrival timeline -----------------------------------------------------------------------------


@pytest.mark.parametrize("load", [OpenLoad(RATE), OpenLoad(RATE, "gamma", 0.25), OpenLoad(RATE, "constant")])
def test_arrivals_are_sorted_and_inside_the_window(load: OpenLoad) -> None:
    offsets = arrival_offsets_ns(load, 2.0)
    assert offsets.dtype == np.int64 and offsets.size > 0
    assert np.all(np.diff(offsets) >= 0)
    assert offsets[0] >= 0 and offsets[-1] < 2_000_000_000


@pytest.mark.parametrize("load", [OpenLoad(RATE, seed=5), OpenLoad(RATE, "gamma", 0.5, seed=5)])
def test_the_same_seed_and_round_replay_the_same_arrivals_and_other_rounds_differ(load: OpenLoad) -> None:
    first = arrival_offsets_ns(load, 1.0, round_index=2)
    np.testing.assert_array_equal(first, arrival_offsets_ns(load, 1.0, round_index=2))
    assert not np.array_equal(first, arrival_offsets_ns(load, 1.0, round_index=3))
    other_seed = OpenLoad(load.request_rate, load.arrival, load.burstiness, seed=6)
    assert not np.array_equal(first, arrival_offsets_ns(other_seed, 1.0, round_index=2))


def test_a_longer_window_extends_the_same_timeline() -> None:
    short, long = arrival_offsets_ns(OpenLoad(RATE), 1.0), arrival_offsets_ns(OpenLoad(RATE), 2.0)
    np.testing.assert_array_equal(short, long[: short.size])


@pytest.mark.parametrize("load", [OpenLoad(RATE), OpenLoad(RATE, "gamma", 0.25), OpenLoad(RATE, "gamma", 4.0),
                                  OpenLoad(RATE, "constant")])
def test_the_mean_rate_of_a_long_window_is_the_request_rate(load: OpenLoad) -> None:
    # The count's standard deviation is at most 2 sqrt(n) (gamma of shape 1/4): 0.6% of 100 000.
    offsets = arrival_offsets_ns(load, LONG_S)
    assert offsets.size / LONG_S == pytest.approx(RATE, rel=0.03)


def test_constant_arrivals_are_evenly_spaced_from_the_window_opening() -> None:
    offsets = arrival_offsets_ns(OpenLoad(400.0, "constant"), 1.0)
    assert offsets.size == 400 and offsets[0] == 0
    # Whole nanoseconds: each gap is 2.5 ms to within the truncation of one.
    assert np.all(np.abs(np.diff(offsets) - 2_500_000) <= 1)


def test_poisson_gaps_vary_as_much_as_their_mean() -> None:
    assert cv(gaps_s(arrival_offsets_ns(OpenLoad(RATE), LONG_S))) == pytest.approx(1.0, abs=0.05)


def test_gamma_burstiness_below_one_is_burstier_than_poisson_and_above_one_evener() -> None:
    # A gamma of shape k has a coefficient of variation of 1 / sqrt(k).
    bursty = cv(gaps_s(arrival_offsets_ns(OpenLoad(RATE, "gamma", 0.25), LONG_S)))
    even = cv(gaps_s(arrival_offsets_ns(OpenLoad(RATE, "gamma", 4.0), LONG_S)))
    assert bursty > 1.0 and bursty == pytest.approx(2.0, rel=0.1)
    assert even < 1.0 and even == pytest.approx(0.5, rel=0.1)


def test_the_mean_gap_is_one_over_the_rate() -> None:
    for load in (OpenLoad(RATE), OpenLoad(RATE, "gamma", 0.25), OpenLoad(RATE, "gamma", 4.0)):
        assert float(gaps_s(arrival_offsets_ns(load, LONG_S)).mean()) == pytest.approx(1 / RATE, rel=0.03)


def test_a_rate_far_below_one_per_window_may_offer_nothing() -> None:
    offsets = arrival_offsets_ns(OpenLoad(0.001), 0.5)
    assert offsets.size <= 1 and offsets.dtype == np.int64


# -- dealing to the copies ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_copies", [1, 2, 3, 7])
def test_copies_are_dealt_requests_in_turn_and_the_shares_make_up_the_whole(n_copies: int) -> None:
    offsets = arrival_offsets_ns(OpenLoad(RATE), 1.0)
    shares = [share_of_copy(offsets, i, n_copies) for i in range(n_copies)]
    assert sum(s.size for s in shares) == offsets.size
    np.testing.assert_array_equal(np.sort(np.concatenate(shares)), offsets)
    assert max(s.size for s in shares) - min(s.size for s in shares) <= 1
    for i, share in enumerate(shares):
        np.testing.assert_array_equal(share, offsets[i::n_copies])


@pytest.mark.parametrize(("cap", "n_copies"), [(1, 1), (4, 2), (5, 2), (7, 3), (64, 5)])
def test_the_concurrency_cap_is_shared_out_and_its_parts_add_up_to_it(cap: int, n_copies: int) -> None:
    parts = [cap_of_copy(cap, i, n_copies) for i in range(n_copies)]
    assert sum(p for p in parts if p is not None) == cap
    assert max(p for p in parts if p is not None) - min(p for p in parts if p is not None) <= 1


def test_every_copy_gets_room_for_one_request_even_when_the_cap_is_smaller_than_the_copies() -> None:
    assert [cap_of_copy(2, i, 4) for i in range(4)] == [1, 1, 1, 1]


def test_no_cap_stays_no_cap_for_every_copy() -> None:
    assert [cap_of_copy(None, i, 3) for i in range(3)] == [None, None, None]
