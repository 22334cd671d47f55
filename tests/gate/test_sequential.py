"""The sequential schedule: which looks a configuration gets, and how alpha and beta are spent over them."""

from __future__ import annotations

import pytest

from pytest_neuronperf.gate.sequential import ALPHA, BETA, Looks

# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"first": 0, "last": 3}, "Looks.first must be at least 1, got 0"),
    ({"first": -2, "last": 3}, "Looks.first must be at least 1, got -2"),
    ({"first": 4, "last": 3}, r"Looks.last \(3\) must be at least Looks.first \(4\)"),
    ({"first": 3, "last": 10, "alpha": 0.0}, r"alpha and beta must be in \(0, 0.5\), got 0.0 and 0.025"),
    ({"first": 3, "last": 10, "alpha": 0.5}, r"alpha and beta must be in \(0, 0.5\), got 0.5 and 0.025"),
    ({"first": 3, "last": 10, "beta": -0.1}, r"alpha and beta must be in \(0, 0.5\), got 0.01 and -0.1"),
    ({"first": 3, "last": 10, "beta": 0.6}, r"alpha and beta must be in \(0, 0.5\), got 0.01 and 0.6"),
])
def test_invalid_looks_are_refused_with_the_reason(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Looks(**kwargs)  # type: ignore[arg-type]


def test_defaults_are_one_look_at_three_rounds() -> None:
    looks = Looks()
    assert (looks.first, looks.last, looks.alpha, looks.beta) == (3, 3, ALPHA, BETA)
    assert (ALPHA, BETA) == (0.01, 0.025)
    assert not looks.sequential
    assert looks.describe() == "one look at 3 round(s)"


def test_valid_edge_values_are_accepted() -> None:
    assert Looks(first=1, last=1).alpha_at(1) == ALPHA
    assert Looks(first=2, last=5, alpha=0.49, beta=1e-6).beta_at(5) == pytest.approx(1e-6 / 5)


# ---------------------------------------------------------------- spending


@pytest.mark.parametrize(("first", "last"), [(1, 2), (2, 5), (3, 10), (3, 4), (5, 30), (1, 50)])
@pytest.mark.parametrize(("alpha", "beta"), [(ALPHA, BETA), (0.05, 0.1), (0.001, 0.2)])
def test_error_rates_over_all_looks_add_up_to_alpha_and_beta(first: int, last: int, alpha: float,
                                                             beta: float) -> None:
    looks = Looks(first=first, last=last, alpha=alpha, beta=beta)
    assert looks.sequential
    ns = range(first, last + 1)
    assert sum(looks.alpha_at(n) for n in ns) == pytest.approx(alpha, rel=1e-12)
    assert sum(looks.beta_at(n) for n in ns) == pytest.approx(beta, rel=1e-12)
    assert all(looks.alpha_at(n) > 0 and looks.beta_at(n) > 0 for n in ns)


def test_spending_is_linear_in_rounds() -> None:
    looks = Looks(first=3, last=10)
    # The first look holds 3 of at most 10 rounds, so it spends 3/10; each later look adds one round, 1/10.
    assert looks.alpha_at(3) == pytest.approx(ALPHA * 3 / 10)
    assert looks.beta_at(3) == pytest.approx(BETA * 3 / 10)
    for n in range(4, 11):
        assert looks.alpha_at(n) == pytest.approx(ALPHA / 10)
        assert looks.beta_at(n) == pytest.approx(BETA / 10)
    # Outside first..last a look is treated as the nearest one: never more than the schedule holds.
    assert looks.alpha_at(1) == looks.alpha_at(3)
    assert looks.alpha_at(12) == looks.alpha_at(10)


@pytest.mark.parametrize("rounds", [1, 3, 7])
def test_a_single_look_spends_all_of_alpha_and_beta(rounds: int) -> None:
    looks = Looks(first=rounds, last=rounds, alpha=0.02, beta=0.04)
    assert not looks.sequential
    assert looks.alpha_at(rounds) == 0.02
    assert looks.beta_at(rounds) == 0.04
    # Whatever round count the judge passes, a one-look schedule never splits its error rates.
    assert looks.alpha_at(rounds + 5) == 0.02
    assert not looks.more_allowed(rounds)


def test_more_allowed_until_the_last_look() -> None:
    looks = Looks(first=3, last=6)
    assert [looks.more_allowed(n) for n in range(1, 9)] == [True, True, True, True, True, False, False, False]


def test_describe_names_the_schedule() -> None:
    text = Looks(first=3, last=10).describe()
    assert "3..10 rounds" in text
    assert "alpha 0.01" in text and "beta 0.025" in text
    assert "union bound" in text
