"""The exact Bayes-optimal Bernoulli bandit: values by hand, the (5, 10) benchmark value, size limits."""

import time

import pytest

from metarl_apps.baselines import bandit_values
from metarl_apps.baselines.bandit_values import bayes_optimal_value, count_bayes_states, solve_bayes_bandit
from metarl_apps.core.errors import MetaRLInputError


def test_one_pull_is_the_prior_mean():
    assert bayes_optimal_value(2, 1) == pytest.approx(0.5, abs=1e-12)
    assert bayes_optimal_value(3, 1, alpha=2.0, beta=1.0) == pytest.approx(2 / 3, abs=1e-12)
    assert bayes_optimal_value(2, 0) == 0.0


def test_two_arms_two_pulls_by_hand():
    # First pull: 1/2. After a success stay (posterior mean 2/3); after a failure switch (fresh arm: 1/2).
    assert bayes_optimal_value(2, 2) == pytest.approx(1 / 2 + 1 / 2 * 2 / 3 + 1 / 2 * 1 / 2, abs=1e-12)
    assert bayes_optimal_value(2, 2) == pytest.approx(13 / 12, abs=1e-12)


def test_optimal_choices_of_the_two_by_two_problem():
    sol = solve_bayes_bandit(2, 2)
    choice = {tuple(map(tuple, s)): sol.optimal_pairs(i) for i, s in enumerate(sol.states.tolist())}
    assert choice[((0, 0), (0, 0))] == {(0, 0)}
    assert choice[((0, 0), (1, 0))] == {(1, 0)}  # stay on the arm that paid
    assert choice[((0, 0), (0, 1))] == {(0, 0)}  # leave the arm that failed


def test_five_arms_ten_pulls_benchmark_value():
    start = time.perf_counter()
    solve_bayes_bandit.cache_clear()
    value = bayes_optimal_value(5, 10)
    elapsed = time.perf_counter() - start
    print(f"bayes_optimal_value(5, 10) = {value!r} in {elapsed:.3f}s")
    assert round(value, 2) == 6.66
    assert value == pytest.approx(6.659987874779542, abs=1e-9)
    assert elapsed < 30.0


def test_ten_arms_ten_pulls_is_cheap_too():
    start = time.perf_counter()
    value = bayes_optimal_value(10, 10)
    print(f"bayes_optimal_value(10, 10) = {value!r} in {time.perf_counter() - start:.3f}s")
    assert bayes_optimal_value(5, 10) < value < 10 * 10 / 11  # more arms help; the oracle gets E[max] = 10/11
    assert time.perf_counter() - start < 30.0


def test_state_count_matches_the_enumeration():
    for arms, pulls in ((2, 2), (3, 4), (5, 10), (10, 10)):
        assert count_bayes_states(arms, pulls) == len(solve_bayes_bandit(arms, pulls).states)
    assert count_bayes_states(5, 10) == 1951 and count_bayes_states(10, 10) == 2296


def test_too_large_problems_are_refused_with_the_supported_sizes():
    assert count_bayes_states(5, 100) > 10**11
    message = r"arms=5, pulls=100 has 362,657,193,216 belief states.*5: <=20; any arms: <=18"
    with pytest.raises(MetaRLInputError, match=message):
        bayes_optimal_value(5, 100)
    assert count_bayes_states(5, 20) <= bandit_values.MAX_BAYES_STATES < count_bayes_states(5, 21)


@pytest.mark.parametrize("kwargs, field", [
    ({"arms": 0, "pulls": 3}, "arms=0"),
    ({"arms": 2, "pulls": -1}, "pulls=-1"),
    ({"arms": 2.5, "pulls": 3}, "arms=2.5"),
    ({"arms": 2, "pulls": 3, "alpha": 0.0}, "alpha=0.0"),
    ({"arms": 2, "pulls": 3, "beta": "one"}, "beta='one'"),
])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(MetaRLInputError, match=field):
        bayes_optimal_value(**kwargs)
