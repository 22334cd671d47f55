"""Between-session variance: exact small cases, and seeded simulations of the random-effects model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from pytest_neuronperf.stats.sessions import SessionVariance, between_session_variance, session_groups

TRIALS = 200
ROUND_SD = 0.04  # round-to-round noise of the log values within a session (4%)
EQUAL = (3,) * 10  # ten sessions of three rounds
UNEQUAL = (1, 2, 3, 4, 6, 2, 3, 5, 1, 3)  # ten sessions of mixed sizes, two of a single round


def simulated(session_sd: float, sizes: Sequence[int], seed: int) -> np.ndarray:
    """tau2 estimates of TRIALS baselines: per-round log values = session offset + round noise."""
    rng = np.random.default_rng(seed)
    return np.array([
        between_session_variance([rng.normal(rng.normal(0.0, session_sd), ROUND_SD, n) for n in sizes]).tau2
        for _ in range(TRIALS)
    ])


# --- exact cases ----------------------------------------------------------------------------------


def test_fewer_than_two_groups_show_no_between_session_spread() -> None:
    assert between_session_variance([]) == SessionVariance(tau2=0.0, df=0.0, sessions=0)
    assert between_session_variance([[0.1, 0.3, 0.2]]) == SessionVariance(tau2=0.0, df=0.0, sessions=1)


def test_unequal_sizes_subtract_the_pooled_within_variance_times_the_mean_of_1_over_n() -> None:
    # Means 1, 5, 2: their variance is 39/9. Within: (2 + 2) / (1 + 2) = 4/3 from the groups of
    # two and three (the single value shows none); mean(1/n) = (1/2 + 1 + 1/3) / 3 = 11/18.
    found = between_session_variance([[0.0, 2.0], [5.0], [1.0, 2.0, 3.0]])
    assert found.tau2 == pytest.approx(39 / 9 - 4 / 3 * 11 / 18)
    assert (found.df, found.sessions) == (2.0, 3)


def test_single_value_groups_count_all_spread_of_the_means_as_between_sessions() -> None:
    found = between_session_variance([[1.0], [2.0], [4.0]])
    assert found.tau2 == pytest.approx(7 / 3)  # the sample variance of 1, 2, 4: nothing to subtract
    assert (found.df, found.sessions) == (2.0, 3)


def test_offsets_smaller_than_the_noise_explains_are_floored_at_zero() -> None:
    found = between_session_variance([[-1.0, 1.0], [-1.1, 1.0], [-0.9, 1.0]])
    assert found == SessionVariance(tau2=0.0, df=2.0, sessions=3)


def test_identical_sessions_give_zero() -> None:
    assert between_session_variance([[0.5, 0.5], [0.5]]).tau2 == 0.0


# --- seeded simulations ---------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [EQUAL, UNEQUAL], ids=["equal", "unequal"])
def test_no_session_offsets_estimate_little(sizes: Sequence[int]) -> None:
    estimates = simulated(0.0, sizes, seed=1)
    # The truth is 0; the floor at 0 makes the mean positive (about 0.1 of the round variance in
    # these runs). A quarter of the round variance (a session sd of half the round noise) is the
    # bound: not subtracting the within part would give a third of it (the variance of a 3-round mean).
    assert estimates.mean() < 0.25 * ROUND_SD**2
    assert (estimates == 0.0).mean() > 0.4  # about half of the unbiased estimates fall below 0


@pytest.mark.parametrize("sizes", [EQUAL, UNEQUAL], ids=["equal", "unequal"])
def test_known_session_offsets_are_recovered(sizes: Sequence[int]) -> None:
    truth = 0.03**2
    estimates = simulated(0.03, sizes, seed=2)
    # Tolerance 20% of the truth: the mean of 200 estimates has a Monte Carlo standard error of
    # about 5-6% of it (seeds 0-7 gave 0.91-1.12), and the floor adds ~2%. A wrong weighting would
    # be far off: leaving out the within part overstates by ~60%, using mean(n) for mean(1/n) more.
    assert estimates.mean() == pytest.approx(truth, rel=0.20)
    assert np.all(estimates >= 0.0)


def test_the_estimate_does_not_depend_on_the_order_of_groups_or_of_values() -> None:
    rng = np.random.default_rng(3)
    groups = [list(rng.normal(rng.normal(0.0, 0.03), ROUND_SD, n)) for n in UNEQUAL]
    reordered = [list(reversed(g)) for g in reversed(groups)]
    assert between_session_variance(reordered).tau2 == pytest.approx(between_session_variance(groups).tau2)


# --- grouping -------------------------------------------------------------------------------------


def test_session_groups_in_order_of_first_appearance_with_untagged_rounds_as_one() -> None:
    groups = session_groups([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], ["b", None, "a", "b", None, "a"])
    assert [g.tolist() for g in groups] == [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
    assert all(g.dtype == np.float64 for g in groups)
    assert session_groups([], []) == []


def test_session_groups_feed_the_estimate() -> None:
    values = np.log([100.0, 101.0, 99.0, 110.0, 111.0, 109.0])
    found = between_session_variance(session_groups(list(values), ["s1"] * 3 + ["s2"] * 3))
    assert found.sessions == 2 and found.df == 1.0
    assert math.sqrt(found.tau2) == pytest.approx(0.067, abs=0.002)  # sessions ~10% apart in level


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"session group 1 holds a non-finite value .* must be finite"):
        between_session_variance([[0.1, 0.2], [0.3, bad]])
    with pytest.raises(ValueError, match=r"value 2 is .* must be finite"):
        session_groups([0.1, 0.2, bad], ["a", "a", "b"])


def test_malformed_groups_are_refused() -> None:
    with pytest.raises(ValueError, match="session group 1 must be a non-empty list of numbers"):
        between_session_variance([[0.1], []])
    with pytest.raises(ValueError, match="session group 0 must be a non-empty list of numbers"):
        between_session_variance([[[0.1, 0.2]], [0.3]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="session group 0 must be a list of numbers"):
        between_session_variance([["fast"], [0.3]])  # type: ignore[list-item]


def test_session_labels_must_match_the_values() -> None:
    with pytest.raises(ValueError, match="3 values but 2 session labels"):
        session_groups([0.1, 0.2, 0.3], ["a", "b"])
    with pytest.raises(ValueError, match="session label 1 must be a string or None, got int"):
        session_groups([0.1, 0.2], ["a", 7])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="value 0 must be a number"):
        session_groups(["slow"], ["a"])  # type: ignore[list-item]
