"""Bandit baselines for ``bandits.bernoulli``: greedy, epsilon-greedy, UCB1, Thompson sampling, finite-horizon
Gittins index, Bayes-optimal.

Every baseline returns a tf-agents ``TFPolicy`` acting on a batch of tasks (row ``i`` = ``tasks[i]``). What a
policy has learned about its task lives in the policy state, batched ``[B, ...]``:

* ``"pulls"`` ``[B, k]`` and ``"successes"`` ``[B, k]`` (float32 counts), updated from
  ``observation["prev_action"]`` and ``time_step.reward`` on every step that does not start a trial
  (``step_type != FIRST``), and reset to zero on trial starts;
* ``"step"`` ``[B]`` int64, a counter that keys the policy's randomness (see :class:`StatefulPolicy`).

Actions are pure, batched TF ops: the evaluator compiles whole rollouts in one ``tf.function``.

The Bayes-optimal policy solves the Bayes-adaptive bandit exactly by dynamic programming over belief states
(:func:`~metarl_apps.baselines.bandit_values.solve_bayes_bandit`), then acts in-graph through a sorted table of
the optimal (state, arm-belief) keys (:class:`BayesOptimalPolicy`); the Gittins policy looks up
:func:`~metarl_apps.baselines.bandit_values.gittins_index_table`. Those NumPy computations, and the values
they give, live in :mod:`metarl_apps.baselines.bandit_values`.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step

from metarl_apps.baselines.bandit_values import gittins_index_table, solve_bayes_bandit
from metarl_apps.baselines.base import (
    ConfiguredBaseline,
    StatefulPolicy,
    argmax_mask,
    check_number,
    random_choice,
)
from metarl_apps.core import rng
from metarl_apps.core.agent import is_first
from metarl_apps.core.env import PREV_ACTION
from metarl_apps.core.task import Task, TaskDistribution

FAMILY = "bandits.bernoulli"


class BanditPolicy(StatefulPolicy):
    """A bandit policy with per-arm ``pulls`` and ``successes`` in its state; subclasses implement ``_choose``."""

    def __init__(self, dist: TaskDistribution, seed: int, name: str):
        k = int(dist.action_spec().maximum) + 1
        stats = {"pulls": tensor_spec.TensorSpec((k,), tf.float32, name="pulls"),
                 "successes": tensor_spec.TensorSpec((k,), tf.float32, name="successes")}
        super().__init__(dist, seed, stats, name)
        self.arms = k

    def _action(self, time_step, policy_state, seed):
        del seed  # randomness is keyed by the state (see StatefulPolicy)
        learn = tf.cast(tf.logical_not(is_first(time_step)), tf.float32)[:, None]
        pulled = tf.one_hot(tf.cast(time_step.observation[PREV_ACTION], tf.int32), self.arms) * learn
        stats = {"pulls": policy_state["pulls"] + pulled,
                 "successes": policy_state["successes"] + pulled * time_step.reward[:, None]}
        stats = self._reset_where_first(time_step, stats)
        action = self._choose(stats["pulls"], stats["successes"], policy_state)
        return policy_step.PolicyStep(action, self._next_state(policy_state, stats), ())

    def _choose(self, pulls: tf.Tensor, successes: tf.Tensor, policy_state) -> tf.Tensor:
        """``[B]`` int32 arms from the counts ``[B, k]``."""
        raise NotImplementedError

    def _tie_break(self, mask, policy_state, salt: int = 0):
        return random_choice(mask, self._uniform(policy_state, tf.shape(mask), salt))

    def _greedy_mask(self, pulls, successes):
        """Untried arms if any, else the arms of highest empirical mean."""
        untried = tf.equal(pulls, 0.0)
        mean = successes / tf.maximum(pulls, 1.0)
        return tf.where(tf.reduce_any(untried, axis=-1, keepdims=True), untried, argmax_mask(mean))


class GreedyPolicy(BanditPolicy):
    def _choose(self, pulls, successes, policy_state):
        return self._tie_break(self._greedy_mask(pulls, successes), policy_state)


class EpsilonGreedyPolicy(BanditPolicy):
    def __init__(self, dist, seed, epsilon: float, name="epsilon_greedy"):
        super().__init__(dist, seed, name)
        self._epsilon = float(epsilon)

    def _choose(self, pulls, successes, policy_state):
        greedy = self._tie_break(self._greedy_mask(pulls, successes), policy_state, 0)
        explore = self._tie_break(tf.ones_like(pulls, tf.bool), policy_state, 1)
        coin = self._uniform(policy_state, tf.shape(pulls)[:1], 2)
        return tf.where(coin < self._epsilon, explore, greedy)


class UCB1Policy(BanditPolicy):
    """Index ``mean_a + sqrt(c ln t / n_a)`` with ``t`` the pulls so far; untried arms first."""

    def __init__(self, dist, seed, c: float, name="ucb1"):
        super().__init__(dist, seed, name)
        self._c = float(c)

    def _choose(self, pulls, successes, policy_state):
        untried = tf.equal(pulls, 0.0)
        n = tf.maximum(pulls, 1.0)
        t = tf.reduce_sum(pulls, axis=-1, keepdims=True)
        index = successes / n + tf.sqrt(self._c * tf.math.log(tf.maximum(t, 1.0)) / n)
        mask = tf.where(tf.reduce_any(untried, axis=-1, keepdims=True), untried, argmax_mask(index))
        return self._tie_break(mask, policy_state)


class ThompsonPolicy(BanditPolicy):
    """Samples ``theta_a ~ Beta(alpha + successes_a, beta + failures_a)`` (as ``X / (X + Y)``, Gamma X, Y)."""

    def __init__(self, dist, seed, alpha: float, beta: float, name="thompson"):
        super().__init__(dist, seed, name)
        self._alpha, self._beta = float(alpha), float(beta)

    def _choose(self, pulls, successes, policy_state):
        shape = tf.shape(pulls)
        x = tf.random.stateless_gamma(shape, self._seed(policy_state, 0), alpha=self._alpha + successes)
        y = tf.random.stateless_gamma(shape, self._seed(policy_state, 1), alpha=self._beta + pulls - successes)
        theta = x / tf.maximum(x + y, 1e-30)
        return self._tie_break(argmax_mask(theta), policy_state, 2)


class FixedActionPolicy(tf_policy.TFPolicy):
    """Plays ``actions[i]`` in row ``i`` forever (the bandit oracle: each task's best arm). No state."""

    def __init__(self, dist: TaskDistribution, actions, name: str = "oracle"):
        super().__init__(dist.time_step_spec(), dist.action_spec(), name=name)
        self._actions = tf.constant(np.asarray(actions, np.int32))

    def _action(self, time_step, policy_state, seed):
        return policy_step.PolicyStep(tf.identity(self._actions), policy_state, ())


# ================================================================== Bayes-optimal policy
# Keys of (belief state, arm) pairs: a permutation-invariant hash of the state (sum of hashed arm codes)
# combined with the arm's own code. Computed by the same TF ops at build time and in the policy's graph.
_ARM_SALT = 0x632BE59BD9B4E019
_STATE_SALT = 0x8CB92BA72F3D8DD7


def arm_keys(successes: tf.Tensor, failures: tf.Tensor) -> tf.Tensor:
    """``[..., k]`` int64 keys of each arm in its belief state, from integer counts ``[..., k]``."""
    code = tf.bitwise.left_shift(tf.cast(successes, tf.uint64), tf.constant(32, tf.uint64))
    code = tf.bitwise.bitwise_or(code, tf.cast(failures, tf.uint64))
    state = tf.reduce_sum(rng.splitmix64(code + tf.constant(_STATE_SALT, tf.uint64)), axis=-1, keepdims=True)
    arm = rng.splitmix64(code + tf.constant(_ARM_SALT, tf.uint64))
    return tf.bitcast(rng.splitmix64(tf.bitwise.bitwise_xor(state, arm)), tf.int64)


@functools.lru_cache(maxsize=8)
def bayes_optimal_table(arms: int, pulls: int) -> np.ndarray:
    """Sorted int64 keys (:func:`arm_keys`) of the optimal (state, arm belief) pairs of the U[0, 1]-prior bandit.

    Every (decision state, distinct pair in it) gets a distinct key (checked here), so a lookup of an arm
    whose pair is not optimal never hits.
    """
    sol = solve_bayes_bandit(arms, pulls, 1.0, 1.0)
    keys = arm_keys(sol.states[..., 0], sol.states[..., 1]).numpy()  # [N, k]
    distinct = np.ones(keys.shape, bool)  # first arm of each run of equal pairs (states are sorted)
    distinct[:, 1:] = np.any(sol.states[:, 1:] != sol.states[:, :-1], axis=-1)
    if np.unique(keys[distinct]).size != int(distinct.sum()):
        raise RuntimeError("bayes_optimal_table: hash collision between belief states")  # astronomically rare
    return np.unique(keys[distinct & sol.optimal])


class BayesOptimalPolicy(BanditPolicy):
    """Pulls, uniformly among ties, an arm whose ``(successes, failures)`` is Bayes-optimal in the current
    belief state: a binary search of the arms' keys (:func:`arm_keys`) in the sorted table of optimal keys.

    Outside the table (after the trial's ``pulls``, where no decision is needed) it plays greedy on the
    posterior mean.
    """

    def __init__(self, dist, seed, name="bayes_optimal"):
        super().__init__(dist, seed, name)
        self._table = tf.constant(bayes_optimal_table(self.arms, int(dist.episodes_per_trial)))

    def _choose(self, pulls, successes, policy_state):
        s = tf.cast(tf.round(successes), tf.int64)
        f = tf.cast(tf.round(pulls - successes), tf.int64)
        keys = arm_keys(s, f)  # [B, k]
        flat = tf.reshape(keys, [1, -1])
        idx = tf.minimum(tf.searchsorted(self._table[None], flat), tf.size(self._table) - 1)
        hit = tf.reshape(tf.equal(tf.gather(self._table, idx[0]), flat[0]), tf.shape(keys))
        mean = (successes + 1.0) / (pulls + 2.0)
        mask = tf.where(tf.reduce_any(hit, axis=-1, keepdims=True), hit, argmax_mask(mean))
        return self._tie_break(mask, policy_state)


# ================================================================== finite-horizon Gittins index policy
class GittinsPolicy(BanditPolicy):
    """Pulls the arm of largest finite-horizon Gittins index (:func:`gittins_index_table`) for the pulls left
    in the trial; ties uniformly at random."""

    def __init__(self, dist, seed, alpha: float, beta: float, name="gittins", discount: float = 1.0):
        super().__init__(dist, seed, name)
        self._pulls = int(dist.episodes_per_trial)
        self._table = tf.constant(gittins_index_table(self._pulls, alpha, beta, discount=discount), tf.float64)

    def _choose(self, pulls, successes, policy_state):
        n = self._pulls
        left = tf.clip_by_value(n - tf.reduce_sum(pulls, -1, keepdims=True), 1.0, float(n))
        s = tf.clip_by_value(successes, 0.0, float(n))
        f = tf.clip_by_value(pulls - successes, 0.0, float(n))
        idx = tf.cast(tf.round(tf.stack([tf.broadcast_to(left, tf.shape(s)), s, f], -1)), tf.int32)
        index = tf.gather_nd(self._table, idx)
        return self._tie_break(argmax_mask(index), policy_state)


# ================================================================== baselines
class _BanditBaseline(ConfiguredBaseline):
    families = (FAMILY,)


class GreedyBaseline(_BanditBaseline):
    """Pulls the arm of highest empirical mean (untried arms first; ties uniformly at random)."""

    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        return GreedyPolicy(dist, seed, name="greedy")


class EpsilonGreedyBaseline(_BanditBaseline):
    """With probability ``epsilon`` a uniformly random arm, else the greedy choice (untried arms first)."""

    defaults = {"epsilon": 0.1}

    def _validate(self):
        self.config["epsilon"] = check_number(type(self).__name__, "epsilon", self.config["epsilon"], 0.0, 1.0)

    def _make_policy(self, dist, tasks, seed):
        return EpsilonGreedyPolicy(dist, seed, self.config["epsilon"])


class UCB1Baseline(_BanditBaseline):
    """UCB1: index ``mean_a + sqrt(c ln t / n_a)`` (``c=2`` is Auer et al.'s UCB1); untried arms first."""

    defaults = {"c": 2.0}

    def _validate(self):
        self.config["c"] = check_number(type(self).__name__, "c", self.config["c"], 0.0)

    def _make_policy(self, dist, tasks, seed):
        return UCB1Policy(dist, seed, self.config["c"])


class _BetaPriorBaseline(_BanditBaseline):
    """A bandit baseline with a ``Beta(alpha, beta)`` prior per arm (``Beta(1, 1)`` is the family's prior)."""

    defaults = {"alpha": 1.0, "beta": 1.0}
    #: a :class:`BanditPolicy` taking ``(dist, seed, alpha, beta)`` and, as keywords, the subclass's other
    #: config keys; set by each subclass
    policy_class: type

    def _validate(self):
        for key in ("alpha", "beta"):
            self.config[key] = check_number(type(self).__name__, key, self.config[key], 0.0, low_open=True)

    def _make_policy(self, dist, tasks, seed):
        extra = {k: v for k, v in self.config.items() if k not in ("alpha", "beta")}  # subclasses' own keys
        return self.policy_class(dist, seed, self.config["alpha"], self.config["beta"], **extra)


class ThompsonBaseline(_BetaPriorBaseline):
    """Thompson sampling with a ``Beta(alpha, beta)`` prior per arm."""

    policy_class = ThompsonPolicy


class GittinsBaseline(_BetaPriorBaseline):
    """The finite-horizon Gittins index policy for a ``Beta(alpha, beta)`` prior: near Bayes-optimal on long
    trials where the exact DP is out of reach (the RL² paper's "Gittins"). ``discount`` (default 1: the
    undiscounted total the scenarios report) gives the index policy of the discounted objective instead — a
    reference for what a learner trained with that discount can reach."""

    defaults = {**_BetaPriorBaseline.defaults, "discount": 1.0}
    policy_class = GittinsPolicy

    def _validate(self):
        super()._validate()
        self.config["discount"] = check_number(type(self).__name__, "discount", self.config["discount"], 0.0, 1.0)


class BayesOptimalBaseline(_BanditBaseline):
    """The exact Bayes-optimal policy for the family's U[0, 1] prior (dynamic programming; see
    :func:`~metarl_apps.baselines.bandit_values.bayes_optimal_value`). Refuses sizes whose belief space exceeds
    ``bandit_values.MAX_BAYES_STATES``."""

    def _make_policy(self, dist, tasks, seed):
        return BayesOptimalPolicy(dist, seed)

