"""Per-level specialist (``specialist``): learns small levels, per-task independence, config errors, masks."""

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.adapters.games.connect_four import ConnectFourTasks
from metarl_apps.adapters.games.tasks import GridLevelTasks
from metarl_apps.baselines.classic import OracleBaseline
from metarl_apps.baselines.games import (
    GAME_FAMILIES,
    TRAIN_ENV_SEED_OFFSET,
    SpecialistBaseline,
    SpecialistPolicy,
)
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import BASELINES
from metarl_apps.evaluation.evaluator import cumulative_returns

TINY = {"iterations": 2, "rollouts_per_task": 2, "hidden": [8]}


def _small_levels(episodes=2):
    return GridLevelTasks(size=5, max_steps=15, use_key=False, num_hazards=0, episodes=episodes)


def _returns(baseline, dist, tasks):
    """Per-level return summed over the trial's episodes (the evaluator's way, env seed 3)."""
    return cumulative_returns(lambda chunk, cseed: baseline.make_policy(dist, chunk, cseed), dist, tasks,
                              [dist.episodes_per_trial], env_seed=3)[:, 0]


def test_registered_for_the_game_families_and_trains_at_make_policy():
    baseline = BASELINES.create("specialist")
    assert isinstance(baseline, SpecialistBaseline) and not baseline.needs_fit
    assert baseline.families == GAME_FAMILIES
    assert baseline.config == {"hidden": (64,), "iterations": 300, "rollouts_per_task": 8, "learning_rate": 0.01,
                               "entropy_coef": 0.01, "discount": 0.95, "greedy": True}


def test_specialists_reach_the_goal_on_small_levels():
    # Measured on these 16 levels (2 episodes of 15 steps, goal reward 1): random_legal 0.56, oracle 2.0,
    # specialist 2.0 (over task seeds 0-3: 1.75-2.0; a level fails when 80 x 8 exploring episodes never
    # stumble on its goal).
    dist = _small_levels()
    tasks = dist.sample(16, "test", seed=0)
    specialist = BASELINES.create("specialist", iterations=80, hidden=[32], discount=0.9)
    spec = _returns(specialist, dist, tasks)
    rand = _returns(BASELINES.create("random_legal"), dist, tasks)
    oracle = _returns(OracleBaseline(), dist, tasks)
    np.testing.assert_allclose(oracle, 2.0)
    assert np.mean(spec >= 2.0) >= 0.75, spec  # both episodes reach the goal on most levels
    assert spec.mean() >= 1.5 and spec.mean() >= rand.mean() + 0.9, (spec.mean(), rand.mean())
    assert specialist.train_returns[-1] > specialist.train_returns[0] + 0.3


def test_a_specialist_depends_only_on_its_own_task():
    # Row i's gradient touches only specialist i and Adam is elementwise: a's specialist is the same next to b
    # (row 0) as next to c (row 1), up to float rounding of the batched kernels (measured 1e-7 here; 1e-5
    # against a batch of one), while b's and c's specialists differ by ~0.3.
    dist = _small_levels()
    a, b, c = dist.sample(3, "test", seed=1)
    baseline = SpecialistBaseline(iterations=5, rollouts_per_task=4, hidden=[8], learning_rate=0.05)
    with_b = baseline.train(dist, [a, b], seed=5)
    with_c = baseline.train(dist, [c, a], seed=5)
    for params in ("kernels", "biases"):
        for layer in range(2):
            ref = getattr(with_b, params)[layer].numpy()[0]
            np.testing.assert_allclose(getattr(with_c, params)[layer].numpy()[1], ref, rtol=0, atol=2e-4)
    assert np.abs(with_b.kernels[1].numpy()[0]).max() > 1e-2  # training moved the (zero-initialised) logits
    assert np.abs(with_b.kernels[1].numpy()[1] - with_c.kernels[1].numpy()[0]).max() > 1e-2  # b's != c's


def test_trains_in_an_environment_seeded_apart_from_the_evaluation():
    dist = _small_levels(episodes=1)
    seeds = []
    make_env = dist.make_env

    def recording(tasks, seed=0):
        seeds.append((len(tasks), seed))
        return make_env(tasks, seed)

    dist.make_env = recording
    SpecialistBaseline(**TINY).make_policy(dist, dist.sample(3, "test"), seed=7)
    assert seeds == [(3 * TINY["rollouts_per_task"], 7 + TRAIN_ENV_SEED_OFFSET)]


@pytest.mark.parametrize("config, message", [
    ({"rollouts_per_task": 1}, r"SpecialistBaseline: config rollouts_per_task=1 must be an integer >= 2"),
    ({"iterations": 0}, r"config iterations=0 must be an integer >= 1"),
    ({"hidden": [16, 0]}, r"config hidden=\[16, 0\] must be a list of positive layer sizes"),
    ({"learning_rate": 0}, r"config learning_rate=0 must be a number > 0"),
    ({"entropy_coef": -0.1}, r"config entropy_coef=-0.1 must be a number >= 0"),
    ({"discount": 1.5}, r"config discount=1.5 must be a number in \[0, 1\]"),
    ({"greedy": "yes"}, r"config greedy='yes' must be true or false"),
    ({"epochs": 3}, r"unknown config keys \['epochs'\]; valid keys: hidden, iterations"),
])
def test_bad_config_is_one_clear_line(config, message):
    with pytest.raises(MetaRLInputError, match=message) as err:
        BASELINES.create("specialist", **config)
    assert "\n" not in str(err.value)


def test_refuses_a_non_game_family():
    from metarl_apps.adapters.bandits import BernoulliBandits

    dist = BernoulliBandits(arms=2, pulls=2)
    with pytest.raises(MetaRLInputError, match="does not support family 'bandits.bernoulli'"):
        SpecialistBaseline(**TINY).make_policy(dist, dist.sample(1, "test"))


def test_never_plays_an_illegal_column_in_connect_four():
    dist = ConnectFourTasks(episodes=1, opponents=["biased"])
    tasks = dist.sample(3, "test", seed=0)
    net = SpecialistBaseline(**TINY).train(dist, tasks, seed=0)
    net.biases[-1].assign(tf.constant([[50.0, 0, 0, 0, 0, 0, 0]] * len(tasks)))  # wants column 0, which fills
    for greedy in (True, False):
        policy = SpecialistPolicy(dist, net, keys=[11, 12, 13], greedy=greedy, seed=0)
        env = dist.make_env(tasks, seed=1)
        time_step, state = env.reset(), policy.get_initial_state(len(tasks))
        overruled = 0
        for _ in range(dist.horizon):
            mask = time_step.observation["obs"]["action_mask"].numpy() > 0.5
            step = policy.action(time_step, state)
            action, state = step.action.numpy(), step.state
            assert mask[np.arange(len(tasks)), action].all(), (greedy, mask, action)  # finished game: all legal
            overruled += int((~mask[:, 0]).sum())
            time_step = env.step(step.action)
        assert overruled > 0  # column 0 did fill up and the mask overruled the policy's preference
