"""RL² losses: the PPO clipped surrogate, value regression and entropy bonus over trial sequences.

All tensors are ``[B, T]`` (per task, per step of the trial) unless stated; the advantages come from GAE
over the whole trial (``tf_agents.utils.value_ops``), so credit flows across the episodes of a trial.
"""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.utils import value_ops


def action_distribution(logits: tf.Tensor, action_rank: int) -> tfp.distributions.Distribution:
    """One categorical per action element; ``action_rank`` trailing action dims are one event."""
    dist = tfp.distributions.Categorical(logits=logits)
    if action_rank:
        dist = tfp.distributions.Independent(dist, reinterpreted_batch_ndims=action_rank)
    return dist


def gae(rewards: tf.Tensor, values: tf.Tensor, discount: float, lam: float) -> tuple[tf.Tensor, tf.Tensor]:
    """Advantages and returns ``[B, T]`` of one whole trial per row (the trial ends after step T-1)."""
    discounts = tf.fill(tf.shape(rewards), tf.constant(discount, tf.float32))
    discounts = tf.concat([discounts[:, :-1], tf.zeros_like(discounts[:, -1:])], axis=1)  # terminal at trial end
    advantages = value_ops.generalized_advantage_estimation(
        values=values, final_value=tf.zeros_like(values[:, -1]), discounts=discounts, rewards=rewards,
        td_lambda=lam, time_major=False)
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
