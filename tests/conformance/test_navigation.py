"""``nav.point2d`` passes the adapter contract; dynamics, reward and the oracle are checked by hand."""

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.adapters.checks import check_task_distribution
from metarl_apps.adapters.navigation import PointNavigation
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import TASK_FAMILIES
from metarl_apps.evaluation.runner import episode_returns, rollout


def test_conforms():
    check_task_distribution(PointNavigation(horizon=5, episodes=2))
    check_task_distribution(TASK_FAMILIES.create("nav.point2d"), num_steps=12)


def test_goals_in_range_and_hidden():
    dist = PointNavigation()
    goals = np.stack([t.params["goal"] for t in dist.sample(500, "train")])
    assert goals.shape == (500, 2) and np.all(np.abs(goals) <= 0.5) and goals.std() > 0.2
    assert set(dist.observation_spec()["obs"].shape.as_list()) == {2}


def test_hand_worked_steps():
    dist = PointNavigation(horizon=3, episodes=2)
    (task,) = dist.sample(1, "test")
    g = task.params["goal"]
    env = dist.make_env([task])
    first = env.reset()
    np.testing.assert_allclose(first.observation["obs"], [[0.0, 0.0]])
    ts = env.step(tf.constant([[0.5, -0.05]]))  # clipped to (0.1, -0.05)
    np.testing.assert_allclose(ts.observation["obs"], [[0.1, -0.05]], atol=1e-6)
    np.testing.assert_allclose(ts.reward, [-np.linalg.norm(np.array([0.1, -0.05]) - g)], atol=1e-5)
    env.step(tf.constant([[0.0, 0.0]]))
    ts = env.step(tf.constant([[0.0, 0.0]]))  # end of episode 1: position resets to the origin
    np.testing.assert_allclose(ts.observation["obs"], [[0.0, 0.0]])
    assert float(ts.observation["new_episode"][0]) == 1.0


def test_oracle_reaches_goals():
    dist = PointNavigation(episodes=1)
    tasks = dist.sample(64, "test")
    env = dist.make_env(tasks)
    rewards, episode = rollout(dist.oracle_policy(tasks), env, dist.horizon)
    ret = episode_returns(rewards, episode, 1)[:, 0]
    # at most 5 steps to reach any goal in [-0.5, 0.5]², then reward 0; a do-nothing policy gets -100·|g|
    dist_to_goal = np.array([np.linalg.norm(t.params["goal"]) for t in tasks])
    assert np.all(ret > -3.0) and np.all(ret > -100 * dist_to_goal + 1e-3)
    assert rewards[:, -1].max() > -1e-5


@pytest.mark.parametrize("kwargs, match", [({"horizon": 0}, "horizon"), ({"max_step": -1.0}, "max_step"),
                                           ({"goal_range": "a"}, "goal_range")])
def test_bad_parameters(kwargs, match):
    with pytest.raises(MetaRLInputError, match=match):
        PointNavigation(**kwargs)
