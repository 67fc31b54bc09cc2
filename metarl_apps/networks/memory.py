"""The trial memories shared by the recurrent learners (RL²'s actor-critic, MQL's Q network, the
shared-agents network): the LSTM/GRU layer, its state spec, and zero states from any state spec.

The RNN layer keeps the names ``"lstm"`` / ``"gru"`` and is stored by its owner as ``_rnn``, so checkpoints
and shipped models keep their variable paths. ``cell="set"`` (the transition-set memory) is built by the
owner from :mod:`metarl_apps.networks.set_context`, whose state spec differs.
"""

from __future__ import annotations

import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.errors import MetaRLInputError

CELLS = ("lstm", "gru", "set")


def check_cell(cell: str) -> str:
    if cell not in CELLS:
        raise MetaRLInputError(f"cell={cell!r}: must be one of {', '.join(repr(c) for c in CELLS)}")
    return cell


def make_rnn(cell: str, hidden_size: int, name: str | None = None) -> tf.keras.layers.RNN:
    """The Keras LSTM/GRU layer over ``[B, T, D]`` returning sequences and its final state."""
    layer = {"lstm": tf.keras.layers.LSTM, "gru": tf.keras.layers.GRU}[check_cell(cell)]
    return layer(int(hidden_size), return_sequences=True, return_state=True, name=name or cell)


def rnn_state_spec(cell: str, hidden_size: int) -> list:
    """``[h, c]`` for an LSTM, ``[h]`` for a GRU."""
    h = tensor_spec.TensorSpec([int(hidden_size)], tf.float32)
    return [h, h] if check_cell(cell) == "lstm" else [h]


def zero_state(state_spec, batch_size) -> list[tf.Tensor]:
    """Zeros ``[batch_size, *spec.shape]`` for every spec of a (flat list) state spec."""
    return [tf.zeros(tf.concat([[batch_size], s.shape], 0), s.dtype) for s in state_spec]
