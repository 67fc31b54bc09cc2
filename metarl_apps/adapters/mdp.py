"""``mdp.tabular``: random tabular MDPs (the RL² paper / PSRL benchmark).

Per task: mean rewards ``mu[s, a] ~ N(reward_loc, reward_scale²)``, observed rewards ``N(mu[s, a], noise²)``,
transitions ``P[s, a, :] ~ Dirichlet(alpha · 1)``. Each inner episode starts in state ``initial_state`` and
lasts ``horizon`` steps; a trial is ``episodes`` episodes of the same MDP. The agent observes the one-hot
current state, never ``mu`` or ``P``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.env import TrialEnvironment, trial_time_step_spec
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution, positive_int

FAMILY = "mdp.tabular"


class TabularMDPs(TaskDistribution):
    """Random tabular MDPs; task params ``reward_means`` ``[S, A]`` and ``transitions`` ``[S, A, S]``.

    Args:
      states, actions: sizes S and A.
      horizon: steps per episode H.
      episodes: episodes per trial n (the largest adaptation budget).
      reward_loc, reward_scale: prior of the mean rewards, N(loc, scale²).
      reward_noise: standard deviation of observed rewards around their mean.
      dirichlet_alpha: concentration of the flat Dirichlet prior of each transition row.
      initial_state: the state every episode starts in.
    """

    family = FAMILY
    budget_unit = "episodes"

    def __init__(
        self,
        states: int = 10,
        actions: int = 5,
        horizon: int = 10,
        episodes: int = 10,
        reward_loc: float = 1.0,
        reward_scale: float = 1.0,
        reward_noise: float = 1.0,
        dirichlet_alpha: float = 1.0,
        initial_state: int = 0,
    ):
        self.states = positive_int("states", states, FAMILY)
        self.actions = positive_int("actions", actions, FAMILY)
        self._horizon = positive_int("horizon", horizon, FAMILY)
        self.episodes = positive_int("episodes", episodes, FAMILY)
        for name, value in (("reward_scale", reward_scale), ("reward_noise", reward_noise),
                            ("dirichlet_alpha", dirichlet_alpha)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise MetaRLInputError(f"{FAMILY}: parameter {name}={value!r} must be a positive number")
        if isinstance(reward_loc, bool) or not isinstance(reward_loc, (int, float)):
            raise MetaRLInputError(f"{FAMILY}: parameter reward_loc={reward_loc!r} must be a number")
        bad_start = isinstance(initial_state, bool) or not isinstance(initial_state, int)
        if bad_start or not 0 <= initial_state < self.states:
            raise MetaRLInputError(
                f"{FAMILY}: parameter initial_state={initial_state!r} must be an integer in [0, {self.states - 1}]"
            )
        self.reward_loc = float(reward_loc)
        self.reward_scale = float(reward_scale)
        self.reward_noise = float(reward_noise)
        self.dirichlet_alpha = float(dirichlet_alpha)
        self.initial_state = int(initial_state)
        super().__init__(
            states=self.states, actions=self.actions, horizon=self._horizon, episodes=self.episodes,
            reward_loc=self.reward_loc, reward_scale=self.reward_scale, reward_noise=self.reward_noise,
            dirichlet_alpha=self.dirichlet_alpha, initial_state=self.initial_state,
        )

    @property
    def horizon(self) -> int:
        return self._horizon

    @property
    def episodes_per_trial(self) -> int:
        return self.episodes

    def _sample_params(self, stream: np.random.Generator, split: str) -> dict:
        s, a = self.states, self.actions
        mu = stream.normal(self.reward_loc, self.reward_scale, size=(s, a))
        p = stream.dirichlet(np.full(s, self.dirichlet_alpha), size=(s, a))
        return {"reward_means": mu.astype(np.float32), "transitions": p.astype(np.float32)}

    def observation_spec_obs(self):
        return tensor_spec.TensorSpec((self.states,), tf.float32, name="obs")

    def action_spec(self):
        return tensor_spec.BoundedTensorSpec((), tf.int32, minimum=0, maximum=self.actions - 1, name="action")

    def time_step_spec(self):
        return trial_time_step_spec(self.observation_spec_obs(), self.action_spec())

    def oracle_policy(self, tasks: list[Task]):
        """The oracle: greedy by each task's optimal finite-horizon ``Q*[h, s]`` (value iteration on the true
        ``reward_means`` and ``transitions``); its state is the step ``h`` within the episode."""
        from metarl_apps.baselines.mdp import QTablePolicy, value_iteration

        mu = np.stack([t.params["reward_means"] for t in tasks]).astype(np.float32)
        p = np.stack([t.params["transitions"] for t in tasks]).astype(np.float32)
        return QTablePolicy(self, value_iteration(mu, p, self.horizon).numpy(), name="oracle")

    def _make_env(self, tasks: list[Task], seed: int) -> "TabularMDPEnvironment":
        mu = np.stack([t.params["reward_means"] for t in tasks])
        p = np.stack([t.params["transitions"] for t in tasks])
        return TabularMDPEnvironment(self, mu, p, [t.seed for t in tasks], seed=seed)


class TabularMDPEnvironment(TrialEnvironment):
    """Batched tabular MDPs, in-graph. ``reward_means``: ``[B, S, A]``; ``transitions``: ``[B, S, A, S]``."""

    def __init__(self, dist: TabularMDPs, reward_means, transitions, task_seeds, seed: int = 0):
        self._num_states = dist.states
        self._obs_spec = dist.observation_spec_obs()
        self._noise = dist.reward_noise
        self._initial_state = dist.initial_state
        super().__init__(task_seeds, dist.action_spec(), horizon=dist.horizon,
                         episodes_per_trial=dist.episodes, seed=seed)
        arrays = self._bind_task_arrays(self._arrays(reward_means, transitions))
        self._mu, self._cdf = arrays["reward_means"], arrays["cdf"]
        self._state = tf.Variable(tf.fill([self.batch_size], self._initial_state), trainable=False, name="state")

    @staticmethod
    def _arrays(reward_means, transitions) -> dict:
        cdf = np.cumsum(transitions, axis=-1)
        cdf[..., -1] = 1.0  # guard against float round-off
        return {"reward_means": np.asarray(reward_means, np.float32), "cdf": cdf.astype(np.float32)}

    def _task_arrays(self, tasks) -> dict:
        return self._arrays(np.stack([t.params["reward_means"] for t in tasks]),
                            np.stack([t.params["transitions"] for t in tasks]))

    @property
    def state(self) -> tf.Tensor:
        """The current state index of each row ``[B]`` (for oracles and tests)."""
        return tf.identity(self._state)

    def _task_observation_spec(self):
        return self._obs_spec

    def _begin_episode(self, counter):
        self._state.assign(tf.fill([self.batch_size], self._initial_state))
        return tf.one_hot(self._state, self._num_states, dtype=tf.float32)

    def _expected_reward(self, action, h):
        return tf.gather_nd(self._mu, tf.stack([self._state, action], axis=1), batch_dims=1)

    def _transition(self, action, h, counter):
        s = self._state
        sa = tf.stack([s, action], axis=1)
        mu = tf.gather_nd(self._mu, sa, batch_dims=1)  # [B]
        cdf = tf.gather_nd(self._cdf, sa, batch_dims=1)  # [B, S]
        draws = self.uniform(counter, 3)
        noise = tf.sqrt(-2.0 * tf.math.log(1.0 - draws[:, 0])) * tf.cos(2.0 * np.pi * draws[:, 1])
        reward = mu + self._noise * noise
        next_s = tf.reduce_sum(tf.cast(cdf <= draws[:, 2:3], tf.int32), axis=1)
        next_s = tf.minimum(next_s, self._num_states - 1)
        self._state.assign(next_s)
        return reward, tf.one_hot(next_s, self._num_states, dtype=tf.float32)
