"""A permutation-invariant trial memory: the transition-set context (deep sets; PEARL's context encoder,
Rakelly et al. 2019), a drop-in alternative to an LSTM/GRU over the trial for learners with memory.

Each transition ``(x_{t-1}, x_t)`` — the previous network input (its observation) and this one (the action
taken, its reward, the observation reached, the new-episode flag) — goes through an MLP ``phi``; the memory
is the running sum of ``phi`` over the trial. The readout at step t is ``[x_t, sum / (t + 1), sum / T]``: the
current input, the mean of ``phi`` over the transitions so far, and their sum scaled by the trial length
``T`` (so per-(state, action) visit counts and reward sums are linear in the readout once ``phi`` separates
the cells). The recurrent state is ``[sum, count, previous x]``; an unroll is one ``cumsum`` over time (no
sequential loop), and stepping gives the same readout as unrolling.

Keyed reads (``keys > 0``): linear attention over the same transitions (a fast-weight memory,
Schlag et al. 2021). Each transition is also written into ``keys`` soft buckets ``psi(e_j)`` (softmax), the
memory being the running sum of the outer products ``psi(e_j) phi(e_j)^T``; the current input reads its own
soft bucket ``kappa(x_t)`` (softmax): ``kappa(x_t)^T M_t / T`` (an unroll computes it as causal attention,
``sum_{j<=t} (kappa_t . psi_j) phi_j``, without materialising ``M_t`` per step). In a tabular MDP ``psi`` can bucket a
transition by the state it left and ``kappa`` the current state, so the read is the statistics of the
current state's actions — a lookup the plain sum leaves to the consumer's layers.

Why: in the tabular-MDP family a GRU/LSTM must learn to keep 50 (state, action) reward estimates and 500
transition counts in its state by back-propagation through 100 steps; the sum makes that memory exact and
order-free by construction, and only ``phi`` and the readout's consumer are learned.
"""

from __future__ import annotations

import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.networks.memory import zero_state


class TransitionSetContext(tf.Module):
    """``phi`` = dense ReLU layers ``(*hidden_sizes, output_size)`` over ``[x_{t-1}, x_t]`` (``2 * input_size``)."""

    def __init__(self, input_size: int, output_size: int, hidden_sizes: tuple[int, ...], trial_length: int,
                 keys: int = 0, name: str = "set_context"):
        super().__init__(name=name)
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.trial_length = int(trial_length)
        self._phi = [tf.keras.layers.Dense(n, activation="relu", name=f"phi_{i}")
                     for i, n in enumerate((*hidden_sizes, output_size))]
        self.keys = int(keys)
        if self.keys:
            self._write_key = tf.keras.layers.Dense(self.keys, activation="softmax", name="write_key")
            self._read_key = tf.keras.layers.Dense(self.keys, activation="softmax", name="read_key")

    @property
    def readout_size(self) -> int:
        return self.input_size + (3 if self.keys else 2) * self.output_size

    @property
    def state_spec(self) -> list:
        """``[sum of phi, number of transitions, previous input]`` (+ the keyed memory ``[keys * H]``)."""
        spec = [tensor_spec.TensorSpec([self.output_size], tf.float32), tensor_spec.TensorSpec([1], tf.float32),
                tensor_spec.TensorSpec([self.input_size], tf.float32)]
        if self.keys:
            spec.append(tensor_spec.TensorSpec([self.keys * self.output_size], tf.float32))
        return spec

    def initial_state(self, batch_size) -> list[tf.Tensor]:
        return zero_state(self.state_spec, batch_size)

    def unroll(self, x: tf.Tensor, state) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``x [B, T, D]`` from ``state`` -> ``(readout [B, T, D + 2H], final state)``."""
        total, count, prev = state[:3]
        e = tf.concat([tf.concat([prev[:, None], x[:, :-1]], 1), x], -1)  # transitions (x_{t-1}, x_t)
        f = e
        for layer in self._phi:
            f = layer(f)
        sums = total[:, None] + tf.cumsum(f, axis=1)
        counts = count[:, None] + tf.cast(tf.range(1, tf.shape(x)[1] + 1), tf.float32)[None, :, None]
        scale = float(self.trial_length)
        readout = [x, sums / counts, sums / scale]
        final = [sums[:, -1], counts[:, -1], x[:, -1]]
        if self.keys:  # causal linear attention: sum_{j<=t} (kappa_t . psi_j) phi_j, plus the carried memory
            memory0 = tf.reshape(state[3], [-1, self.keys, self.output_size])
            write, read = self._write_key(e), self._read_key(x)  # [B, T, K]
            t_len = tf.shape(x)[1]
            causal = tf.linalg.band_part(tf.ones([t_len, t_len]), -1, 0)  # [t, j] = 1 for j <= t
            weights = tf.einsum("btk,bjk->btj", read, write) * causal
            keyed = tf.einsum("btj,bjh->bth", weights, f) + tf.einsum("btk,bkh->bth", read, memory0)
            readout.append(keyed / scale)
            memory = memory0 + tf.einsum("btk,bth->bkh", write, f)
            final.append(tf.reshape(memory, [-1, self.keys * self.output_size]))
        return tf.concat(readout, -1), final

    def step(self, x: tf.Tensor, state) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``x [B, D]`` -> ``(readout [B, D + 2H], new state)``."""
        readout, new_state = self.unroll(x[:, None], state)
        return readout[:, 0], new_state
