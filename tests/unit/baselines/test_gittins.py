"""The finite-horizon Gittins index: hand-derived indices, its structure, the exact value of the index policy
against the Bayes-optimal DP, and the in-graph policy against both."""

import functools

import numpy as np
import pytest

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.baselines import bandit_values as V
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import BASELINES
from tests.unit.baselines.helpers import FIRST, MID, bandit_step, mean_ci, totals


def reachable(n):
    return [(r, s, f) for r in range(1, n + 1) for s in range(n + 1) for f in range(n + 1) if s + f <= n - r]


@pytest.mark.parametrize("alpha, beta", [(1.0, 1.0), (2.0, 3.0), (0.5, 0.5)])
def test_one_and_two_pulls_left_match_the_hand_derived_indices(alpha, beta):
    n = 8
    table = V.gittins_index_table(n, alpha, beta)
    for s in range(n):
        for f in range(n - s):
            p = (s + alpha) / (s + f + alpha + beta)
            assert table[1, s, f] == pytest.approx(p, abs=1e-9)  # last pull: the posterior mean
            if s + f <= n - 2:
                # 2 lam = p + p max(lam, p1) + (1 - p) max(lam, p0), with p0 <= lam <= p1
                p1 = (s + 1 + alpha) / (s + f + 1 + alpha + beta)
                assert table[2, s, f] == pytest.approx(p * (1 + p1) / (1 + p), abs=1e-5)


@pytest.mark.parametrize("discount", [0.9, 0.5])
def test_discounted_index_matches_the_hand_derived_two_pull_index(discount):
    n, g = 8, discount
    table = V.gittins_index_table(n, discount=g)
    for s in range(n - 1):
        for f in range(n - 1 - s):
            p, p1 = (s + 1) / (s + f + 2), (s + 2) / (s + f + 3)
            assert table[1, s, f] == pytest.approx(p, abs=1e-9)
            # lam (1 + g) = p (1 + g max(lam, p1)) + (1 - p) g max(lam, p0), with p0 <= lam <= p1
            assert table[2, s, f] == pytest.approx(p * (1 + g * p1) / (1 + g * p), abs=1e-5)
    # a lower discount values information less: the index is smaller (never below the posterior mean)
    undiscounted = V.gittins_index_table(n)
    for r, s, f in reachable(n):
        assert (s + 1) / (s + f + 2) - 1e-9 <= table[r, s, f] <= undiscounted[r, s, f] + 1e-6
    # discount 0 is the myopic policy: the index is the posterior mean however many pulls are left
    myopic = V.gittins_index_table(n, discount=0.0)
    for r, s, f in reachable(n):
        assert myopic[r, s, f] == pytest.approx((s + 1) / (s + f + 2), abs=1e-3)


def test_discounted_baseline_acts_on_its_own_table():
    dist = BernoulliBandits(arms=2, pulls=12)
    # the config reaches the policy's table, and the tables of two discounts differ
    for discount in (1.0, 0.3):
        policy = BASELINES.create("gittins", discount=discount).make_policy(dist, dist.sample(1, "test"))
        np.testing.assert_allclose(policy._table.numpy(), V.gittins_index_table(12, discount=discount))
    assert not np.allclose(V.gittins_index_table(12, discount=0.3), V.gittins_index_table(12))


def test_index_exceeds_the_posterior_mean_and_grows_with_the_horizon():
    n = 20
    table = V.gittins_index_table(n)
    for r, s, f in reachable(n):
        p = (s + 1) / (s + f + 2)
        assert p - 1e-9 <= table[r, s, f] <= 1.0
        if r > 1:
            assert table[r, s, f] >= table[r - 1, s, f] - 1e-6
    assert table[2, 0, 0] == pytest.approx(5 / 9, abs=1e-6)


def index_policy_value(arms, pulls, table=None):
    """Exact expected total reward of the index policy (ties uniform), by recursion over belief states; the
    Gittins table unless ``table`` is given."""
    table = V.gittins_index_table(pulls) if table is None else table

    @functools.lru_cache(maxsize=None)
    def value(state):
        t = sum(s + f for s, f in state)
        if t == pulls:
            return 0.0
        index = [table[pulls - t, s, f] for s, f in state]
        best = [i for i, x in enumerate(index) if x == max(index)]
        total = 0.0
        for i in best:
            s, f = state[i]
            p = (s + 1) / (s + f + 2)
            win = tuple(sorted(state[:i] + ((s + 1, f),) + state[i + 1:]))
            lose = tuple(sorted(state[:i] + ((s, f + 1),) + state[i + 1:]))
            total += p * (1 + value(win)) + (1 - p) * value(lose)
        return total / len(best)

    return value(((0, 0),) * arms)


@pytest.mark.parametrize("arms, pulls", [(2, 2), (2, 10), (3, 8), (5, 10)])
def test_index_policy_is_near_bayes_optimal(arms, pulls):
    exact, gittins = V.bayes_optimal_value(arms, pulls), index_policy_value(arms, pulls)
    assert gittins <= exact + 1e-9
    assert gittins >= 0.995 * exact, (gittins, exact)
    if pulls == 2:
        assert gittins == pytest.approx(13 / 12)  # explore once, then keep a success or switch


