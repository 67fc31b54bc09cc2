"""The adapted RL² policy: a tf-agents ``TFPolicy`` over the recurrent network; its state is the memory.

No gradient steps at adaptation: the memory, carried across the episodes of a trial (reset only at the
trial's ``FIRST`` step by tf-agents' automatic state reset), is what adapts. ``PolicySaver`` exports it with
its ``policy_state_spec``.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.trajectories import policy_step

from metarl_apps.algorithms.rl2.losses import action_distribution
from metarl_apps.core.agent import AdaptedPolicy
from metarl_apps.networks.recurrent import MASKED_LOGIT, RecurrentActorCritic
from metarl_apps.networks.shared_agents import SharedAgentsActorCritic


class RL2Policy(AdaptedPolicy):
    def __init__(self, net: RecurrentActorCritic | SharedAgentsActorCritic, time_step_spec, action_spec, *,
                 greedy: bool = False, distinct: bool = False, adaptation: dict | None = None):
        """``greedy``: act by the mode; ``distinct`` (slate families with independent slot heads): the greedy
        slate takes each slot's best item among those earlier slots have not taken, so items never repeat."""
        super().__init__(time_step_spec, action_spec, policy_state_spec=net.state_spec, adaptation=adaptation,
                         name="rl2_policy")
        self._net = net
        self._greedy = greedy
        self._distinct = distinct and not net.slate_size and len(net.action_shape) == 1

    def _distribution(self, time_step, policy_state):
        logits, _, new_state = self._net.step(time_step.observation, policy_state)
        # A NaN in the network (e.g. a NaN reward fed back as input) must not turn into an out-of-range action
        # that crashes the environment: act uniformly instead; the NaN still reaches the PPO loss, where
        # meta_train stops with a clear "non-finite training metrics" error.
        logits = tf.where(tf.math.is_finite(logits), logits, tf.zeros_like(logits))
        if self._greedy:
            mode = greedy_indices(logits, self._net.slate_size, self._distinct) + self._net.action_min
            dist = tfp.distributions.Deterministic(loc=tf.cast(mode, self.action_spec.dtype))
            if self._net.action_shape:
                dist = tfp.distributions.Independent(dist, reinterpreted_batch_ndims=len(self._net.action_shape))
        else:
            dist = _Shifted(action_distribution(logits, len(self._net.action_shape), self._net.slate_size),
                            self._net.action_min, self.action_spec.dtype)
        return policy_step.PolicyStep(dist, new_state, ())


def greedy_indices(logits: tf.Tensor, slate_size: int, distinct: bool) -> tf.Tensor:
    """The greedy action's indices: the top ``slate_size`` items (Plackett-Luce slates), each slot's best item
    not taken by an earlier slot (``distinct`` independent slot heads), else the argmax of each categorical."""
    if slate_size:
        return tf.math.top_k(logits, k=slate_size).indices
    if distinct:
        return distinct_slots(logits)
    return tf.argmax(logits, axis=-1, output_type=tf.int32)


def distinct_slots(logits: tf.Tensor) -> tf.Tensor:
    """``[B, k]``: slot by slot, the highest-logit item not taken by an earlier slot (``logits [B, k, n]``)."""
    k, n = logits.shape[-2], logits.shape[-1]
    taken = tf.zeros_like(logits[:, 0])
    picks = []
    for j in range(k):
        pick = tf.argmax(tf.where(taken > 0.5, MASKED_LOGIT, logits[:, j]), axis=-1, output_type=tf.int32)
        taken += tf.one_hot(pick, n, dtype=logits.dtype)
        picks.append(pick)
    return tf.stack(picks, axis=-1)


class _Shifted(tfp.distributions.Distribution):
    """An index distribution moved to ``[minimum, minimum + n)`` in the action dtype."""

    def __init__(self, base, minimum: int, dtype):
        self._base = base
        self._minimum = minimum
        parameters = dict(locals())
        super().__init__(dtype=dtype, reparameterization_type=tfp.distributions.NOT_REPARAMETERIZED,
                         validate_args=False, allow_nan_stats=True, parameters=parameters, name="Shifted")

    def _sample_n(self, n, seed=None):
        return tf.cast(self._base.sample(n, seed=seed), self.dtype) + tf.cast(self._minimum, self.dtype)

    def _log_prob(self, x):
        return self._base.log_prob(tf.cast(x, tf.int32) - self._minimum)

    def _entropy(self):
        return self._base.entropy()

    def _mode(self):
        return tf.cast(self._base.mode(), self.dtype) + tf.cast(self._minimum, self.dtype)

    def _batch_shape_tensor(self):
        return self._base.batch_shape_tensor()

    def _batch_shape(self):
        return self._base.batch_shape

    def _event_shape_tensor(self):
        return self._base.event_shape_tensor()

    def _event_shape(self):
        return self._base.event_shape
