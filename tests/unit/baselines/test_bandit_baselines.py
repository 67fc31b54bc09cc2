"""Bandit baselines: hand-made sequences, statistical levels on k=5, n=10, config errors, SavedModel export."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.baselines import bandit_values as V
from metarl_apps.baselines import bandits as B
from metarl_apps.baselines.classic import OracleBaseline, RandomBaseline
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import BASELINES
from tests.unit.baselines.helpers import FIRST, MID, bandit_step, mean_ci, totals

N_TASKS = 5000
DP_5_10 = 6.659987874779542
# Thompson sampling with Beta(1, 1) priors on k=5, n=10: 5.830 +- 0.009 in a 200,000-task numpy reference run.
THOMPSON_5_10 = 5.830


@pytest.fixture(scope="module")
def k5n10():
    dist = BernoulliBandits(arms=5, pulls=10)
    return dist, dist.sample(N_TASKS, "test", 0)


@pytest.fixture(scope="module")
def levels(k5n10):
    dist, tasks = k5n10
    agents = {"random": RandomBaseline(), "greedy": B.GreedyBaseline(), "epsilon_greedy": B.EpsilonGreedyBaseline(),
              "ucb1": B.UCB1Baseline(), "thompson": B.ThompsonBaseline(), "bayes_optimal": B.BayesOptimalBaseline(),
              "oracle": OracleBaseline()}
    return {name: mean_ci(totals(agent, dist, tasks)) for name, agent in agents.items()}


# ---------------------------------------------------------------- statistical levels (k=5, n=10)
def test_random_expects_half_the_pulls(levels):
    mean, ci = levels["random"]
    assert abs(mean - 5.0) < ci


def test_thompson_level(levels):
    mean, ci = levels["thompson"]
    assert 5.6 <= mean <= 5.85
    assert abs(mean - THOMPSON_5_10) < ci


def test_bayes_optimal_policy_reaches_its_dp_value(levels):
    mean, ci = levels["bayes_optimal"]
    assert abs(mean - DP_5_10) < ci


def test_heuristics_lie_between_random_and_bayes_optimal(levels):
    for name in ("greedy", "epsilon_greedy", "ucb1", "thompson"):
        mean, ci = levels[name]
        assert levels["random"][0] + levels["random"][1] < mean - ci and mean + ci < DP_5_10, name


def test_oracle_expects_the_best_arm(levels):
    mean, ci = levels["oracle"]
    assert abs(mean - 10 * 5 / 6) < ci  # E[max of 5 U(0,1)] = 5/6 per pull


def test_oracle_policy_pulls_the_argmax_of_the_true_means():
    dist = BernoulliBandits(arms=3, pulls=2)
    tasks = dist.sample(4, "test", 0)
    policy = dist.oracle_policy(tasks)
    step = policy.action(bandit_step([FIRST] * 4, [0] * 4, [0.0] * 4), policy.get_initial_state(4))
    assert step.action.numpy().tolist() == [int(np.argmax(t.params["means"])) for t in tasks]


# ---------------------------------------------------------------- hand-made sequences
def _drive(policy, steps):
    """Feed hand-made time steps ``[(step_type, prev_action, reward)]`` (batch 1); return actions and state."""
    state = policy.get_initial_state(1)
    actions = []
    for step_type, prev_action, reward in steps:
        out = policy.action(bandit_step([step_type], [prev_action], [reward]), state)
        actions.append(int(out.action[0]))
        state = out.state
    return actions, state


@pytest.mark.parametrize("baseline", [B.UCB1Baseline(), B.ThompsonBaseline(), B.BayesOptimalBaseline()])
def test_counts_in_the_policy_state_after_a_hand_made_sequence(baseline):
    policy = baseline.make_policy(BernoulliBandits(arms=3, pulls=5), BernoulliBandits(3, 5).sample(1, "test"))
    # A trial start carries no information (its prev_action/reward are ignored), then three pulls.
    _, state = _drive(policy, [(FIRST, 1, 1.0), (MID, 2, 1.0), (MID, 0, 0.0), (MID, 2, 0.0)])
    assert state["pulls"].numpy().tolist() == [[1.0, 0.0, 2.0]]
    assert state["successes"].numpy().tolist() == [[0.0, 0.0, 1.0]]
    assert state["step"].numpy().tolist() == [4]
    _, state = _drive(policy, [(MID, 2, 1.0), (FIRST, 2, 1.0)])  # a new trial resets the counts
    assert state["pulls"].numpy().tolist() == [[0.0, 0.0, 0.0]]


def _closed_loop(policy, rewards, steps):
    """Run ``policy`` on one bandit whose j-th pull of arm a pays ``rewards[a][j]``; return the arms pulled."""
    state, pulled, counts = policy.get_initial_state(1), [], [0] * len(rewards)
    step = bandit_step([FIRST], [0], [0.0])
    for _ in range(steps):
        out = policy.action(step, state)
        a = int(out.action[0])
        pulled.append(a)
        r = rewards[a][counts[a]]
        counts[a] += 1
        state, step = out.state, bandit_step([MID], [a], [r])
    return pulled


def test_ucb1_with_c0_is_greedy_after_the_first_k_pulls():
    dist = BernoulliBandits(arms=3, pulls=10)
    tasks = dist.sample(1, "test")
    rewards = [[0] * 10, [1] + [0] * 9, [0] * 10]  # arm 1 pays once, then its mean 1/j stays the best
    ucb0 = _closed_loop(B.UCB1Baseline(c=0.0).make_policy(dist, tasks), rewards, 10)
    greedy = _closed_loop(B.GreedyBaseline().make_policy(dist, tasks), rewards, 10)
    assert sorted(ucb0[:3]) == [0, 1, 2] and sorted(greedy[:3]) == [0, 1, 2]  # untried arms first
    assert ucb0[3:] == greedy[3:] == [1] * 7
    # With c = 2, at t=5 arm 1 (n=3, mean 1/3) has index 1/3 + sqrt(2 ln 5 / 3) = 1.37 < sqrt(2 ln 5) = 1.79.
    ucb2 = _closed_loop(B.UCB1Baseline(c=2.0).make_policy(dist, tasks), rewards, 6)
    assert ucb2[3:5] == [1, 1] and ucb2[5] in (0, 2)


def test_bayes_optimal_policy_stays_after_a_success_and_switches_after_a_failure():
    dist = BernoulliBandits(arms=2, pulls=2)
    policy = B.BayesOptimalBaseline().make_policy(dist, dist.sample(1, "test"))
    assert _drive(policy, [(FIRST, 0, 0.0), (MID, 0, 1.0)])[0][1] == 0
    assert _drive(policy, [(FIRST, 0, 0.0), (MID, 0, 0.0)])[0][1] == 1
    assert _drive(policy, [(FIRST, 0, 0.0), (MID, 1, 0.0)])[0][1] == 0


def test_ties_are_broken_uniformly_at_random():
    dist = BernoulliBandits(arms=4, pulls=3)
    tasks = dist.sample(2000, "test")
    for baseline in (B.BayesOptimalBaseline(), B.GreedyBaseline(), B.UCB1Baseline()):
        policy = baseline.make_policy(dist, tasks)
        step = policy.action(bandit_step([FIRST] * 2000, [0] * 2000, [0.0] * 2000), policy.get_initial_state(2000))
        share = np.bincount(step.action.numpy(), minlength=4) / 2000
        assert np.all(np.abs(share - 0.25) < 0.04), (type(baseline).__name__, share)


def test_epsilon_greedy_extremes():
    dist = BernoulliBandits(arms=3, pulls=4)
    tasks = dist.sample(1, "test")
    rewards = [[0] * 4, [1] * 4, [0] * 4]
    assert _closed_loop(B.EpsilonGreedyBaseline(epsilon=0.0).make_policy(dist, tasks), rewards, 4)[3] == 1
    batch = dist.sample(3000, "test")
    policy = B.EpsilonGreedyBaseline(epsilon=1.0).make_policy(dist, batch)
    state = policy.get_initial_state(3000)
    state = {**state, "pulls": tf.ones([3000, 3]), "successes": tf.constant([[0.0, 1.0, 0.0]] * 3000)}
    step = policy.action(bandit_step([MID] * 3000, [1] * 3000, [1.0] * 3000), state)
    share = np.bincount(step.action.numpy(), minlength=3) / 3000
    assert np.all(np.abs(share - 1 / 3) < 0.04), share


# ---------------------------------------------------------------- configuration and families
@pytest.mark.parametrize("cls, config, field", [
    (B.EpsilonGreedyBaseline, {"epsilon": -0.1}, "epsilon=-0.1"),
    (B.EpsilonGreedyBaseline, {"epsilon": 1.5}, "epsilon=1.5"),
    (B.EpsilonGreedyBaseline, {"epsilon": "high"}, "epsilon='high'"),
    (B.EpsilonGreedyBaseline, {"epsilon": True}, "epsilon=True"),
    (B.UCB1Baseline, {"c": -1}, "c=-1"),
    (B.UCB1Baseline, {"c": float("nan")}, "c=nan"),
    (B.ThompsonBaseline, {"alpha": 0}, "alpha=0"),
    (B.ThompsonBaseline, {"beta": [1]}, r"beta=\[1\]"),
])
def test_bad_config_names_the_field(cls, config, field):
    with pytest.raises(MetaRLInputError, match=f"{cls.__name__}: config {field} must be"):
        cls(**config)


def test_unknown_config_keys_list_the_valid_ones():
    with pytest.raises(MetaRLInputError, match=r"UCB1Baseline: unknown config keys \['alpha'\]; valid keys: c"):
        B.UCB1Baseline(alpha=1.0)
    with pytest.raises(MetaRLInputError, match=r"GreedyBaseline: unknown config keys \['epsilon'\]; valid keys: none"):
        B.GreedyBaseline(epsilon=0.1)


def test_registry_builds_configured_baselines():
    assert BASELINES.create("ucb1", c=0.5).config == {"c": 0.5}
    assert BASELINES.create("epsilon_greedy").config == {"epsilon": 0.1}
    assert BASELINES.create("thompson", alpha=2).config == {"alpha": 2.0, "beta": 1.0}


@pytest.mark.parametrize("name", ["greedy", "epsilon_greedy", "ucb1", "thompson", "gittins", "bayes_optimal"])
def test_bandit_baselines_refuse_other_families(name):
    dist = TabularMDPs(states=2, actions=2, horizon=2, episodes=2)
    message = r"does not support family 'mdp.tabular' \(supports: bandits.bernoulli\)"
    with pytest.raises(MetaRLInputError, match=message):
        BASELINES.create(name).make_policy(dist, dist.sample(1, "test"))


def test_bayes_optimal_baseline_refuses_a_too_large_trial():
    dist = BernoulliBandits(arms=5, pulls=100)
    with pytest.raises(MetaRLInputError, match="belief states, more than the"):
        B.BayesOptimalBaseline().make_policy(dist, dist.sample(1, "test"))


# ---------------------------------------------------------------- export
@pytest.mark.parametrize("baseline", [B.BayesOptimalBaseline(), B.GittinsBaseline()])
def test_table_policies_export_with_policy_saver(baseline, tmp_path):
    dist = BernoulliBandits(arms=3, pulls=6)
    policy = baseline.make_policy(dist, dist.sample(4, "test"), seed=7)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))

    rng = np.random.default_rng(0)
    state = policy.get_initial_state(4)
    tf.nest.map_structure(np.testing.assert_array_equal, state, loaded.get_initial_state(4))
    step = bandit_step([FIRST] * 4, [0] * 4, [0.0] * 4)
    for _ in range(8):  # past the trial length too (the fallback branch)
        ours, theirs = policy.action(step, state), loaded.action(step, state)
        np.testing.assert_array_equal(ours.action.numpy(), theirs.action.numpy())
        tf.nest.map_structure(np.testing.assert_array_equal, ours.state, theirs.state)
        state = ours.state
        step = bandit_step([MID] * 4, ours.action.numpy().tolist(), rng.integers(0, 2, 4).astype(float).tolist())


@pytest.mark.slow
def test_bayes_optimal_policy_matches_the_dp_on_many_tasks():
    for arms, pulls, n in ((5, 10, 40000), (3, 20, 20000)):
        dist = BernoulliBandits(arms=arms, pulls=pulls)
        mean, ci = mean_ci(totals(B.BayesOptimalBaseline(), dist, dist.sample(n, "test", 1)))
        value = V.bayes_optimal_value(arms, pulls)
        print(f"k={arms} n={pulls}: policy {mean:.4f} +- {ci:.4f}, DP {value:.4f}")
        assert abs(mean - value) < ci
