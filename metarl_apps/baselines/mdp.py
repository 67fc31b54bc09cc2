"""Tabular-MDP baselines for ``mdp.tabular``: epsilon-greedy Q-learning, PSRL and certainty-equivalent planning;
the oracle's policy.

All policies act on a batch of tasks with an explicit state (see
:class:`metarl_apps.baselines.bandits.StatefulPolicy`). The environment contract matters for the updates:
``time_step.reward`` is the reward of ``observation["prev_action"]`` taken in the state the policy saw at the
previous step (kept in the state as ``prev_state``); ``observation["obs"]`` is the one-hot *current* state,
except that when ``new_episode == 1`` the previous step ended an inner episode and ``obs`` is already the next
episode's start state: that step is terminal and its next state is not observed.
"""

from __future__ import annotations

import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from metarl_apps.baselines.base import (
    ConfiguredBaseline,
    StatefulPolicy,
    argmax_mask,
    check_number,
    random_choice,
)
from metarl_apps.core.agent import is_first
from metarl_apps.core.env import NEW_EPISODE, OBS, PREV_ACTION
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution

FAMILY = "mdp.tabular"


def value_iteration(reward_means, transitions, horizon: int) -> tf.Tensor:
    """Finite-horizon optimal Q-values, batched.

    Args:
      reward_means: ``[B, S, A]`` mean rewards.
      transitions: ``[B, S, A, S]`` transition probabilities.
      horizon: steps per episode H.

    Returns:
      ``[B, H, S, A]`` float32: ``Q[h, s, a]`` = expected reward of taking ``a`` in ``s`` at step ``h`` and
      acting optimally for the remaining ``H - h - 1`` steps (``Q[H-1] = reward_means``).
    """
    mu = tf.convert_to_tensor(reward_means, tf.float32)
    p = tf.convert_to_tensor(transitions, tf.float32)
    v = tf.zeros_like(mu[..., 0])  # [B, S]
    qs = []
    for _ in range(int(horizon)):
        q = mu + tf.einsum("bsat,bt->bsa", p, v)
        qs.append(q)
        v = tf.reduce_max(q, axis=-1)
    return tf.stack(qs[::-1], axis=1)


def _state_index(time_step: ts.TimeStep) -> tf.Tensor:
    return tf.argmax(time_step.observation[OBS], axis=-1, output_type=tf.int32)


def _new_episode(time_step: ts.TimeStep) -> tf.Tensor:
    return time_step.observation[NEW_EPISODE] > 0.5


def _inner_step(time_step: ts.TimeStep, h: tf.Tensor, horizon: int) -> tf.Tensor:
    """The inner-episode step of the current time step: 0 when a new episode starts, else ``h + 1``."""
    return tf.where(_new_episode(time_step), tf.zeros_like(h), tf.minimum(h + 1, horizon - 1))


def _at(table: tf.Tensor, h: tf.Tensor, s: tf.Tensor) -> tf.Tensor:
    """``table[b, h_b, s_b, :]`` for ``table`` ``[B, H, S, A]``: ``[B, A]``."""
    return tf.gather_nd(table, tf.stack([h, s], axis=1), batch_dims=1)


class QTablePolicy(tf_policy.TFPolicy):
    """Acts greedily by fixed ``q`` ``[B, H, S, A]`` at ``q[h, s]`` (the oracle: ``q`` = Q* of each task).

    State: ``"h"`` ``[B]`` int32, the step within the inner episode (0 where ``new_episode == 1``).
    """

    def __init__(self, dist: TaskDistribution, q, name: str = "oracle"):
        spec = {"h": tensor_spec.TensorSpec((), tf.int32, name="h")}
        super().__init__(dist.time_step_spec(), dist.action_spec(), policy_state_spec=spec,
                         automatic_state_reset=False, name=name)
        self._q = tf.constant(q, tf.float32)
        self._horizon = int(dist.horizon)

    @property
    def q_values(self) -> tf.Tensor:
        """The ``[B, H, S, A]`` Q-table the policy acts by."""
        return self._q

    def _action(self, time_step, policy_state, seed):
        h = _inner_step(time_step, policy_state["h"], self._horizon)
        action = tf.argmax(_at(self._q, h, _state_index(time_step)), axis=-1, output_type=tf.int32)
        return policy_step.PolicyStep(action, {"h": h}, ())


