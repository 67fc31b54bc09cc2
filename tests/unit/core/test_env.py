import numpy as np
import pytest
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.core.task import Task

FIRST, MID, LAST = int(ts.StepType.FIRST), int(ts.StepType.MID), int(ts.StepType.LAST)


def _bandit_task(means, i=0):
    return Task(f"test/0/{i}", "bandits.bernoulli", {"means": np.asarray(means, np.float32)}, "test", 100 + i)


def test_bandit_trial_structure_by_hand():
    dist = BernoulliBandits(arms=3, pulls=3)
    env = dist.make_env([_bandit_task([0.0, 1.0, 0.0]), _bandit_task([1.0, 0.0, 0.0], 1)])
    t = env.reset()
    assert t.step_type.numpy().tolist() == [FIRST, FIRST]
    assert t.observation["new_episode"].numpy().tolist() == [1.0, 1.0]
    assert t.observation["prev_action"].numpy().tolist() == [0, 0]
    rewards = []
    for a in ([1, 1], [0, 0], [2, 0]):
        t = env.step(tf.constant(a))
        rewards.append(t.reward.numpy().tolist())
        assert t.observation["prev_action"].numpy().tolist() == a
        assert t.observation["prev_reward"].numpy().tolist() == t.reward.numpy().tolist()
        assert t.observation["new_episode"].numpy().tolist() == [1.0, 1.0]  # every pull is an episode
    assert rewards == [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    assert t.step_type.numpy().tolist() == [LAST, LAST] and t.discount.numpy().tolist() == [0.0, 0.0]
    t = env.step(tf.constant([1, 1]))  # auto-reset into a new trial, action ignored
    assert t.step_type.numpy().tolist() == [FIRST, FIRST] and t.reward.numpy().tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(env.current_time_step().step_type.numpy(), [FIRST, FIRST])


def _chain_mdp():
    # 2 states, 2 actions; action 0 stays, action 1 moves to the other state. mu[s, a] = 10*s + a.
    p = np.zeros((2, 2, 2), np.float32)
    p[0, 0, 0] = p[0, 1, 1] = p[1, 0, 1] = p[1, 1, 0] = 1.0
    mu = np.array([[0.0, 1.0], [10.0, 11.0]], np.float32)
    return Task("test/0/0", "mdp.tabular", {"reward_means": mu, "transitions": p}, "test", 5)


def test_mdp_trial_by_hand():
    dist = TabularMDPs(states=2, actions=2, horizon=2, episodes=2, reward_noise=1e-6)
    env = dist.make_env([_chain_mdp()])
    t = env.reset()
    assert t.observation["obs"].numpy().tolist() == [[1.0, 0.0]]
    seen = []
    for a in (1, 0, 0, 1):
        t = env.step(tf.constant([a]))
        seen.append((round(float(t.reward[0]), 3), t.observation["obs"].numpy()[0].tolist(),
                     float(t.observation["new_episode"][0]), int(t.step_type[0])))
    assert seen == [
        (1.0, [0.0, 1.0], 0.0, MID),    # s0 --1--> s1, reward mu[0,1]
        (10.0, [1.0, 0.0], 1.0, MID),   # s1 --0--> (episode over: next episode starts in s0)
        (0.0, [1.0, 0.0], 0.0, MID),    # s0 --0--> s0
        (1.0, [0.0, 1.0], 1.0, LAST),   # s0 --1--> s1, trial over
    ]


def test_mdp_reward_noise_is_standard_normal_around_the_mean():
    dist = TabularMDPs(states=2, actions=2, horizon=50, episodes=1, reward_noise=1.0)
    task = _chain_mdp()
    env = dist.make_env([task] * 1 + [Task(f"test/0/{i}", task.family, task.params, "test", i) for i in range(1, 200)])
    env.reset()
    rewards = np.stack([env.step(tf.zeros([200], tf.int32)).reward.numpy() for _ in range(50)])  # stay in s0
    assert abs(rewards.mean()) < 0.03 and abs(rewards.std() - 1.0) < 0.03


def test_env_seed_changes_noise_but_not_tasks():
    dist = BernoulliBandits(arms=2, pulls=50)
    tasks = [_bandit_task([0.5, 0.5], i) for i in range(20)]

    def draws(seed):
        env = dist.make_env(tasks, seed=seed)
        env.reset()
        return np.stack([env.step(tf.zeros([20], tf.int32)).reward.numpy() for _ in range(50)])

    assert np.array_equal(draws(0), draws(0))
    assert not np.array_equal(draws(0), draws(1))
    assert abs(draws(0).mean() - 0.5) < 0.05


@pytest.mark.parametrize("dist", [BernoulliBandits(arms=4, pulls=6), TabularMDPs(horizon=3, episodes=2)])
def test_env_runs_inside_tf_function(dist):
    env = dist.make_env(dist.sample(3, "test", 0))

    @tf.function
    def run():
        t = env.reset()
        total = tf.zeros([3])
        for _ in tf.range(dist.horizon * dist.episodes_per_trial):
            t = env.step(tf.zeros([3], tf.int32))
            total += t.reward
        return total, t.step_type

    total, step_type = run()
    assert step_type.numpy().tolist() == [LAST] * 3
    assert np.all(np.isfinite(total.numpy()))


def test_set_tasks_swaps_tasks_without_a_new_environment():
    dist = BernoulliBandits(arms=2, pulls=2)
    env = dist.make_env([_bandit_task([1.0, 0.0], 0), _bandit_task([1.0, 0.0], 1)])
    assert env.supports_set_tasks

    @tf.function
    def first_pull_rewards():
        env.reset()
        return env.step(tf.zeros([2], tf.int32)).reward

    assert first_pull_rewards().numpy().tolist() == [1.0, 1.0]
    env.set_tasks([_bandit_task([0.0, 1.0], 2), _bandit_task([1.0, 0.0], 3)])
    assert first_pull_rewards().numpy().tolist() == [0.0, 1.0]  # same compiled function, new tasks
    with pytest.raises(ValueError, match="got 1 tasks for an environment of batch size 2"):
        env.set_tasks([_bandit_task([0.0, 1.0], 2)])
    mdp = TabularMDPs(states=2, actions=2, horizon=2, episodes=1, reward_noise=1e-6)
    menv = mdp.make_env(mdp.sample(1, "train", 0))
    menv.set_tasks([_chain_mdp()])
    menv.reset()
    assert round(float(menv.step(tf.constant([1])).reward[0]), 3) == 1.0


def test_rewind_replays_the_first_trials_random_numbers():
    dist = BernoulliBandits(arms=4, pulls=20)
    tasks = [_bandit_task([0.5, 0.5, 0.5, 0.5], i) for i in range(3)]
    env = dist.make_env(tasks)

    def trial():
        env.reset()
        return np.stack([env.step(tf.constant([a % 4] * 3)).reward.numpy() for a in range(20)])

    first, second = trial(), trial()
    assert not np.array_equal(first, second)  # each trial draws fresh numbers
    env.rewind()
    np.testing.assert_array_equal(trial(), first)
