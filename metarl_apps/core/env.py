"""Batched, in-graph trial environments: the environment contract every task family implements.

One tf-agents *episode* of these environments is one **trial**: ``episodes_per_trial`` inner episodes of the
same task, each ``horizon`` steps long. Row ``i`` of the batch is ``tasks[i]``. The observation is a dict:

* ``"obs"`` — what the task shows the agent (family specific, never its hidden parameters);
* ``"prev_action"`` — the action taken at the previous step (zeros at the first step of a trial);
* ``"prev_reward"`` — the reward of that action (equal to ``time_step.reward``; repeated here because
  tf-agents networks see only observations);
* ``"new_episode"`` — 1.0 on the first step of each inner episode (and on the trial's ``LAST`` step, which
  closes the last episode), else 0.0.

So ``(obs, prev_action, prev_reward, new_episode)`` is exactly the RL² input. The trial ends with
``StepType.LAST`` (discount 0); the next ``step`` starts a new trial (tf-agents auto-reset semantics).
Inner-episode boundaries keep discount 1, so returns flow across the episodes of a trial, as the RL²
objective needs.

Randomness comes from :mod:`metarl_apps.core.rng`, keyed per task and per trial, so a task's outcomes do not
depend on which other tasks share its batch.

Methods are plain TF code, not ``tf.function``: the runner compiles whole rollouts in one place.
"""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np
import tensorflow as tf
from tf_agents.environments import tf_environment
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from metarl_apps.core import rng

OBS = "obs"
PREV_ACTION = "prev_action"
PREV_REWARD = "prev_reward"
NEW_EPISODE = "new_episode"

# keys of ``observation["obs"]`` in slate (recommender) families: every candidate document's features
# ``[num_docs, F]``, the slate position the user chose last (``slate_size`` = none), the document id chosen last
# (``num_docs`` = none) and the last consumed time. Defined here so baselines and learners need not import
# the RecSim NG adapters.
DOC_FEATURES = "doc_features"
CHOICE = "choice"
CLICKED = "clicked"
CONSUMED = "consumed"


def trial_observation_spec(task_obs_spec, action_spec) -> dict:
    """The observation spec of a trial environment built from a task observation spec and action spec."""
    prev_action = tensor_spec.BoundedTensorSpec(
        shape=action_spec.shape,
        dtype=action_spec.dtype,
        minimum=action_spec.minimum,
        maximum=action_spec.maximum,
        name=PREV_ACTION,
    )
    return {
        OBS: task_obs_spec,
        PREV_ACTION: prev_action,
        PREV_REWARD: tensor_spec.TensorSpec((), tf.float32, name=PREV_REWARD),
        NEW_EPISODE: tensor_spec.TensorSpec((), tf.float32, name=NEW_EPISODE),
    }


def trial_time_step_spec(task_obs_spec, action_spec) -> ts.TimeStep:
    return ts.time_step_spec(
        trial_observation_spec(task_obs_spec, action_spec),
        reward_spec=tensor_spec.TensorSpec((), tf.float32, name="reward"),
    )


