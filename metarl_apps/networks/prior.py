"""A frozen population reward model used as the prior of a slate policy (RL²'s ``prior: global_mlp``).

:class:`FrozenScorer` holds the weights of a fitted :class:`~metarl_apps.baselines.recsys.GlobalRewardModelBaseline`
MLP as non-trainable variables (so they are checkpointed and exported with the policy, and never updated by the
policy's optimizer) and scores every candidate document of a trial observation: ``[*outer, num_docs]``, the
same scores the ``global_mlp`` baseline ranks by. A policy that adds ``scale * scores`` (standardised) to its
logits starts from the population policy (its greedy slate is the baseline's) and learns only how to depart
from it.
"""

from __future__ import annotations

import tensorflow as tf

from metarl_apps.baselines.recsys import reward_model_input_size, reward_model_inputs
from metarl_apps.core.env import CHOICE, DOC_FEATURES, OBS, PREV_ACTION
from metarl_apps.core.errors import MetaRLInputError


class FrozenScorer(tf.Module):
    """``q(x_doc, context)`` of a ReLU MLP with ``hidden`` layers (fixed weights); see the module docstring."""

    def __init__(self, num_features: int, hidden: tuple[int, ...], context: str, name: str = "prior"):
        super().__init__(name=name)
        self.context = context
        sizes = [reward_model_input_size(num_features, context), *hidden, 1]
        self.kernels = [tf.Variable(tf.zeros([a, b]), trainable=False, name=f"kernel_{i}")
                        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=False))]
        self.biases = [tf.Variable(tf.zeros([b]), trainable=False, name=f"bias_{i}")
                       for i, b in enumerate(sizes[1:])]

    def assign_from(self, model: tf.keras.Model) -> None:
        """Copy the weights of a fitted global reward model (same layer sizes)."""
        weights = model.get_weights()
        mine = [v for pair in zip(self.kernels, self.biases, strict=True) for v in pair]
        shapes = [tuple(w.shape) for w in weights]
        if shapes != [tuple(v.shape) for v in mine]:
            raise MetaRLInputError(f"prior: the fitted reward model has weights {shapes}, this scorer expects "
                                   f"{[tuple(v.shape) for v in mine]}; fit it with the same hidden and context")
        for v, w in zip(mine, weights, strict=True):
            v.assign(w)

    def __call__(self, observation, outer_rank: int) -> tf.Tensor:
        obs = observation[OBS]
        features = tf.cast(obs[DOC_FEATURES], tf.float32)  # [*outer, N, F]
        outer = tf.shape(features)[:outer_rank]
        n, f = features.shape[-2], features.shape[-1]
        prev = observation[PREV_ACTION]
        flat = lambda x, tail: tf.reshape(x, [-1, *tail])  # noqa: E731
        features = flat(features, [n, f])
        choice = flat(obs[CHOICE], [])
        # a trial's first observation has choice == slate_size (no click), which gives an all-zero context
        x = reward_model_inputs(features, flat(prev, [prev.shape[-1]]), choice, tf.zeros_like(choice, tf.bool),
                                self.context)
        for i, (k, b) in enumerate(zip(self.kernels, self.biases, strict=True)):
            x = tf.matmul(x, k) + b
            if i < len(self.kernels) - 1:
                x = tf.nn.relu(x)
        return tf.reshape(x[..., 0], tf.concat([outer, [n]], 0))

    def standardized(self, observation, outer_rank: int) -> tf.Tensor:
        """The scores standardised over the candidates of each observation (mean 0, std 1; the ranking is
        the model's), so a policy's ``prior_scale`` is a logit spread whatever the reward's scale."""
        q = self(observation, outer_rank)
        mean, var = tf.nn.moments(q, axes=[-1], keepdims=True)
        return (q - mean) / tf.sqrt(var + 1e-12)
