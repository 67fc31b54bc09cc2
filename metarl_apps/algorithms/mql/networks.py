"""The context-conditioned Q network of MQL, with explicit recurrent state (tf-agents ``Network`` convention).

``observation -> encode -> embed -> GRU/LSTM (the context) -> dense ReLU (features z) -> linear Q head``, or,
with ``cell="set"``, the permutation-invariant transition-set context of
:mod:`metarl_apps.networks.set_context` in place of ``embed -> GRU/LSTM`` (its readout is the context).

Q layouts (``kind``):

* ``"discrete"`` — scalar action: ``q [..., A]``;
* ``"multi"`` — ``[m]`` independent discrete elements: ``q [..., m, A]``; Q(s, a) = mean over elements;
* ``"slate"`` — ``[k]`` distinct items: one Q per item, ``q [..., N]``; the greedy slate is the top-k items and
  Q(s, slate) = mean of its items' Q (so the greedy slate maximises Q(s, slate) exactly).

The linear head is split out (``head_params``, ``apply_head``) because adaptation fits one head per new task
(stacked ``[B, Z, n_q]`` kernels) on top of the frozen, meta-trained context and features.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.encoding import encode_observation, encoded_size, split_action_mask
from metarl_apps.networks.memory import check_cell, make_rnn, rnn_state_spec, zero_state
from metarl_apps.networks.recurrent import action_layout
from metarl_apps.networks.set_context import TransitionSetContext

MASKED_Q = -1e9


class RecurrentQNetwork(tf.Module):
    """Q values from a recurrent context over the trial so far.

    ``encode`` turns trial observations into input vectors ``x`` (what the replay stores); ``step_x`` /
    ``unroll_x`` run the context on ``x [B, D]`` / ``x [B, T, D]`` and return ``(q, z, state)``.
    """

    def __init__(self, observation_spec, action_spec, *, cell: str = "gru", hidden_size: int = 64,
                 embed_sizes: tuple[int, ...] = (64,), head_size: int = 64, trunk_sizes: tuple[int, ...] = (),
                 slate: bool = False, set_keys: int = 0,
                 trial_length: int = 1, name: str = "recurrent_q"):
        super().__init__(name=name)
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.action_shape, self.num_values, self.action_min = action_layout(action_spec)
        if slate:
            if len(self.action_shape) != 1 or self.action_shape[0] > self.num_values:
                raise MetaRLInputError(f"action spec {action_spec}: a slate action must have shape [k] with "
                                       f"k <= the number of items ({self.num_values})")
            self.kind, self.slate_size = "slate", self.action_shape[0]
        elif self.action_shape:
            self.kind, self.slate_size = "multi", 0
        else:
            self.kind, self.slate_size = "discrete", 0
        self.num_q = self.num_values * (1 if self.kind != "multi" else int(np.prod(self.action_shape)))
        self.cell_type = cell
        self.hidden_size = int(hidden_size)
        self.input_size = encoded_size(observation_spec)
        self._embed = [tf.keras.layers.Dense(n, activation="relu", name=f"embed_{i}")
                       for i, n in enumerate(embed_sizes)]
        if check_cell(cell) == "set":
            self._embed = []  # phi replaces the embedding
            self._set = TransitionSetContext(self.input_size, hidden_size, embed_sizes, trial_length, keys=set_keys)
        else:
            self._rnn = make_rnn(cell, hidden_size)
        # dense ReLU layers between the context and the features z (trunk_sizes, then head_size)
        self._deep = [tf.keras.layers.Dense(n, activation="relu", name=f"deep_{i}") for i, n in enumerate(trunk_sizes)]
        self._trunk = [tf.keras.layers.Dense(head_size, activation="relu", name="trunk")] if head_size else []
        context_size = self._set.readout_size if cell == "set" else self.hidden_size
        self.feature_size = head_size or (trunk_sizes[-1] if trunk_sizes else context_size)
        self._head = tf.keras.layers.Dense(self.num_q, name="q_head")
        self.unroll_x(tf.zeros([1, 1, self.input_size]), self.initial_state(1))  # build every layer

    # ------------------------------------------------------------------ state
    @property
    def state_spec(self):
        return self._set.state_spec if self.cell_type == "set" else rnn_state_spec(self.cell_type, self.hidden_size)

    def initial_state(self, batch_size) -> list[tf.Tensor]:
        return zero_state(self.state_spec, batch_size)

    # ------------------------------------------------------------------ head
    @property
    def head_params(self) -> tuple[tf.Variable, tf.Variable]:
        """``(kernel [Z, n_q], bias [n_q])`` of the linear Q head."""
        return self._head.kernel, self._head.bias

    def shape_q(self, flat_q: tf.Tensor) -> tf.Tensor:
        """``[..., n_q]`` -> the layout of ``kind`` (``[..., m, A]`` for multi-discrete actions)."""
        if self.kind != "multi":
            return flat_q
        return tf.reshape(flat_q, tf.concat([tf.shape(flat_q)[:-1], [*self.action_shape, self.num_values]], 0))

    # --------------------------------------------------------------- forward
    def encode(self, observation, outer_rank: int = 1) -> tf.Tensor:
        """Trial observation ``[*outer, ...]`` -> input vector ``x [*outer, D]``."""
        return encode_observation(observation, self.observation_spec, outer_rank)

    def _embed_x(self, x: tf.Tensor) -> tf.Tensor:
        for layer in self._embed:
            x = layer(x)
        return x

    def _features(self, h: tf.Tensor) -> tf.Tensor:
        for layer in (*self._deep, *self._trunk):
            h = layer(h)
        return h

    def step_x(self, x: tf.Tensor, state):
        """One step: ``x [B, D]`` -> ``(q [B, ...], z [B, Z], new_state)``."""
        if self.cell_type == "set":
            h, new_state = self._set.step(x, list(state))
        else:
            h, new_state = self._rnn.cell(self._embed_x(x), list(state))
        z = self._features(h)
        return self.shape_q(self._head(z)), z, list(new_state)

    def unroll_x(self, x: tf.Tensor, state):
        """Sequences: ``x [B, T, D]`` -> ``(q [B, T, ...], z [B, T, Z], context h [B, T, H])``."""
        if self.cell_type == "set":
            h, _ = self._set.unroll(x, list(state))
        else:
            h = self._rnn(self._embed_x(x), initial_state=list(state))[0]
        z = self._features(h)
        return self.shape_q(self._head(z)), z, h


def mask_q(q: tf.Tensor, observation, kind: str) -> tf.Tensor:
    """Apply an ``obs["action_mask"]`` (1 = allowed; scalar actions only) to ``q [B, A]``."""
    _, mask = split_action_mask(observation)
    if mask is None or kind != "discrete":
        return q
    return tf.where(tf.cast(mask, tf.bool), q, MASKED_Q)
