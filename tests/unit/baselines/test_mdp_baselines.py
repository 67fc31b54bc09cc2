"""Tabular-MDP baselines: value iteration by hand, Q-learning, PSRL and certainty-equivalent updates by hand,
levels on the defaults."""

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.baselines import mdp as M
from metarl_apps.baselines.classic import OracleBaseline, RandomBaseline
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import BASELINES
from metarl_apps.core.task import Task
from metarl_apps.evaluation.runner import rollout
from tests.unit.baselines.helpers import FIRST, MID, mean_ci, time_step, totals

S0, S1 = [1.0, 0.0], [0.0, 1.0]


def _hand_mdp():
    """2 states, 2 actions. mu = [[1, 0], [2, 3]]; s0 -a0-> s0, s0 -a1-> s1, s1 -a0-> (1/4 s0, 3/4 s1),
    s1 -a1-> s0."""
    mu = np.array([[1.0, 0.0], [2.0, 3.0]], np.float32)
    p = np.zeros((2, 2, 2), np.float32)
    p[0, 0, 0] = p[0, 1, 1] = p[1, 1, 0] = 1.0
    p[1, 0] = [0.25, 0.75]
    return Task("test/0/0", "mdp.tabular", {"reward_means": mu, "transitions": p}, "test", 11)


def test_oracle_value_iteration_by_hand():
    dist = TabularMDPs(states=2, actions=2, horizon=2, episodes=2, reward_noise=1e-6)
    q = dist.oracle_policy([_hand_mdp()]).q_values.numpy()[0]
    # Last step: Q[1] = mu, V[1] = [1, 3].
    np.testing.assert_allclose(q[1], [[1.0, 0.0], [2.0, 3.0]])
    # Q[0][s0] = [1 + V1(s0), 0 + V1(s1)] = [2, 3]; Q[0][s1] = [2 + 1/4 + 3 * 3/4, 3 + V1(s0)] = [4.5, 4].
    np.testing.assert_allclose(q[0], [[2.0, 3.0], [4.5, 4.0]])


def test_oracle_acts_by_q_of_the_inner_step_in_the_env():
    dist = TabularMDPs(states=2, actions=2, horizon=2, episodes=2, reward_noise=1e-6)
    env = dist.make_env([_hand_mdp()])
    rewards, _ = rollout(OracleBaseline().make_policy(dist, [_hand_mdp()]), env, 4)
    # Each episode from s0: h=0 take a1 (Q 3 > 2; reward 0, to s1), h=1 take a1 in s1 (reward 3).
    np.testing.assert_allclose(rewards, [[0.0, 3.0, 0.0, 3.0]], atol=1e-4)


def _drive(policy, steps):
    """Feed ``[(step_type, prev_action, reward, obs, new_episode)]`` (batch 1); return actions and state."""
    state, actions = policy.get_initial_state(1), []
    for step_type, prev_action, reward, obs, new_episode in steps:
        out = policy.action(time_step([step_type], [prev_action], [reward], [obs], [new_episode]), state)
        actions.append(int(out.action[0]))
        state = out.state
    return actions, state


def _small_dist():
    return TabularMDPs(states=2, actions=2, horizon=2, episodes=3)


@pytest.mark.parametrize("gamma, q01", [(1.0, 2.0), (0.5, 1.5)])
def test_q_learning_updates_by_hand(gamma, q01):
    dist = _small_dist()
    policy = M.QLearningBaseline(epsilon=0.0, learning_rate=0.5, gamma=gamma).make_policy(dist, dist.sample(1, "test"))
    actions, state = _drive(policy, [
        (FIRST, 0, 0.0, S0, 1.0),  # trial start in s0: nothing to learn
        (MID, 1, 2.0, S1, 0.0),    # (s0, a1, 2, s1): Q[s0,a1] = 0 + 0.5 (2 + gamma * 0 - 0) = 1
        (MID, 0, 4.0, S0, 1.0),    # (s1, a0, 4) ended the episode: Q[s1,a0] = 0.5 * 4 = 2 (no bootstrap)
        (MID, 1, 1.0, S1, 0.0),    # (s0, a1, 1, s1): Q[s0,a1] = 1 + 0.5 (1 + gamma * 2 - 1)
    ])
    np.testing.assert_allclose(state["q"].numpy()[0], [[0.0, q01], [2.0, 0.0]])
    assert state["prev_state"].numpy().tolist() == [1]
    assert actions[3] == 0  # greedy in s1
    assert actions[2] == 1  # greedy in s0 (Q[s0] = [0, 1])