def test_policy_pulls_the_arm_of_largest_index_for_the_pulls_left():
    dist = BernoulliBandits(arms=3, pulls=12)
    policy = BASELINES.create("gittins").make_policy(dist, dist.sample(1, "test"))
    table = V.gittins_index_table(12)
    history = [(0, 1.0), (1, 0.0), (2, 0.0), (0, 0.0), (1, 1.0), (1, 1.0), (2, 1.0), (0, 1.0)]
    state = policy.get_initial_state(1)
    out = policy.action(bandit_step([FIRST], [0], [0.0]), state)
    counts = np.zeros((3, 2), int)
    for a, r in history:
        out = policy.action(bandit_step([MID], [a], [r]), out.state)
        counts[a] += (int(r), 1 - int(r))
        left = 12 - counts.sum()
        index = [table[left, s, f] for s, f in counts]
        best = {i for i, x in enumerate(index) if x == max(index)}  # ties (equal counts) are broken at random
        assert int(out.action[0]) in best, (counts.tolist(), index)


def test_policy_reaches_its_exact_value_on_5000_bandits():
    dist = BernoulliBandits(arms=5, pulls=10)
    mean, ci = mean_ci(totals(BASELINES.create("gittins"), dist, dist.sample(5000, "test", 0)))
    assert abs(mean - index_policy_value(5, 10)) < ci


def test_bad_input_is_a_clear_error():
    with pytest.raises(MetaRLInputError, match=r"gittins: pulls=500 must be an integer in \[1, 200\]"):
        V.gittins_index_table(500)
    with pytest.raises(MetaRLInputError, match="GittinsBaseline: config alpha=0 must be"):
        BASELINES.create("gittins", alpha=0)
    with pytest.raises(MetaRLInputError, match=r"GittinsBaseline: config discount=1.5 must be a number in \[0, 1"):
        BASELINES.create("gittins", discount=1.5)
    with pytest.raises(MetaRLInputError, match=r"gittins: config discount=-0.1 must be"):
        V.gittins_index_table(5, discount=-0.1)


@pytest.mark.parametrize("arms, pulls", [(3, 8), (5, 10)])
def test_monte_carlo_estimate_of_the_index_policy_brackets_its_exact_value(arms, pulls):
    mean, ci = V.index_policy_estimate(arms, pulls, V.gittins_index_table(pulls), 200_000, seed=3)
    assert 0.0 < ci < 0.02
    assert abs(mean - index_policy_value(arms, pulls)) < 1.7 * ci  # 99.9 % (3.3 standard errors)


def test_monte_carlo_estimate_reads_the_table_at_the_pulls_left():
    # anti-greedy when the pulls left are a multiple of 3, greedy otherwise: off by one pull, another policy
    pulls = 9
    r, s, f = np.meshgrid(*(np.arange(pulls + 1.0),) * 3, indexing="ij")
    table = np.where(r % 3 == 0, -1.0, 1.0) * (s + 1) / (s + f + 2)
    exact = index_policy_value(3, pulls, table)
    mean, ci = V.index_policy_estimate(3, pulls, table, 200_000, seed=3)
    assert abs(mean - exact) < 1.7 * ci
    shifted = index_policy_value(3, pulls, np.concatenate([table[1:], table[-1:]]))
    assert abs(shifted - exact) > 5 * ci


def test_monte_carlo_estimate_breaks_ties_uniformly():
    # a constant index ties every arm at every pull: a uniformly random arm each time, expected pulls / 2;
    # a greedy table (posterior means) is worse than Gittins: what the estimate must tell apart
    pulls = 12
    mean, ci = V.index_policy_estimate(4, pulls, np.zeros((pulls + 1,) * 3), 100_000, seed=0)
    assert abs(mean - pulls / 2) < ci
    s, f = np.meshgrid(np.arange(pulls + 1.0), np.arange(pulls + 1.0), indexing="ij")
    greedy = np.broadcast_to((s + 1) / (s + f + 2), (pulls + 1,) * 3)
    g_mean, g_ci = V.index_policy_estimate(4, pulls, greedy, 100_000, seed=0)
    gittins = index_policy_value(4, pulls)
    assert g_mean + g_ci < gittins


def test_monte_carlo_estimate_refuses_a_short_table_and_too_few_draws():
    with pytest.raises(MetaRLInputError, match=r"table of shape \(6, 6, 6\) .* needs at least \[11, 11, 11\] "
                                               r"\(gittins_index_table\(10\)\)"):
        V.index_policy_estimate(3, 10, V.gittins_index_table(5), 1000)
    with pytest.raises(MetaRLInputError, match="draws=1 must be an integer >= 2"):
        V.index_policy_estimate(3, 10, V.gittins_index_table(10), 1)


def test_reference_values_estimate_the_gittins_policy_where_the_dp_is_refused(monkeypatch):
    import metarl_apps.adapters.bandits as adapter

    small = BernoulliBandits(arms=5, pulls=10).reference_values()
    assert small["bayes_optimal_exact"] == pytest.approx(6.65999, abs=1e-5) and "gittins_expected" not in small
    monkeypatch.setattr(adapter, "GITTINS_REFERENCE_DRAWS", 100_000)
    refs = BernoulliBandits(arms=3, pulls=40).reference_values()  # 3 arms, 40 pulls: too many belief states
    assert "bayes_optimal_exact" not in refs
    assert refs["oracle_exact"] == pytest.approx(30.0)
    assert (refs["gittins_expected"], refs["gittins_expected_ci"]) == V.index_policy_estimate(
        3, 40, V.gittins_index_table(40), 100_000, seed=0)
    assert 0.0 < refs["gittins_expected_ci"] < 0.1
    s, f = np.meshgrid(np.arange(41.0), np.arange(41.0), indexing="ij")
    greedy, _ = V.index_policy_estimate(3, 40, np.broadcast_to((s + 1) / (s + f + 2), (41, 41, 41)), 100_000)
    assert greedy + 0.1 < refs["gittins_expected"] < refs["oracle_exact"] - 1.0
    assert "gittins_expected" not in BernoulliBandits(arms=5, pulls=500).reference_values()  # beyond the table