class TrialEnvironment(tf_environment.TFEnvironment, abc.ABC):
    """Base class of the in-graph trial environments (fixed ``horizon``; all rows step in lock-step).

    Subclasses implement three hooks on ``[B, ...]`` tensors:

    * ``_task_observation_spec()``;
    * ``_begin_episode(counter) -> obs``: start an inner episode in every row;
    * ``_transition(action, h, counter) -> (reward [B], obs)``: apply ``action`` at inner step ``h``.

    ``counter`` is a per-trial, per-step integer to pass to :meth:`uniform` / :meth:`normal` for randomness.

    **Re-tasking.** Meta-training cycles through a large training population with one compiled graph: a
    subclass that keeps its task parameters in variables created by :meth:`_bind_task_arrays` and implements
    :meth:`_task_arrays` supports :meth:`set_tasks`, which swaps in a new batch of tasks (same batch size)
    without retracing.
    """

    def __init__(
        self,
        task_seeds: Sequence[int],
        action_spec,
        horizon: int,
        episodes_per_trial: int,
        seed: int = 0,
    ):
        batch_size = len(task_seeds)
        self.horizon = int(horizon)
        self.episodes_per_trial = int(episodes_per_trial)
        self.trial_length = self.horizon * self.episodes_per_trial
        self._env_seed = int(seed)
        self._keys = tf.Variable(self._key_array(task_seeds), dtype=tf.uint64, trainable=False, name="keys")
        spec = trial_time_step_spec(self._task_observation_spec(), action_spec)
        super().__init__(spec, action_spec, batch_size=batch_size)
        self._t = tf.Variable(0, dtype=tf.int32, trainable=False, name="t")
        self._trial = tf.Variable(-1, dtype=tf.int64, trainable=False, name="trial")
        self._started = tf.Variable(False, trainable=False, name="started")
        self._ts_vars = tf.nest.map_structure(
            lambda s: tf.Variable(tf.zeros([batch_size] + s.shape.as_list(), s.dtype), trainable=False),
            spec,
        )
        self._numpy_clock = tf.Variable(0, dtype=tf.int64, trainable=False, name="numpy_clock")

    # ----------------------------------------------------------------- hooks
    @abc.abstractmethod
    def _task_observation_spec(self):
        """Spec of ``observation["obs"]`` (no batch dimension)."""

    @abc.abstractmethod
    def _begin_episode(self, counter: tf.Tensor):
        """Start an inner episode in all rows; return the first ``obs`` ``[B, ...]``."""

    @abc.abstractmethod
    def _transition(self, action: tf.Tensor, h: tf.Tensor, counter: tf.Tensor):
        """Apply ``action`` ``[B, ...]`` at inner step ``h``; return ``(reward [B] float32, obs [B, ...])``."""

    def _expected_reward(self, action: tf.Tensor, h: tf.Tensor):
        """``[B]`` float32 mean of the reward ``_transition(action, h, ...)`` would draw in the rows' current
        state, given the task (families with stochastic rewards of known mean); ``None`` = not defined."""
        return None

    @property
    def supports_expected_reward(self) -> bool:
        return type(self)._expected_reward is not TrialEnvironment._expected_reward

    def expected_reward(self, action) -> tf.Tensor:
        """``[B]`` float32: the mean, given each row's task and current state, of the reward the next
        ``step(action)`` will draw (the draw's noise integrated out). Call it *before* that ``step``, inside a
        trial. Training-time privileged information (RL²'s ``expected_rewards``); the policy never sees it."""
        if not self.supports_expected_reward:
            raise NotImplementedError(f"{type(self).__name__} does not define expected rewards")
        action = tf.convert_to_tensor(action, dtype=self.action_spec().dtype)
        return tf.cast(self._expected_reward(action, tf.math.floormod(self._t, self.horizon)), tf.float32)

    # ------------------------------------------------------------ re-tasking
    def _key_array(self, task_seeds) -> np.ndarray:
        return np.asarray([rng.task_key("env", s, self._env_seed) for s in task_seeds], dtype=np.uint64)

    def _task_arrays(self, tasks) -> dict:
        """``{name: [B, ...] array}`` of the tasks' parameters (subclasses supporting ``set_tasks``)."""
        raise NotImplementedError(f"{type(self).__name__} does not support set_tasks")

    def _bind_task_arrays(self, arrays: dict) -> dict:
        """Create one variable per task array; returns ``{name: tf.Variable}``."""
        self._task_vars = {k: tf.Variable(v, trainable=False, name=k) for k, v in arrays.items()}
        return self._task_vars

    @property
    def supports_set_tasks(self) -> bool:
        return hasattr(self, "_task_vars")

    def set_tasks(self, tasks) -> None:
        """Swap in new tasks (same count); the next ``reset`` starts a trial on them. Eager, between trials."""
        tasks = list(tasks)
        if len(tasks) != self.batch_size:
            raise ValueError(f"set_tasks: got {len(tasks)} tasks for an environment of batch size {self.batch_size}")
        if not self.supports_set_tasks:
            raise NotImplementedError(f"{type(self).__name__} does not support set_tasks")
        for name, value in self._task_arrays(tasks).items():
            self._task_vars[name].assign(value)
        self._keys.assign(self._key_array([t.seed for t in tasks]))
        self._started.assign(False)

    def rewind(self) -> None:
        """Number trials from the start again: the next trial draws the same random numbers as the first trial
        after construction did (common random numbers, e.g. to compare checkpoints on the same tasks)."""
        self._trial.assign(-1)
        self._started.assign(False)

    # -------------------------------------------------------------- helpers
    def uniform(self, counter: tf.Tensor, num: int) -> tf.Tensor:
        """``[B, num]`` uniforms of this trial step, independent per row (task)."""
        return rng.row_uniform(self._keys, counter, num)

    def normal(self, counter: tf.Tensor, num: int) -> tf.Tensor:
        return rng.row_normal(self._keys, counter, num)

    def numpy_call(self, fn, inputs: list, dtypes: list, name: str) -> list:
        """Call a Python simulator ``fn(*inputs)`` through ``tf.numpy_function``, after every earlier call.

        Subclasses stepping Python state (games, anything not written in TF) must use this, not a bare
        ``tf.numpy_function``: inside a ``tf.function`` numpy functions are not ordered among themselves
        (automatic control dependencies order only ops that share a resource) and a begin-episode call has no
        data input, so TF's executor may run the next episode's reset *before* the last transition of the
        episode (seen on gridlevels: the last step was then applied to the new episode, nondeterministically).
        A clock variable read before and written after each call makes the calls sequential.
        """
        def call(clock, *args):
            return [np.int64(clock + 1), *fn(*args)]

        out = tf.numpy_function(call, [self._numpy_clock.read_value(), *inputs], [tf.int64, *dtypes], name=name)
        with tf.control_dependencies([self._numpy_clock.assign(tf.reshape(out[0], []))]):
            return [tf.identity(x) for x in out[1:]]

    def _counter(self, slot: int) -> tf.Tensor:
        # Two slots per step: 0 = begin-episode draws, 1 = transition draws.
        per_trial = tf.cast(2 * (self.trial_length + 1), tf.int64)
        return self._trial * per_trial + tf.cast(2 * self._t + slot, tf.int64)

    def _zeros_action(self):
        s = self.action_spec()
        return tf.zeros([self.batch_size] + s.shape.as_list(), s.dtype)

    def _save(self, time_step: ts.TimeStep) -> ts.TimeStep:
        tf.nest.map_structure(lambda v, x: v.assign(x), self._ts_vars, time_step)
        return time_step

    # ------------------------------------------------------ tf-agents API
    def _current_time_step(self) -> ts.TimeStep:
        return tf.cond(
            self._started,
            lambda: tf.nest.map_structure(tf.identity, self._ts_vars),
            self._reset,
        )

    def _reset(self) -> ts.TimeStep:
        self._trial.assign_add(1)
        self._t.assign(0)
        self._started.assign(True)
        obs = self._begin_episode(self._counter(0))
        b = self.batch_size
        observation = {OBS: obs, PREV_ACTION: self._zeros_action(), PREV_REWARD: tf.zeros([b], tf.float32),
                       NEW_EPISODE: tf.ones([b], tf.float32)}
        return self._save(ts.restart(observation, batch_size=b, reward_spec=self.time_step_spec().reward))

    def _step(self, action) -> ts.TimeStep:
        action = tf.convert_to_tensor(action, dtype=self.action_spec().dtype)
        done = tf.logical_or(tf.logical_not(self._started), self._t >= self.trial_length)
        return tf.cond(done, self._reset, lambda: self._advance(action))

    def _advance(self, action) -> ts.TimeStep:
        b = self.batch_size
        h = tf.math.floormod(self._t, self.horizon)
        reward, obs = self._transition(action, h, self._counter(1))
        self._t.assign_add(1)
        episode_over = tf.equal(tf.math.floormod(self._t, self.horizon), 0)
        trial_over = self._t >= self.trial_length
        obs = tf.cond(
            tf.logical_and(episode_over, tf.logical_not(trial_over)),
            lambda: self._begin_episode(self._counter(0)),
            lambda: obs,
        )
        new_episode = tf.fill([b], tf.cast(episode_over, tf.float32))
        reward = tf.cast(reward, tf.float32)
        observation = {OBS: obs, PREV_ACTION: action, PREV_REWARD: reward, NEW_EPISODE: new_episode}
        step_type = tf.fill([b], tf.where(trial_over, ts.StepType.LAST, ts.StepType.MID))
        discount = tf.fill([b], tf.where(trial_over, 0.0, 1.0))
        return self._save(ts.TimeStep(step_type, reward, discount, observation))
