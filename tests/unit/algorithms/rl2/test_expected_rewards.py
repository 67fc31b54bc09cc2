"""RL² ``expected_rewards``: PPO's returns use each step's expected reward (the draw's noise integrated out).

The environments' ``expected_reward`` (bandits: the pulled arm's mean; tabular MDPs: the current state's mean
reward for the action), that the training iteration trains on it and nothing else changes (deterministic
rewards: identical to the drawn-reward iteration; noisy ones: not), and the refusal for families without it.
"""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.games.tasks import GridLevelTasks
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.algorithms.rl2 import RL2
from metarl_apps.core.errors import MetaRLInputError
from tests.unit.algorithms.helpers import RL2_TINY as TINY


def test_bandit_expected_reward_is_the_pulled_arms_mean_and_the_draws_average_to_it():
    dist = BernoulliBandits(arms=4, pulls=200)
    tasks = dist.sample(64, "test")
    means = np.stack([t.params["means"] for t in tasks])
    env = dist.make_env(tasks)
    env.reset()
    assert env.supports_expected_reward
    expected, drawn = [], []
    for t in range(200):
        action = tf.constant((np.arange(64) + t) % 4, tf.int32)
        expected.append(env.expected_reward(action).numpy())
        np.testing.assert_array_equal(expected[-1], means[np.arange(64), action.numpy()])
        drawn.append(env.step(action).reward.numpy())
    expected, drawn = np.stack(expected), np.stack(drawn)
    assert set(np.unique(drawn)) <= {0.0, 1.0} and expected.dtype == np.float32
    # 12,800 Bernoulli draws: their mean error is ~0.004 (sd); the expectation is unbiased
    assert abs((drawn - expected).mean()) < 0.02


def test_mdp_expected_reward_is_the_current_states_mean_reward_for_the_action():
    dist = TabularMDPs(states=4, actions=3, horizon=5, episodes=2, reward_noise=1.0)
    tasks = dist.sample(32, "test")
    mu = np.stack([t.params["reward_means"] for t in tasks])
    env = dist.make_env(tasks)
    env.reset()
    rng = np.random.default_rng(0)
    noise = []
    for _ in range(10):  # across an episode boundary: the state is reset, the expectation follows it
        action = tf.constant(rng.integers(0, 3, size=32), tf.int32)
        state = env.state.numpy()
        expected = env.expected_reward(action).numpy()
        np.testing.assert_allclose(expected, mu[np.arange(32), state, action.numpy()])
        noise.append(env.step(action).reward.numpy() - expected)
    noise = np.stack(noise)
    assert 0.7 < noise.std() < 1.3 and abs(noise.mean()) < 0.25  # the drawn reward = mean + unit noise


def test_game_environments_do_not_define_it():
    dist = GridLevelTasks(size=6, view_size=3, num_hazards=0, episodes=2, max_steps=6)
    env = dist.make_env(dist.sample(2, "test"))
    assert not env.supports_expected_reward
    with pytest.raises(NotImplementedError, match="does not define expected rewards"):
        env.expected_reward(tf.zeros([2], tf.int32))
    with pytest.raises(MetaRLInputError, match="expected_rewards=true needs an environment .* set expected_rewards "
                                               "false"):
        RL2(**TINY, expected_rewards=True).meta_train(dist, iterations=1)
    with pytest.raises(MetaRLInputError, match="expected_rewards"):
        RL2(expected_rewards="yes")


def _with_means(tasks, value):
    return [dataclasses.replace(t, params={**t.params, "means": np.full_like(t.params["means"], value)})
            for t in tasks]


def _one_iteration(pool, expected_rewards):
    learner = RL2(**TINY, gae_lambda=0.95, expected_rewards=expected_rewards)
    metrics = learner.meta_train(BernoulliBandits(arms=3, pulls=6), pool, iterations=1, seed=0).metrics
    return metrics, [v.numpy() for v in learner.net.trainable_variables]


@pytest.mark.parametrize("arm_mean", [0.0, 1.0, 0.5])
def test_training_uses_the_expected_rewards_and_reports_the_drawn_ones(arm_mean):
    """Same seed, same actions: with deterministic arms (means 0 or 1) the drawn rewards are their means, so the
    iteration is the same either way; with p = 0.5 the returns differ (drawn 0/1 vs 0.5 everywhere), and so do
    the value loss and the updated weights, while trial_return reports the same drawn rewards."""
    pool = _with_means(BernoulliBandits(arms=3, pulls=6).sample(32, "train"), arm_mean)
    drawn, drawn_weights = _one_iteration(pool, False)
    expected, expected_weights = _one_iteration(pool, True)
    assert expected["trial_return"] == drawn["trial_return"]
    if arm_mean in (0.0, 1.0):
        assert expected["trial_return"] == 6 * arm_mean
        assert expected == pytest.approx(drawn, rel=1e-6, abs=1e-7)
        for a, b in zip(drawn_weights, expected_weights, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    else:
        assert 0 < drawn["trial_return"] < 6
        assert expected["value_loss"] != pytest.approx(drawn["value_loss"], rel=1e-3)
        assert any(not np.allclose(a, b) for a, b in zip(drawn_weights, expected_weights, strict=True))
