"""RL² losses: the PPO clipped surrogate, value regression and entropy bonus over trial sequences.

All tensors are ``[B, T]`` (per task, per step of the trial) unless stated; the advantages come from GAE
over the whole trial (``tf_agents.utils.value_ops``), so credit flows across the episodes of a trial.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
from tensorflow_probability.python.internal import samplers
from tf_agents.utils import value_ops


def action_distribution(logits: tf.Tensor, action_rank: int, slate_size: int = 0) -> tfp.distributions.Distribution:
    """The policy's action distribution over 0-based action indices.

    * ``slate_size > 0``: a :class:`SlateDistribution` (``logits [..., n]``: one score per item; a slate of
      ``slate_size`` distinct items);
    * otherwise one categorical per action element (``logits [..., *action_shape, n]``); ``action_rank``
      trailing action dims form one event.
    """
    if slate_size:
        return SlateDistribution(logits, slate_size)
    dist = tfp.distributions.Categorical(logits=logits)
    if action_rank:
        dist = tfp.distributions.Independent(dist, reinterpreted_batch_ndims=action_rank)
    return dist


class SlateDistribution(tfp.distributions.Distribution):
    """Plackett-Luce over slates of ``k`` distinct items: items are drawn one by one without replacement,
    each with probability ``softmax(logits)`` over the items not yet in the slate.

    ``log_prob(slate) = Σ_j [logits[slate_j] - logsumexp(logits over items not in slate[:j])]``; sampling is
    the Gumbel-top-k trick (exact for Plackett-Luce); the mode is the top-k items. ``entropy`` returns the
    entropy of the first draw (the categorical over all items), a tractable stand-in for the slate entropy,
    used only as an exploration bonus.
    """

    def __init__(self, logits: tf.Tensor, slate_size: int, name: str = "SlateDistribution"):
        parameters = dict(locals())
        self._logits = tf.convert_to_tensor(logits)
        self._k = int(slate_size)
        super().__init__(dtype=tf.int32, reparameterization_type=tfp.distributions.NOT_REPARAMETERIZED,
                         validate_args=False, allow_nan_stats=True, parameters=parameters, name=name)

    @property
    def logits(self) -> tf.Tensor:
        return self._logits

    def _batch_shape_tensor(self):
        return tf.shape(self._logits)[:-1]

    def _batch_shape(self):
        return self._logits.shape[:-1]

    def _event_shape_tensor(self):
        return tf.constant([self._k], tf.int32)

    def _event_shape(self):
        return tf.TensorShape([self._k])

    def _sample_n(self, n, seed=None):
        shape = tf.concat([[n], tf.shape(self._logits)], 0)
        u = samplers.uniform(shape, minval=tf.constant(1e-12), maxval=tf.constant(1.0), seed=seed)
        gumbel = -tf.math.log(-tf.math.log(u))
        return tf.math.top_k(self._logits + gumbel, k=self._k).indices

    def _log_prob(self, x):
        x = tf.cast(x, tf.int32)
        n = tf.shape(self._logits)[-1]
        batch = tf.broadcast_dynamic_shape(tf.shape(x)[:-1], tf.shape(self._logits)[:-1])
        x = tf.broadcast_to(x, tf.concat([batch, [self._k]], 0))
        logits = tf.broadcast_to(self._logits, tf.concat([batch, [n]], 0))
        chosen = tf.gather(logits, x, batch_dims=len(x.shape) - 1)  # [..., k]
        picked = tf.one_hot(x, n, dtype=logits.dtype)  # [..., k, n]
        removed = tf.math.cumsum(picked, axis=-2, exclusive=True) > 0.5  # items taken before slot j
        logits = tf.broadcast_to(logits[..., None, :], tf.shape(picked))
        masked = tf.where(removed, tf.constant(-1e9, logits.dtype), logits)
        return tf.reduce_sum(chosen - tf.reduce_logsumexp(masked, axis=-1), axis=-1)

    def _entropy(self):
        return tfp.distributions.Categorical(logits=self._logits).entropy()

    def _mode(self):
        return tf.math.top_k(self._logits, k=self._k).indices


def gae(rewards: tf.Tensor, values: tf.Tensor, discount, lam) -> tuple[tf.Tensor, tf.Tensor]:
    """Advantages and returns ``[B, T]`` of one whole trial per row (the trial ends after step T-1)."""
    discounts = tf.fill(tf.shape(rewards), tf.cast(discount, tf.float32))  # a float or a scalar tensor
    discounts = tf.concat([discounts[:, :-1], tf.zeros_like(discounts[:, -1:])], axis=1)  # terminal at trial end
    advantages = value_ops.generalized_advantage_estimation(
        values=values, final_value=tf.zeros_like(values[:, -1]), discounts=discounts, rewards=rewards,
        td_lambda=tf.cast(lam, tf.float32), time_major=False)
    return advantages, advantages + values


def ppo_loss(new_log_prob, old_log_prob, advantages, entropy, values, returns, *, clip_ratio: float,
             entropy_coef: float, value_coef: float):
    """Scalar loss and its parts: ``-clipped surrogate + value_coef * 0.5 (V - R)² - entropy_coef * H``."""
    ratio = tf.exp(new_log_prob - old_log_prob)
    surrogate = tf.minimum(ratio * advantages, tf.clip_by_value(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio) * advantages)
    policy_loss = -tf.reduce_mean(surrogate)
    value_loss = 0.5 * tf.reduce_mean(tf.square(values - returns))
    entropy_mean = tf.reduce_mean(entropy)
    total = policy_loss + value_coef * value_loss - entropy_coef * entropy_mean
    clip_fraction = tf.reduce_mean(tf.cast(tf.abs(ratio - 1.0) > clip_ratio, tf.float32))
    return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy_mean,
                   "clip_fraction": clip_fraction}
