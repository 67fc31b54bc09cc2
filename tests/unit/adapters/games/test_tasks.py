"""games.gridlevels as a TaskDistribution: tasks, the fixed-length trial, re-tasking, the oracle, errors."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import random_tf_policy, tf_policy
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from metarl_apps.adapters.games.gridlevels_core import (
    GOAL,
    HAZARD,
    KEY,
    WALL,
    GridLevelsConfig,
    Levels,
    generate_level,
    level_from_layout,
)
from metarl_apps.adapters.games.tasks import (
    SPLIT_BIT,
    GridLevelEnvironment,
    GridLevelTasks,
    GridOraclePolicy,
    oracle_tables,
)
from metarl_apps.baselines.classic import OracleBaseline
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.evaluation.evaluator import cumulative_returns

STAY, UP, DOWN, LEFT, RIGHT = range(5)
HAS_KEY = 6

LAYOUT = [
    "0K.G",
    "H...",
    "....",
    "....",
]


def _hand_env(episodes=2, action_perm=None):
    config = GridLevelsConfig(size=4, view_size=3, max_steps=4, wall_density=0.0, num_hazards=1, use_key=True)
    level = level_from_layout(config, LAYOUT, action_perm=action_perm)
    return config, level, GridLevelEnvironment(config, level, task_seeds=[0], episodes=episodes)


def _np(time_step):
    return {k: np.asarray(v)[0] for k, v in time_step.observation.items()}, np.asarray(time_step.reward)[0], \
        int(np.asarray(time_step.step_type)[0]), float(np.asarray(time_step.discount)[0])


def test_params_specs_and_budget():
    dist = GridLevelTasks(size=6, view_size=3, max_steps=12, episodes=3)
    assert dist.horizon == 12 and dist.episodes_per_trial == 3 and dist.budget_unit == "episodes"
    assert dist.params["num_agents"] == 1 and dist.params["episodes"] == 3
    obs_spec = dist.time_step_spec().observation["obs"]
    assert obs_spec.shape == (3, 3, 7) and dist.action_spec().maximum == 4
    task = dist.sample(1, "train", seed=0)[0]
    assert set(task.params) == {"level_seed"}


def test_train_and_test_levels_are_disjoint_by_construction():
    dist = GridLevelTasks()
    train = [t.params["level_seed"] for s in range(3) for t in dist.sample(200, "train", seed=s)]
    test = [t.params["level_seed"] for s in range(3) for t in dist.sample(200, "test", seed=s)]
    assert max(train) < SPLIT_BIT <= min(test) < 2 * SPLIT_BIT
    assert not set(train) & set(test)
    # same task -> same level, always
    a, b = dist.sample(3, "test", seed=5), dist.sample(3, "test", seed=5)
    assert dist.levels(a).equals(dist.levels(b))
    assert dist.levels(a).equals(Levels.stack([generate_level(dist.config, t.params["level_seed"]) for t in a]))


def test_hand_checked_trial_goal_freeze_restart_hazard():
    _, _, env = _hand_env(episodes=2)
    obs, reward, step_type, _ = _np(env.reset())
    view = obs["obs"]
    assert step_type == ts.StepType.FIRST and obs["new_episode"] == 1.0 and reward == 0.0
    assert view[0, :, WALL].all() and view[1, 2, KEY] == 1 and view[2, 1, HAZARD] == 1 and view[1, 1, HAS_KEY] == 0

    # episode 1: right x3 = key, floor, goal (reward 1); then frozen until its 4 steps are used up.
    rewards, flags = [], []
    for _ in range(3):
        obs, reward, step_type, discount = _np(env.step(np.array([RIGHT], np.int32)))
        rewards.append(reward)
        flags.append(obs["new_episode"])
        assert step_type == ts.StepType.MID and discount == 1.0
    assert rewards == [0.0, 0.0, 1.0] and flags == [0.0, 0.0, 0.0]
    assert obs["obs"][1, 1, GOAL] == 1 and obs["obs"][0, 0, HAS_KEY] == 1
    assert obs["prev_action"] == RIGHT and obs["prev_reward"] == 1.0

    # step 4 (frozen): no reward; the episode's steps are used up, so episode 2 starts at the start cell.
    obs, reward, step_type, _ = _np(env.step(np.array([LEFT], np.int32)))
    assert reward == 0.0 and step_type == ts.StepType.MID and obs["new_episode"] == 1.0
    assert obs["obs"][1, 2, KEY] == 1 and obs["obs"][1, 1, HAS_KEY] == 0  # back at the start, key dropped

    # episode 2: down onto the hazard (-1), then frozen: moves are ignored, rewards 0.
    obs, reward, _, _ = _np(env.step(np.array([DOWN], np.int32)))
    assert reward == -1.0 and obs["obs"][1, 1, HAZARD] == 1 and obs["new_episode"] == 0.0
    frozen_view = obs["obs"]
    for _ in range(2):
        obs, reward, step_type, _ = _np(env.step(np.array([RIGHT], np.int32)))
        assert reward == 0.0 and step_type == ts.StepType.MID
        np.testing.assert_array_equal(obs["obs"], frozen_view)
    obs, reward, step_type, discount = _np(env.step(np.array([RIGHT], np.int32)))
    assert step_type == ts.StepType.LAST and discount == 0.0 and obs["new_episode"] == 1.0 and reward == 0.0

    # the next step starts a new trial on the same level
    obs, reward, step_type, _ = _np(env.step(np.array([RIGHT], np.int32)))
    assert step_type == ts.StepType.FIRST and obs["new_episode"] == 1.0 and obs["prev_action"] == 0
    assert obs["obs"][1, 2, KEY] == 1


def test_oracle_tables_follow_the_action_permutation():
    # swap up/down and left/right: the level's action 3 now moves right
    config, level, _ = _hand_env(action_perm=[0, 2, 1, 4, 3])
    actions, next_state, start = oracle_tables(config, level)
    s0 = int(start[0])
    assert s0 == 0 and actions[0, s0] == 3  # right, via the permutation
    assert next_state[0, s0] == 2 * 1 + 1  # (0, 1) with the key just picked up


def test_set_tasks_matches_a_fresh_env():
    dist = GridLevelTasks(size=5, view_size=3, max_steps=5, episodes=2, permute_actions=True)
    a, b = dist.sample(3, "train", seed=0), dist.sample(3, "test", seed=0)
    env, fresh = dist.make_env(a), dist.make_env(b)
    env.reset()
    env.step(np.zeros(3, np.int32))
    env.set_tasks(b)
    x, y = env.reset(), fresh.reset()
    for t in range(7):
        for u, v in zip(np.asarray(x.observation["obs"]), np.asarray(y.observation["obs"]), strict=True):
            np.testing.assert_array_equal(u, v)
        np.testing.assert_array_equal(np.asarray(x.reward), np.asarray(y.reward))
        act = np.array([t % 5, (t + 1) % 5, (t + 3) % 5], np.int32)
        x, y = env.step(act), fresh.step(act)
    with pytest.raises(ValueError, match="batch size"):
        env.set_tasks(b[:2])


def test_oracle_solves_held_out_levels_and_beats_random():
    dist = GridLevelTasks(episodes=3, permute_actions=True)
    tasks = dist.sample(64, "test", seed=0)
    budgets = [1, 2, 3]
    oracle = cumulative_returns(lambda chunk, seed: dist.oracle_policy(chunk), dist, tasks, budgets)
    random = cumulative_returns(
        lambda chunk, seed: random_tf_policy.RandomTFPolicy(dist.time_step_spec(), dist.action_spec()),
        dist, tasks, budgets,
    )
    per_episode_oracle = np.diff(oracle, axis=1, prepend=0.0)
    per_episode_random = np.diff(random, axis=1, prepend=0.0)
    assert (per_episode_oracle >= 1.0 - 1e-6).mean() >= 0.95  # goal reached (no step cost, no hazard)
    assert per_episode_oracle.mean() - per_episode_random.mean() > 0.5
    policy = OracleBaseline().make_policy(dist, tasks[:2])
    assert isinstance(policy, GridOraclePolicy) and isinstance(policy, tf_policy.TFPolicy)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_agents": 5}, "num_agents=5 must be between 1 and 4"),
        ({"num_agents": 2, "partner": "smart"}, "partner='smart' must be one of oracle, random, still"),
        ({"num_agents": 2, "partner_noise": 1.5}, r"partner_noise=1.5 must be a number in \[0, 1\]"),
        ({"num_agents": 2, "mode": "solo"}, "mode='solo'"),
        ({"episodes": 0}, "episodes=0 must be a positive integer"),
        ({"size": 2}, "size=2 must be between 4 and 32"),
        ({"view_size": 4}, "view_size=4 must be odd"),
        ({"wall_density": 0.9}, "wall_density=0.9 must be between 0 and 0.6"),
        ({"use_key": "yes"}, "use_key='yes' must be true or false"),
        ({"size": 4, "wall_density": 0.6, "num_hazards": 5}, "num_agents=1 does not fit"),
        ({"size": 16, "wall_density": 0.6, "num_hazards": 40}, "wall_density=0.6 gives no solvable level"),
    ],
)
def test_bad_params_are_one_line_errors(kwargs, match):
    with pytest.raises(MetaRLInputError, match=match) as err:
        GridLevelTasks(**kwargs)
    assert "\n" not in str(err.value)


def test_compiled_rollout_applies_every_step_to_its_own_episode():
    """Regression: the numpy core's reset and step calls must run in program order inside ``tf.function``.

    Unordered, TF's executor sometimes ran the next episode's reset before the last step of an episode, so the
    last (frozen) step was applied to the new episode: the oracle then paid a step cost more in some episodes.
    The oracle's path is deterministic, so every episode of a trial must score exactly the same; the compiled
    rollout must also match stepping the environment eagerly.
    """
    from metarl_apps.core.env import NEW_EPISODE
    from metarl_apps.evaluation.evaluator import trial_returns

    dist = GridLevelTasks(size=6, max_steps=30, wall_density=0.2, num_hazards=1, step_cost=-0.02, episodes=3)
    tasks = dist.sample(32, split="test", seed=0)
    for _ in range(3):  # the race was nondeterministic
        returns = trial_returns(lambda chunk, seed: dist.oracle_policy(chunk), dist, tasks, 3)
        np.testing.assert_allclose(returns, np.repeat(returns[:, :1], 3, axis=1), atol=1e-6)
        assert (returns > 0).all()
    policy, env = dist.oracle_policy(tasks[:1]), dist.make_env(tasks[:1])
    time_step, state, eager = env.reset(), policy.get_initial_state(1), []
    for _ in range(3 * dist.horizon):
        if float(time_step.observation[NEW_EPISODE][0]) > 0.5:
            eager.append(0.0)
        step = policy.action(time_step, state)
        time_step, state = env.step(step.action), step.state
        eager[-1] += float(time_step.reward[0])
    np.testing.assert_allclose(eager, returns[0], atol=1e-5)


class _ConstantPolicy(tf_policy.TFPolicy):
    def __init__(self, dist, action):
        super().__init__(dist.time_step_spec(), dist.action_spec())
        self._a = action

    def _action(self, time_step, policy_state, seed):
        return policy_step.PolicyStep(tf.fill(tf.shape(time_step.reward), self._a), policy_state, ())


def test_multi_agent_levels_with_scripted_partners():
    """The learner plays agent 0; partners are scripted. A cooperative oracle partner (no noise) reaches the goal
    for the team even when the learner stays put; a still partner never does; partner moves are the same for
    every agent evaluated on the same tasks and env seed; several agents are part of the family's parameters."""
    from metarl_apps.evaluation.evaluator import trial_returns

    stay = lambda dist: lambda chunk, seed: _ConstantPolicy(dist, STAY)  # noqa: E731
    common = dict(size=6, max_steps=30, num_hazards=0, use_key=True, episodes=2, num_agents=2)
    helped = GridLevelTasks(**common, partner="oracle", partner_noise=0.0)
    tasks = helped.sample(16, split="test", seed=1)
    assert helped.params["partner"] == "oracle" and helped.params["num_agents"] == 2
    returns = trial_returns(stay(helped), helped, tasks, 2)
    np.testing.assert_allclose(returns, 1.0)  # team reward of the partner's arrival, every episode
    alone = GridLevelTasks(**common, partner="still")
    np.testing.assert_allclose(trial_returns(stay(alone), alone, tasks, 2), 0.0)
    noisy = GridLevelTasks(**common, partner="oracle", partner_noise=0.5)
    a, b = (trial_returns(stay(noisy), noisy, tasks, 2, env_seed=3) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    # the oracle learner still finds its own way, partners or not
    oracle = trial_returns(lambda chunk, seed: alone.oracle_policy(chunk), alone, tasks, 2)
    np.testing.assert_allclose(oracle, 1.0)
    env = alone.make_env(tasks[:3])
    assert env.core.pos.shape == (3, 2, 2) and env.time_step_spec().observation["obs"].shape == (5, 5, 7)
