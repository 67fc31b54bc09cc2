"""games.cooperative_pong: adapter contract, determinism, disjoint splits, clear errors, the wrapper's
observation equals the downsampled stock observation, and the baselines / RL² run on it (tiny sizes)."""

import numpy as np
import pytest
from pettingzoo.butterfly import cooperative_pong_v6

from metarl_apps.adapters.checks import check_task_distribution
from metarl_apps.adapters.games import cooperative_pong as cp
from metarl_apps.adapters.games.cooperative_pong import CooperativePongTasks
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import BASELINES, TASK_FAMILIES, make_task_distribution
from metarl_apps.evaluation.runner import rollout

SMALL = dict(max_cycles=12, episodes=2)
# The module ignores this stock warning at import; pytest restores the filters after collection.
pytestmark = pytest.mark.filterwarnings("ignore:.*calling render method without specifying any render mode")


@pytest.mark.parametrize("learner", ["paddle_0", "paddle_1", "random"])
def test_cooperative_pong_conforms(learner):
    check_task_distribution(CooperativePongTasks(**SMALL, learner=learner, pool=40), num_tasks=2)


def test_registered_and_specs():
    dist = TASK_FAMILIES.create("games.cooperative_pong", **SMALL)
    assert isinstance(dist, CooperativePongTasks) and dist.budget_unit == "episodes"
    obs = dist.time_step_spec().observation["obs"]
    assert obs["observation"].shape == (14, 24, 2) and obs["action_mask"].shape == (3,)
    assert dist.horizon == 12 and dist.episodes_per_trial == 2


def test_same_seed_same_levels_and_rollouts():
    dist = CooperativePongTasks(**SMALL)
    tasks = dist.sample(3, "test", seed=4)
    assert tasks == dist.sample(3, "test", seed=4)
    assert not any(a.same_params(b) for a, b in zip(tasks, dist.sample(3, "test", seed=5), strict=True))
    runs = [rollout(BASELINES.create("random_legal").make_policy(dist, tasks, seed=1), dist.make_env(tasks, seed=2),
                    dist.horizon * dist.episodes_per_trial) for _ in range(2)]
    np.testing.assert_array_equal(runs[0][0], runs[1][0])


def test_train_and_test_levels_are_disjoint():
    dist = CooperativePongTasks(**SMALL)
    train, test = dist.sample(200, "train"), dist.sample(200, "test")
    assert not {t.params["opponent_seed"] for t in train} & {t.params["opponent_seed"] for t in test}
    assert all(t.params["opponent_seed"] >= 1 << 30 for t in test)


def test_levels_follow_the_family_ranges():
    dist = CooperativePongTasks(ball_speed=[4, 5], left_paddle_speed=9, bounce_randomness_prob=0.0,
                                cake_paddle_prob=1.0, max_opponent_lag=2, max_opponent_noise=0.1, learner="random")
    params = [t.params for t in dist.sample(40)]
    assert all(4 <= p["ball_speed"] <= 5 and p["left_paddle_speed"] == 9 for p in params)
    assert all(p["cake_paddle"] and not p["bounce_randomness"] for p in params)
    assert {p["opponent_lag"] for p in params} == {0, 1, 2} and max(p["opponent_noise"] for p in params) <= 0.1
    assert {p["learner"] for p in params} == {"paddle_0", "paddle_1"}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ball_speed": [3, 12]}, r"ball_speed=\[3, 12\] must be a number or a \[low, high\] pair with 0 < low"),
        ({"ball_speed": [8, 6]}, r"ball_speed=\[8, 6\] must be"),
        ({"left_paddle_speed": "fast"}, r"left_paddle_speed='fast' must be a number"),
        ({"learner": "paddle_2"}, r"learner='paddle_2' must be one of paddle_0, paddle_1, random"),
        ({"pool": 7}, r"pool=7 must be one of 5, 8, 10, 20, 40"),
        ({"max_opponent_lag": -1}, r"max_opponent_lag=-1 must be an integer in \[0, 50\]"),
        ({"max_opponent_noise": 1.5}, r"max_opponent_noise=1.5 must be a number in \[0, 1\]"),
        ({"cake_paddle_prob": -0.1}, r"cake_paddle_prob=-0.1 must be a number in \[0, 1\]"),
        ({"max_cycles": 0}, r"max_cycles=0 must be a positive integer"),
    ],
)
def test_bad_parameters_give_one_line_errors(kwargs, match):
    with pytest.raises(MetaRLInputError, match=r"^games\.cooperative_pong: parameter " + match) as info:
        make_task_distribution("games.cooperative_pong", **kwargs)
    assert "\n" not in str(info.value)


