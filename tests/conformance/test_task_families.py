"""Every registered task family passes the adapter contract; broken adapters are caught."""

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.adapters.bandits import BernoulliBanditEnvironment, BernoulliBandits
from metarl_apps.adapters.checks import check_task_distribution
from metarl_apps.core.errors import ConformanceError
from metarl_apps.core.registry import TASK_FAMILIES


@pytest.mark.parametrize("family", TASK_FAMILIES.names())
def test_registered_family_conforms(family):
    check_task_distribution(TASK_FAMILIES.create(family))


def test_small_variants_conform():
    check_task_distribution(BernoulliBandits(arms=2, pulls=1))
    check_task_distribution(TASK_FAMILIES.create("mdp.tabular", states=3, actions=2, horizon=4, episodes=3))


class _GlobalNoiseEnv(BernoulliBanditEnvironment):
    """Broken: draws one random stream for the whole batch, so a task's rewards depend on its batch."""

    def _transition(self, action, h, counter):
        p = tf.gather(self._means, action, batch_dims=1)
        u = tf.random.stateless_uniform([self.batch_size], seed=tf.stack([counter, counter]))
        return tf.cast(u < p, tf.float32), tf.zeros([self.batch_size, 1])


class _BatchDependentBandits(BernoulliBandits):
    def _make_env(self, tasks, seed):
        means = np.stack([t.params["means"] for t in tasks])
        return _GlobalNoiseEnv(means, [t.seed for t in tasks], self.action_spec(), self.pulls, seed=seed)


class _OverlappingSplits(BernoulliBandits):
    def _sample_params(self, stream, split):
        return {"means": np.full(self.arms, 0.5, np.float32)}


class _Nondeterministic(BernoulliBandits):
    def _sample_params(self, stream, split):
        return {"means": np.random.uniform(size=self.arms).astype(np.float32)}


class _WrongBatch(BernoulliBandits):
    def _make_env(self, tasks, seed):
        return super()._make_env(tasks[:1], seed)


class _WrongSpec(BernoulliBandits):
    """Broken: declares a 2-wide observation its environment does not produce."""

    def time_step_spec(self):
        from tf_agents.specs import tensor_spec

        from metarl_apps.core.env import trial_time_step_spec

        return trial_time_step_spec(tensor_spec.TensorSpec((2,), tf.float32), self.action_spec())


@pytest.mark.parametrize(
    "broken, match",
    [
        (_BatchDependentBandits(arms=3, pulls=20), "batched == alone"),
        (_OverlappingSplits(), "seeds matter|disjoint splits"),
        (_Nondeterministic(), "same seed -> same tasks"),
        (_WrongBatch(), "batch = tasks"),
        (_WrongSpec(), "specs"),
    ],
)
def test_broken_adapters_are_caught(broken, match):
    with pytest.raises(ConformanceError, match=match):
        check_task_distribution(broken)


def test_non_distribution_is_refused():
    with pytest.raises(ConformanceError, match="expected a TaskDistribution"):
        check_task_distribution(object())
