"""``nav.point2d``: 2D point navigation to a hidden goal (the MAML paper's continuous-control benchmark).

Per task: a goal ``g ~ U[-goal_range, goal_range]²`` (default 0.5, as Finn et al. 2017 and garage's
``PointEnv``). Every inner episode starts at the origin and lasts ``horizon`` steps (default 100). The action is
a 2D displacement clipped to ``[-max_step, max_step]²`` (default 0.1); the reward of a step is minus the
distance to the goal *after* the move. The agent observes its position ``obs`` ``[2]``, never the goal. A trial
is ``episodes`` episodes on the same goal (the adaptation budget is counted in episodes).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step

from metarl_apps.core.env import OBS, TrialEnvironment, trial_time_step_spec
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution, positive_int

FAMILY = "nav.point2d"


def _positive_float(name: str, value, family: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise MetaRLInputError(f"{family}: parameter {name}={value!r} must be a positive number")
    return float(value)


class PointNavigation(TaskDistribution):
    """2D point navigation; a task's hidden parameter is its goal ``params["goal"]`` ``[2]``.

    Args:
      horizon: steps per episode.
      episodes: episodes per trial (the largest adaptation budget).
      goal_range: goals are uniform in ``[-goal_range, goal_range]²``.
      max_step: actions are clipped to ``[-max_step, max_step]²``.
    """

    family = FAMILY
    budget_unit = "episodes"

    def __init__(self, horizon: int = 100, episodes: int = 2, goal_range: float = 0.5, max_step: float = 0.1):
        self._horizon = positive_int("horizon", horizon, FAMILY)
        self.episodes = positive_int("episodes", episodes, FAMILY)
        self.goal_range = _positive_float("goal_range", goal_range, FAMILY)
        self.max_step = _positive_float("max_step", max_step, FAMILY)
        super().__init__(horizon=self._horizon, episodes=self.episodes, goal_range=self.goal_range,
                         max_step=self.max_step)

    @property
    def horizon(self) -> int:
        return self._horizon

    @property
    def episodes_per_trial(self) -> int:
        return self.episodes

    def _sample_params(self, stream: np.random.Generator, split: str) -> dict:
        return {"goal": stream.uniform(-self.goal_range, self.goal_range, size=2).astype(np.float32)}

    def observation_spec_obs(self):
        return tensor_spec.TensorSpec((2,), tf.float32, name="obs")

    def action_spec(self):
        return tensor_spec.BoundedTensorSpec((2,), tf.float32, minimum=-self.max_step, maximum=self.max_step,
                                             name="action")

    def time_step_spec(self):
        return trial_time_step_spec(self.observation_spec_obs(), self.action_spec())

    def oracle_policy(self, tasks: list[Task]) -> tf_policy.TFPolicy:
        """The oracle: a straight line to each task's goal at full speed (then it stays on the goal)."""
        goals = np.stack([t.params["goal"] for t in tasks]).astype(np.float32)
        return StraightToGoalPolicy(self, goals)

    def _make_env(self, tasks: list[Task], seed: int) -> "PointNavigationEnvironment":
        goals = np.stack([t.params["goal"] for t in tasks]).astype(np.float32)
        return PointNavigationEnvironment(self, goals, [t.seed for t in tasks], seed=seed)


class PointNavigationEnvironment(TrialEnvironment):
    """Batched point navigation, in-graph (deterministic dynamics). ``goals``: ``[B, 2]``."""

    def __init__(self, dist: PointNavigation, goals: np.ndarray, task_seeds, seed: int = 0):
        self._obs_spec = dist.observation_spec_obs()
        self._max_step = dist.max_step
        super().__init__(task_seeds, dist.action_spec(), horizon=dist.horizon, episodes_per_trial=dist.episodes,
                         seed=seed)
        self._goals = self._bind_task_arrays({"goal": np.asarray(goals, np.float32)})["goal"]
        self._pos = tf.Variable(tf.zeros([self.batch_size, 2]), trainable=False, name="position")

    def _task_arrays(self, tasks) -> dict:
        return {"goal": np.stack([t.params["goal"] for t in tasks]).astype(np.float32)}

    def _task_observation_spec(self):
        return self._obs_spec

    def _begin_episode(self, counter):
        self._pos.assign(tf.zeros([self.batch_size, 2]))
        return tf.identity(self._pos)

    def _transition(self, action, h, counter):
        step = tf.clip_by_value(tf.cast(action, tf.float32), -self._max_step, self._max_step)
        pos = self._pos + step
        self._pos.assign(pos)
        reward = -tf.norm(pos - self._goals, axis=-1)
        return reward, pos


class StraightToGoalPolicy(tf_policy.TFPolicy):
    """Moves each row straight towards its goal ``[B, 2]`` by at most ``max_step`` per coordinate."""

    def __init__(self, dist: PointNavigation, goals: np.ndarray):
        super().__init__(dist.time_step_spec(), dist.action_spec(), name="oracle")
        self._goals = tf.constant(goals, tf.float32)
        self._max_step = dist.max_step

    def _action(self, time_step, policy_state, seed):
        delta = self._goals - time_step.observation[OBS]
        # scale the whole displacement so that the larger coordinate is at most max_step (straight line)
        scale = tf.minimum(1.0, self._max_step / (tf.reduce_max(tf.abs(delta), axis=-1, keepdims=True) + 1e-12))
        return policy_step.PolicyStep(delta * scale, policy_state, ())

    def _distribution(self, time_step, policy_state):
        raise NotImplementedError("the oracle is deterministic; use action()")
