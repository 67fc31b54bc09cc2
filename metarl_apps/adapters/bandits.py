"""``bandits.bernoulli``: k-armed Bernoulli bandits, arm means ~ U[0, 1] per task (the RL² paper benchmark).

A trial is ``pulls`` pulls of the same bandit. Each pull is one inner episode of length 1, so an adaptation
budget of K episodes means K pulls. The agent observes nothing but its previous action and reward (the
``"obs"`` entry is a constant zero of shape ``[1]``).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.env import TrialEnvironment, trial_time_step_spec
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution, positive_int

FAMILY = "bandits.bernoulli"
#: prior draws of the Monte-Carlo Gittins reference (:meth:`BernoulliBandits.reference_values`)
GITTINS_REFERENCE_DRAWS = 1_000_000


def _obs_spec():
    return tensor_spec.TensorSpec((1,), tf.float32, name="obs")


class BernoulliBandits(TaskDistribution):
    """k-armed Bernoulli bandits; a task's hidden parameters are its arm means ``params["means"]`` ``[k]``.

    Args:
      arms: number of arms k (>= 2).
      pulls: pulls per trial n (the largest adaptation budget).
    """

    family = FAMILY
    budget_unit = "pulls"

    def __init__(self, arms: int = 5, pulls: int = 10):
        self.arms = positive_int("arms", arms, FAMILY)
        if self.arms < 2:
            raise MetaRLInputError(f"{FAMILY}: parameter arms={arms!r} must be at least 2")
        self.pulls = positive_int("pulls", pulls, FAMILY)
        super().__init__(arms=self.arms, pulls=self.pulls)

    @property
    def horizon(self) -> int:
        return 1

    @property
    def episodes_per_trial(self) -> int:
        return self.pulls

    def reference_values(self) -> dict[str, float]:
        """Expected totals over the task prior (not the test bandits): the oracle (n·k/(k+1), exact) and, where
        the dynamic programme is small enough, the Bayes-optimal policy (exact) — the ceiling of any learner.

        Where the DP is refused (e.g. k=5, n=100) and ``pulls <= MAX_GITTINS_PULLS``, the finite-horizon Gittins
        index policy's expected total instead, by Monte Carlo over ``GITTINS_REFERENCE_DRAWS`` bandits of the
        prior (``gittins_expected`` and its 95 % half-width ``gittins_expected_ci``; ~16 s at k=5, n=100): its
        exact value is within 0.05 % of Bayes-optimal wherever the DP solves, so it estimates the ceiling.
        """
        from metarl_apps.baselines import bandit_values as values

        refs = {"oracle_exact": self.pulls * self.arms / (self.arms + 1)}
        try:
            refs["bayes_optimal_exact"] = values.bayes_optimal_value(self.arms, self.pulls)
        except MetaRLInputError:  # too many belief states for exact DP at this size
            if self.pulls <= values.MAX_GITTINS_PULLS:
                table = values.gittins_index_table(self.pulls, 1.0, 1.0, discount=1.0)  # the baseline's (cached)
                mean, ci = values.index_policy_estimate(self.arms, self.pulls, table, GITTINS_REFERENCE_DRAWS)
                refs["gittins_expected"], refs["gittins_expected_ci"] = mean, ci
        return refs

    def _sample_params(self, stream: np.random.Generator, split: str) -> dict:
        return {"means": stream.uniform(0.0, 1.0, size=self.arms).astype(np.float32)}

    def action_spec(self):
        return tensor_spec.BoundedTensorSpec((), tf.int32, minimum=0, maximum=self.arms - 1, name="action")

    def time_step_spec(self):
        return trial_time_step_spec(_obs_spec(), self.action_spec())

    def oracle_policy(self, tasks: list[Task]):
        """The oracle: a stateless policy pulling each task's arm of highest true mean, every time."""
        from metarl_apps.baselines.bandits import FixedActionPolicy

        best = [int(np.argmax(t.params["means"])) for t in tasks]
        return FixedActionPolicy(self, best, name="oracle")

    def _make_env(self, tasks: list[Task], seed: int) -> "BernoulliBanditEnvironment":
        means = np.stack([t.params["means"] for t in tasks]).astype(np.float32)
        return BernoulliBanditEnvironment(
            means, [t.seed for t in tasks], self.action_spec(), self.pulls, seed=seed
        )


class BernoulliBanditEnvironment(TrialEnvironment):
    """Batched Bernoulli bandits, in-graph. ``means``: ``[B, k]``."""

    def __init__(self, means: np.ndarray, task_seeds, action_spec, pulls: int, seed: int = 0):
        super().__init__(task_seeds, action_spec, horizon=1, episodes_per_trial=pulls, seed=seed)
        self._means = self._bind_task_arrays({"means": np.asarray(means, np.float32)})["means"]

    def _task_arrays(self, tasks) -> dict:
        return {"means": np.stack([t.params["means"] for t in tasks]).astype(np.float32)}

    def _task_observation_spec(self):
        return _obs_spec()

    def _begin_episode(self, counter):
        return tf.zeros([self.batch_size, 1], tf.float32)

    def _expected_reward(self, action, h):
        return tf.gather(self._means, action, batch_dims=1)

    def _transition(self, action, h, counter):
        p = self._expected_reward(action, h)  # [B]
        u = self.uniform(counter, 1)[:, 0]
        reward = tf.cast(u < p, tf.float32)
        return reward, tf.zeros([self.batch_size, 1], tf.float32)
