import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.trajectories import policy_step

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.baselines.classic import RandomBaseline
from metarl_apps.core.task import Task
from metarl_apps.evaluation.evaluator import Curve, cumulative_returns, regret_curve
from metarl_apps.evaluation.runner import episode_returns, rollout
from metarl_apps.evaluation.stats import mean_ci95


def test_episode_returns_by_hand():
    rewards = np.array([[1.0, 2.0, 3.0, 4.0], [0.5, 0.5, 0.5, 0.5]])
    episode = np.array([[0, 0, 1, 1], [0, 1, 2, 3]])
    np.testing.assert_allclose(episode_returns(rewards, episode, 2), [[3.0, 7.0], [0.5, 0.5]])


def test_mean_ci95_by_hand():
    mean, ci = mean_ci95(np.array([1.0, 2.0, 3.0, 4.0]))
    # sd = 1.2910, sem = 0.6455, t(0.975, 3) = 3.1824
    assert mean == 2.5 and ci == pytest.approx(3.18245 * 0.645497, rel=1e-4)
    assert mean_ci95(np.array([5.0])) == (5.0, 0.0)


class _ConstantArm(tf_policy.TFPolicy):
    def __init__(self, dist, arm):
        super().__init__(dist.time_step_spec(), dist.action_spec())
        self._arm = arm

    def _action(self, time_step, policy_state, seed):
        b = tf.shape(time_step.reward)[0]
        return policy_step.PolicyStep(tf.fill([b], self._arm), policy_state, ())


def test_rollout_of_a_scripted_policy_on_deterministic_bandits():
    dist = BernoulliBandits(arms=2, pulls=4)
    tasks = [Task(f"test/0/{i}", dist.family, {"means": np.array([1.0, 0.0], np.float32)}, "test", i)
             for i in range(3)]
    rewards, episode = rollout(_ConstantArm(dist, 0), dist.make_env(tasks), 4)
    np.testing.assert_array_equal(rewards, np.ones((3, 4)))
    np.testing.assert_array_equal(episode, np.tile(np.arange(4), (3, 1)))
    values = cumulative_returns(lambda chunk, seed: _ConstantArm(dist, 1), dist, tasks, [1, 3])
    np.testing.assert_array_equal(values, np.zeros((3, 2)))


def test_cumulative_returns_chunking_does_not_change_results():
    dist = BernoulliBandits(arms=3, pulls=5)
    tasks = dist.sample(10, "test", 0)
    whole = cumulative_returns(lambda c, seed: _ConstantArm(dist, 2), dist, tasks, [1, 5])
    chunked = cumulative_returns(lambda c, seed: _ConstantArm(dist, 2), dist, tasks, [1, 5], chunk_size=3)
    np.testing.assert_array_equal(whole, chunked)


def test_random_baseline_expected_total_is_half_the_pulls():
    dist = BernoulliBandits(arms=5, pulls=10)
    tasks = dist.sample(3000, "test", 0)
    values = cumulative_returns(lambda c, seed: RandomBaseline().make_policy(dist, c, seed), dist, tasks, [10])
    mean, ci = mean_ci95(values[:, 0])
    assert abs(mean - 5.0) < max(ci, 0.03) * 1.5


def test_curve_rows_and_regret():
    values = np.array([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [5.0, 6.0]]])  # 2 seeds, 2 tasks, 2 budgets
    curve = Curve("a", (1, 5), values)
    rows = curve.rows()
    assert rows[0]["mean"] == pytest.approx(2.5) and rows[0]["seeds"] == 2 and rows[0]["n_tasks"] == 2
    assert curve.at(5) == pytest.approx(3.5)
    # Between training seeds: seed 0 scores (1 + 3) / 2 = 2 at K=1, seed 1 (1 + 5) / 2 = 3; the 95% t-interval of
    # {2, 3} has half-width t(0.975, 1) * std / sqrt(2) = 12.706 * 0.7071 / 1.4142 = 6.353.
    assert rows[0]["seed_means"] == pytest.approx([2.0, 3.0])
    assert rows[0]["ci95_seeds"] == pytest.approx(6.3531, abs=1e-3)
    assert "seed_means" not in Curve("b", (1, 5), values[:1]).rows()[0]
    oracle = Curve("oracle", (1, 5), np.array([[[2.0, 4.0], [4.0, 8.0]]]))
    np.testing.assert_allclose(regret_curve(curve, oracle).per_task(), [[1.0, 2.0], [0.0, 3.0]])