class QLearningPolicy(StatefulPolicy):
    """Epsilon-greedy tabular Q-learning, one table per row.

    ``Q`` is stationary, ``[S, A]``, not indexed by the inner step ``h``: with ``H * episodes`` (100 by
    default) transitions per task, an ``[H, S, A]`` table would see ten times fewer updates per entry. The
    update for ``(s, a, r, s')`` runs when ``s'`` arrives: target ``r + gamma max_a' Q[s', a']``, or ``r`` when
    the step ended an inner episode (``new_episode == 1``).

    State: ``"q"`` ``[B, S, A]`` (``initial_q`` at trial starts) and ``"prev_state"`` ``[B]`` int32.
    """

    def __init__(self, dist, seed, epsilon, learning_rate, initial_q, gamma, name="q_learning"):
        s, a = int(dist.states), int(dist.actions)
        stats = {"q": tensor_spec.TensorSpec((s, a), tf.float32, name="q"),
                 "prev_state": tensor_spec.TensorSpec((), tf.int32, name="prev_state")}
        super().__init__(dist, seed, stats, name)
        self._s, self._a = s, a
        self._epsilon, self._lr = float(epsilon), float(learning_rate)
        self._initial_q, self._gamma = float(initial_q), float(gamma)

    def _initial_stats(self, batch_size):
        outer = [] if batch_size is None else [batch_size]
        return {"q": tf.fill(outer + [self._s, self._a], self._initial_q), "prev_state": tf.zeros(outer, tf.int32)}

    def _action(self, time_step, policy_state, seed):
        del seed
        s_now = _state_index(time_step)
        q = policy_state["q"]
        rows = tf.range(tf.shape(s_now)[0])
        prev = tf.stack([rows, policy_state["prev_state"], tf.cast(time_step.observation[PREV_ACTION], tf.int32)], 1)
        bootstrap = tf.reduce_max(tf.gather(q, s_now, batch_dims=1), axis=-1)
        terminal = tf.cast(_new_episode(time_step), tf.float32)
        target = time_step.reward + self._gamma * (1.0 - terminal) * bootstrap
        learn = tf.cast(tf.logical_not(is_first(time_step)), tf.float32)
        delta = learn * self._lr * (target - tf.gather_nd(q, prev))
        q = tf.tensor_scatter_nd_add(q, prev, delta)
        stats = {**self._reset_where_first(time_step, {"q": q}), "prev_state": s_now}
        q_now = tf.gather(stats["q"], s_now, batch_dims=1)  # [B, A]
        greedy = random_choice(argmax_mask(q_now), self._uniform(policy_state, tf.shape(q_now), 0))
        explore = random_choice(tf.ones_like(q_now, tf.bool), self._uniform(policy_state, tf.shape(q_now), 1))
        coin = self._uniform(policy_state, tf.shape(s_now), 2)
        action = tf.where(coin < self._epsilon, explore, greedy)
        return policy_step.PolicyStep(action, self._next_state(policy_state, stats), ())