def test_wrapper_equals_pooled_stock_observation():
    """PooledPong (render_mode=None, draws itself) == block-averaging the stock rgb_array screen, frame by frame;
    rewards and ends are the stock game's."""
    ours, stock = cp.env(pool=20, max_cycles=40), cooperative_pong_v6.env(max_cycles=40, render_mode="rgb_array")
    ours.reset(seed=3)
    stock.reset(seed=3)
    rng = np.random.default_rng(0)
    history = {}
    for n, agent in enumerate(ours.agent_iter()):
        obs, reward, term, trunc, _ = ours.last()
        s_obs, s_reward, s_term, s_trunc, _ = stock.last()
        assert agent == stock.agent_selection
        grey = s_obs[..., 0].astype(np.float64).reshape(14, 20, 24, 20).mean(axis=(1, 3)) / 255.0
        history[n] = grey
        np.testing.assert_allclose(obs["observation"][..., 0], grey, atol=1e-6)
        np.testing.assert_allclose(obs["observation"][..., 1], history[max(n - 2, 0)], atol=1e-6)
        assert (reward, term, trunc) == (s_reward, s_term, s_trunc)
        action = None if term or trunc else int(rng.integers(3))
        ours.step(action)
        stock.step(action)
    assert n > 20


def test_random_legal_rollout_has_finite_pettingzoo_rewards():
    dist = CooperativePongTasks(max_cycles=30, episodes=2, ball_speed=10, learner="random")
    tasks = dist.sample(3, "test")
    rewards, episode = rollout(BASELINES.create("random_legal").make_policy(dist, tasks), dist.make_env(tasks), 60)
    assert rewards.shape == (3, 60) and np.isfinite(rewards).all()
    # Every learner move earns PettingZoo's per-frame reward, the drop penalty, or 0 once the rally is over.
    assert np.isin(np.round(rewards, 5), np.round([0.0, 1.0 / 30, -1.0], 5)).all()
    assert (rewards > 0).any() and set(np.unique(episode)) == {0, 1}


def test_non_adaptive_baseline_runs_on_it():
    dist = CooperativePongTasks(max_cycles=6, episodes=2, pool=40)
    baseline = BASELINES.create("non_adaptive", iterations=1, tasks_per_iteration=2, hidden=[8])
    assert baseline.supports(dist)
    baseline.fit(dist, dist.sample(4, "train"))
    test = dist.sample(2, "test")
    rewards, _ = rollout(baseline.make_policy(dist, test), dist.make_env(test), 12)
    assert np.isfinite(rewards).all()


def test_rl2_meta_trains_and_adapts_on_it():
    from metarl_apps.algorithms.rl2 import RL2

    dist = CooperativePongTasks(max_cycles=6, episodes=2, pool=40)
    learner = RL2(hidden_size=8, embed_sizes=(8,), tasks_per_iteration=2, minibatches=1, epochs=1)
    learner.meta_train(dist, dist.sample(4, "train"), iterations=1, seed=0)
    test = dist.sample(2, "test")
    rewards, _ = rollout(learner.adapt(test, 2), dist.make_env(test), 12)
    assert np.isfinite(rewards).all()