def test_q_learning_initial_q_and_reset_on_trial_start():
    dist = _small_dist()
    policy = M.QLearningBaseline(initial_q=5.0, learning_rate=1.0).make_policy(dist, dist.sample(1, "test"))
    _, state = _drive(policy, [(FIRST, 0, 0.0, S0, 1.0), (MID, 0, 1.0, S0, 1.0)])
    np.testing.assert_allclose(state["q"].numpy()[0], [[1.0, 5.0], [5.0, 5.0]])
    _, state = _drive(policy, [(MID, 0, 1.0, S0, 1.0), (FIRST, 1, 9.0, S1, 1.0)])
    np.testing.assert_allclose(state["q"].numpy()[0], np.full((2, 2), 5.0))


@pytest.mark.parametrize("name", ["psrl", "certainty_equivalent"])
def test_posterior_statistics_by_hand(name):
    dist = _small_dist()
    policy = BASELINES.create(name).make_policy(dist, dist.sample(1, "test"))
    _, state = _drive(policy, [
        (FIRST, 1, 7.0, S0, 1.0),  # ignored
        (MID, 1, 2.0, S1, 0.0),    # (s0, a1) -> s1
        (MID, 0, 3.0, S0, 1.0),    # (s1, a0) ended the episode: next state unobserved
        (MID, 0, -1.0, S0, 0.0),   # (s0, a0) -> s0
    ])
    np.testing.assert_allclose(state["visits"].numpy()[0], [[1.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(state["reward_sum"].numpy()[0], [[-1.0, 2.0], [3.0, 0.0]])
    counts = np.zeros((2, 2, 2))
    counts[0, 1, 1] = counts[0, 0, 0] = 1.0
    np.testing.assert_allclose(state["transition_counts"].numpy()[0], counts)
    assert state["h"].numpy().tolist() == [1] and state["prev_state"].numpy().tolist() == [0]


def test_psrl_samples_concentrate_on_a_well_known_mdp():
    # After many visits the sampled MDP is the true one: the posterior mean of every reward is (1 + sum)/(1 + n).
    dist = TabularMDPs(states=2, actions=2, horizon=2, episodes=2)
    policy = M.PSRLPolicy(dist, seed=0)
    n = 1e6
    stats = {"visits": tf.fill([1, 2, 2], n),
             "reward_sum": tf.constant([[[1.0, 0.0], [2.0, 3.0]]]) * n,
             "transition_counts": tf.constant(_hand_mdp().params["transitions"])[None] * n}
    q = policy.sample_q(stats, policy.get_initial_state(1)).numpy()[0]
    np.testing.assert_allclose(q[0], [[2.0, 3.0], [4.5, 4.0]], atol=0.02)


def test_certainty_equivalent_plans_in_the_posterior_mean_mdp():
    dist = TabularMDPs(states=2, actions=2, horizon=2, episodes=2)
    policy = M.CertaintyEquivalentPolicy(dist, seed=0)
    # no data: every mean reward is the prior's reward_loc (1), so Q[h] = (H - h) * 1 everywhere
    empty = {"visits": tf.zeros([1, 2, 2]), "reward_sum": tf.zeros([1, 2, 2]),
             "transition_counts": tf.zeros([1, 2, 2, 2])}
    np.testing.assert_allclose(policy.posterior_mean_q(empty).numpy()[0], [np.full((2, 2), 2.0), np.ones((2, 2))])
    # one reward of 3 for (s0, a0): posterior mean (1 + 3) / (1 + 1) = 2 (prior and noise variance 1); one
    # observed s0 -a0-> s1 makes that row's mean (1 + [0, 1]) / 3
    one = {"visits": tf.constant([[[1.0, 0.0], [0.0, 0.0]]]), "reward_sum": tf.constant([[[3.0, 0.0], [0.0, 0.0]]]),
           "transition_counts": tf.constant([[[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]])}
    q = policy.posterior_mean_q(one).numpy()[0]
    np.testing.assert_allclose(q[1], [[2.0, 1.0], [1.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(q[0, 0], [2.0 + (1 / 3) * 2.0 + (2 / 3) * 1.0, 1.0 + 0.5 * 2.0 + 0.5 * 1.0], rtol=1e-6)
    # a bonus of b posterior standard deviations: + b / sqrt(2) on the tried action, + b on the untried ones
    bonus = M.CertaintyEquivalentPolicy(dist, seed=0, bonus=0.5).posterior_mean_q(one).numpy()[0]
    np.testing.assert_allclose(bonus[1], [[2.0 + 0.5 / np.sqrt(2.0), 1.5], [1.5, 1.5]], rtol=1e-6)
    # after many visits the posterior-mean MDP is the true one
    n = 1e6
    known = {"visits": tf.fill([1, 2, 2], n), "reward_sum": tf.constant([[[1.0, 0.0], [2.0, 3.0]]]) * n,
             "transition_counts": tf.constant(_hand_mdp().params["transitions"])[None] * n}
    np.testing.assert_allclose(policy.posterior_mean_q(known).numpy()[0, 0], [[2.0, 3.0], [4.5, 4.0]], atol=1e-3)


def test_certainty_equivalent_replans_every_step_or_every_episode():
    dist = _small_dist()
    steps = [(FIRST, 1, 7.0, S0, 1.0), (MID, 1, 2.0, S1, 0.0), (MID, 0, 5.0, S0, 0.0)]
    for replan, changes in (("step", True), ("episode", False)):
        policy = M.CertaintyEquivalentBaseline(replan=replan).make_policy(dist, dist.sample(1, "test"))
        _, before = _drive(policy, steps[:2])
        _, after = _drive(policy, steps)  # a step inside the episode: new data, no new episode
        assert (not np.allclose(before["q"].numpy(), after["q"].numpy())) == changes, replan


# ---------------------------------------------------------------- levels on the default family
@pytest.fixture(scope="module")
def default_levels():
    dist = TabularMDPs()
    tasks = dist.sample(1000, "test", 0)
    agents = {"random": RandomBaseline(), "oracle": OracleBaseline(), "q_learning": M.QLearningBaseline(),
              "psrl": M.PSRLBaseline(), "certainty_equivalent": M.CertaintyEquivalentBaseline()}
    return {name: totals(agent, dist, tasks) for name, agent in agents.items()}


def test_random_collects_about_one_per_step(default_levels):
    mean, ci = mean_ci(default_levels["random"])
    assert abs(mean - 100.0) < ci  # E[mu] = reward_loc = 1, 10 episodes x 10 steps


def test_oracle_beats_certainty_equivalent_beats_psrl_beats_q_learning_and_random(default_levels):
    levels = {k: mean_ci(v) for k, v in default_levels.items()}
    print({k: f"{m:.1f} +- {c:.1f}" for k, (m, c) in levels.items()})
    # Paired comparisons (same tasks, same environment noise): the lower end of the 95% CI is above zero.
    for better, worse in (("oracle", "certainty_equivalent"), ("certainty_equivalent", "psrl"), ("psrl", "q_learning"),
                          ("psrl", "random"), ("q_learning", "random")):
        mean, ci = mean_ci(default_levels[better] - default_levels[worse])
        assert mean - ci > 0, (better, worse, mean, ci)


@pytest.mark.slow
def test_levels_on_more_tasks():
    dist = TabularMDPs()
    tasks = dist.sample(4000, "test", 1)
    names = ("random", "oracle", "q_learning", "psrl", "certainty_equivalent")
    out = {name: totals(BASELINES.create(name), dist, tasks) for name in names}
    out["certainty_equivalent_episode"] = totals(M.CertaintyEquivalentBaseline(replan="episode"), dist, tasks)
    print({k: "{:.1f} +- {:.1f}".format(*mean_ci(v)) for k, v in out.items()})
    for better, worse in (("oracle", "certainty_equivalent"), ("certainty_equivalent", "certainty_equivalent_episode"),
                          ("certainty_equivalent_episode", "psrl"), ("psrl", "q_learning"), ("q_learning", "random")):
        mean, ci = mean_ci(out[better] - out[worse])
        assert mean - ci > 0, (better, worse)


# ---------------------------------------------------------------- configuration and families
@pytest.mark.parametrize("config, field", [
    ({"epsilon": -0.5}, "epsilon=-0.5"),
    ({"epsilon": 2}, "epsilon=2"),
    ({"learning_rate": 0.0}, "learning_rate=0.0"),
    ({"learning_rate": "fast"}, "learning_rate='fast'"),
    ({"gamma": 1.5}, "gamma=1.5"),
    ({"initial_q": float("inf")}, "initial_q=inf"),
])
def test_q_learning_bad_config_names_the_field(config, field):
    with pytest.raises(MetaRLInputError, match=f"QLearningBaseline: config {field} must be"):
        M.QLearningBaseline(**config)


@pytest.mark.parametrize("config, message", [
    ({"bonus": -1.0}, "bonus=-1.0 must be a number >= 0"),
    ({"replan": "never"}, "replan='never' must be 'step' or 'episode'"),
])
def test_certainty_equivalent_bad_config_names_the_field(config, message):
    with pytest.raises(MetaRLInputError, match=f"CertaintyEquivalentBaseline: config {message}"):
        M.CertaintyEquivalentBaseline(**config)


def test_psrl_takes_no_config():
    with pytest.raises(MetaRLInputError, match=r"PSRLBaseline: unknown config keys \['prior'\]"):
        M.PSRLBaseline(prior=1)


@pytest.mark.parametrize("name", ["q_learning", "psrl", "certainty_equivalent"])
def test_mdp_baselines_refuse_other_families(name):
    dist = BernoulliBandits(arms=2, pulls=2)
    message = r"does not support family 'bandits.bernoulli' \(supports: mdp.tabular\)"
    with pytest.raises(MetaRLInputError, match=message):
        BASELINES.create(name).make_policy(dist, dist.sample(1, "test"))