class _PosteriorPolicy(StatefulPolicy):
    """Conjugate posterior of a tabular MDP kept per row, for the model-based baselines below.

    Mean rewards: Normal prior ``N(reward_loc, reward_scale²)``, known noise ``reward_noise`` (Normal-Normal).
    Transition rows: ``Dirichlet(dirichlet_alpha + counts)``. The last transition of an episode has no observed
    next state: it updates the reward posterior only. Subclasses choose the ``[B, H, S, A]`` Q-table to act by
    (:meth:`_next_q`), greedily at ``Q[h, s]``.

    State: ``"visits"``, ``"reward_sum"`` ``[B, S, A]``; ``"transition_counts"`` ``[B, S, A, S]``;
    ``"q"`` ``[B, H, S, A]``; ``"h"`` and ``"prev_state"`` ``[B]`` int32.
    """

    def __init__(self, dist, seed, name):
        s, a, h = int(dist.states), int(dist.actions), int(dist.horizon)
        f32 = tf.float32
        stats = {
            "visits": tensor_spec.TensorSpec((s, a), f32, name="visits"),
            "reward_sum": tensor_spec.TensorSpec((s, a), f32, name="reward_sum"),
            "transition_counts": tensor_spec.TensorSpec((s, a, s), f32, name="transition_counts"),
            "q": tensor_spec.TensorSpec((h, s, a), f32, name="q"),
            "h": tensor_spec.TensorSpec((), tf.int32, name="h"),
            "prev_state": tensor_spec.TensorSpec((), tf.int32, name="prev_state"),
        }
        super().__init__(dist, seed, stats, name)
        self._s, self._a, self._h = s, a, h
        self._loc, self._prior_prec = float(dist.reward_loc), 1.0 / float(dist.reward_scale) ** 2
        self._noise_prec = 1.0 / float(dist.reward_noise) ** 2
        self._alpha = float(dist.dirichlet_alpha)

    def reward_posterior(self, stats: dict) -> tuple[tf.Tensor, tf.Tensor]:
        """Posterior mean and precision of every mean reward, ``[B, S, A]`` each."""
        prec = self._prior_prec + self._noise_prec * stats["visits"]
        return (self._prior_prec * self._loc + self._noise_prec * stats["reward_sum"]) / prec, prec

    def _next_q(self, stats: dict, new_episode: tf.Tensor, policy_state) -> tf.Tensor:
        raise NotImplementedError

    @staticmethod
    def _new_at_episode_starts(stats: dict, new_episode: tf.Tensor, make_q) -> tf.Tensor:
        """``make_q()`` in the rows starting an inner episode, the kept ``stats["q"]`` elsewhere (``make_q`` runs
        only when some row starts one)."""
        return tf.cond(
            tf.reduce_any(new_episode),
            lambda: tf.where(new_episode[:, None, None, None], make_q(), stats["q"]),
            lambda: stats["q"],
        )

    def _action(self, time_step, policy_state, seed):
        del seed
        s_now = _state_index(time_step)
        new_ep = _new_episode(time_step)
        rows = tf.range(tf.shape(s_now)[0])
        a_prev = tf.cast(time_step.observation[PREV_ACTION], tf.int32)
        learn = tf.cast(tf.logical_not(is_first(time_step)), tf.float32)
        sa = tf.stack([rows, policy_state["prev_state"], a_prev], 1)
        sas = tf.stack([rows, policy_state["prev_state"], a_prev, s_now], 1)
        observed_next = learn * (1.0 - tf.cast(new_ep, tf.float32))
        stats = {
            "visits": tf.tensor_scatter_nd_add(policy_state["visits"], sa, learn),
            "reward_sum": tf.tensor_scatter_nd_add(policy_state["reward_sum"], sa, learn * time_step.reward),
            "transition_counts": tf.tensor_scatter_nd_add(policy_state["transition_counts"], sas, observed_next),
            "q": policy_state["q"],
        }
        stats = self._reset_where_first(time_step, stats)
        stats["h"] = _inner_step(time_step, policy_state["h"], self._h)  # 0 on trial starts (new_episode == 1)
        stats["prev_state"] = s_now
        stats["q"] = self._next_q(stats, new_ep, policy_state)
        q_now = _at(stats["q"], stats["h"], s_now)
        action = random_choice(argmax_mask(q_now), self._uniform(policy_state, tf.shape(q_now), 0))
        return policy_step.PolicyStep(action, self._next_state(policy_state, stats), ())


class PSRLPolicy(_PosteriorPolicy):
    """Posterior sampling for RL (Osband, Russo & Van Roy 2013), with the family's conjugate priors.

    At every inner-episode start (``new_episode == 1``) each row samples one MDP from its posterior
    (:class:`_PosteriorPolicy`; transition rows as normalised Gamma draws), solves it by finite-horizon value
    iteration (:func:`value_iteration`) and then acts greedily by the sampled ``Q[h, s]`` for the episode.
    """

    def __init__(self, dist, seed, name="psrl"):
        super().__init__(dist, seed, name)

    def sample_q(self, stats: dict, policy_state) -> tf.Tensor:
        """Sample one MDP per row from the posterior and return its optimal ``Q`` ``[B, H, S, A]``."""
        mean, prec = self.reward_posterior(stats)
        counts = stats["transition_counts"]
        mu = mean + tf.random.stateless_normal(tf.shape(mean), self._seed(policy_state, 10)) * tf.math.rsqrt(prec)
        g = tf.random.stateless_gamma(tf.shape(counts), self._seed(policy_state, 11), alpha=self._alpha + counts)
        g = tf.maximum(g, 1e-30)  # tiny alphas can underflow to 0 in every entry of a row
        p = g / tf.reduce_sum(g, axis=-1, keepdims=True)
        return value_iteration(mu, p, self._h)

    def _next_q(self, stats, new_episode, policy_state):
        return self._new_at_episode_starts(stats, new_episode, lambda: self.sample_q(stats, policy_state))


class CertaintyEquivalentPolicy(_PosteriorPolicy):
    """Certainty-equivalent planning: act optimally in the posterior-mean MDP (mean rewards
    ``E[mu | data] + bonus / sqrt(precision)``, transition rows ``E[P | data]``), re-solved by finite-horizon
    value iteration after every step (``replan="step"``) or at every inner-episode start (``"episode"``).

    With ``bonus = 0`` it explores only through the prior: an untried action keeps the prior mean
    ``reward_loc`` and is tried while the tried ones look worse. ``bonus > 0`` adds optimism in units of the
    posterior standard deviation (a UCB-like rule).
    """

    def __init__(self, dist, seed, bonus: float = 0.0, replan: str = "step", name="certainty_equivalent"):
        super().__init__(dist, seed, name)
        self._bonus, self._replan = float(bonus), replan

    def posterior_mean_q(self, stats: dict) -> tf.Tensor:
        """The optimal ``Q`` ``[B, H, S, A]`` of every row's posterior-mean MDP (with the bonus)."""
        mean, prec = self.reward_posterior(stats)
        counts = stats["transition_counts"] + self._alpha
        p = counts / tf.reduce_sum(counts, axis=-1, keepdims=True)
        return value_iteration(mean + self._bonus * tf.math.rsqrt(prec), p, self._h)

    def _next_q(self, stats, new_episode, policy_state):
        if self._replan == "step":
            return self.posterior_mean_q(stats)
        return self._new_at_episode_starts(stats, new_episode, lambda: self.posterior_mean_q(stats))


# ================================================================== baselines
class _MDPBaseline(ConfiguredBaseline):
    families = (FAMILY,)


class QLearningBaseline(_MDPBaseline):
    """Epsilon-greedy tabular Q-learning on each task from scratch (see :class:`QLearningPolicy`)."""

    defaults = {"epsilon": 0.1, "learning_rate": 0.1, "initial_q": 0.0, "gamma": 1.0}

    def _validate(self):
        name, c = type(self).__name__, self.config
        c["epsilon"] = check_number(name, "epsilon", c["epsilon"], 0.0, 1.0)
        c["learning_rate"] = check_number(name, "learning_rate", c["learning_rate"], 0.0, 1.0, low_open=True)
        c["initial_q"] = check_number(name, "initial_q", c["initial_q"])
        c["gamma"] = check_number(name, "gamma", c["gamma"], 0.0, 1.0)

    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        c = self.config
        return QLearningPolicy(dist, seed, c["epsilon"], c["learning_rate"], c["initial_q"], c["gamma"])


class PSRLBaseline(_MDPBaseline):
    """Posterior sampling for RL with the family's own priors (see :class:`PSRLPolicy`)."""

    def _make_policy(self, dist, tasks, seed):
        return PSRLPolicy(dist, seed)


class CertaintyEquivalentBaseline(_MDPBaseline):
    """Plans in the posterior-mean MDP of the family's own priors, re-solved after every step (see
    :class:`CertaintyEquivalentPolicy`). Config: ``bonus`` (optimism in posterior standard deviations, default
    0) and ``replan`` (``"step"``, default, or ``"episode"``)."""

    defaults = {"bonus": 0.0, "replan": "step"}

    def _validate(self):
        name, c = type(self).__name__, self.config
        c["bonus"] = check_number(name, "bonus", c["bonus"], 0.0)
        if c["replan"] not in ("step", "episode"):
            raise MetaRLInputError(f"{name}: config replan={c['replan']!r} must be 'step' or 'episode'")

    def _make_policy(self, dist, tasks, seed):
        return CertaintyEquivalentPolicy(dist, seed, self.config["bonus"], self.config["replan"])
