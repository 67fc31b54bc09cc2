"""A permutation-invariant trial memory: the transition-set context (deep sets; PEARL's context encoder,
Rakelly et al. 2019), a drop-in alternative to an LSTM/GRU over the trial for learners with memory.

Each transition ``(x_{t-1}, x_t)`` — the previous network input (its observation) and this one (the action
taken, its reward, the observation reached, the new-episode flag) — goes through an MLP ``phi``; the memory
is the running sum of ``phi`` over the trial. The readout at step t is ``[x_t, sum / (t + 1), sum / T]``: the
current input, the mean of ``phi`` over the transitions so far, and their sum scaled by the trial length
``T`` (so per-(state, action) visit counts and reward sums are linear in the readout once ``phi`` separates
the cells). The recurrent state is ``[sum, count, previous x]``; an unroll is one running sum over time (no
sequential loop), and stepping gives the same readout as unrolling.

Keyed reads (``keys > 0``): linear attention over the same transitions (a fast-weight memory,
Schlag et al. 2021). Each transition is also written into ``keys`` soft buckets ``psi(e_j)`` (softmax), the
memory being the running sum of the outer products ``psi(e_j) phi(e_j)^T``; the current input reads its own
soft bucket ``kappa(x_t)`` (softmax): ``kappa(x_t)^T M_t / T`` (an unroll computes it as causal attention,
``sum_{j<=t} (kappa_t . psi_j) phi_j``, without materialising ``M_t`` per step). In a tabular MDP ``psi`` can bucket a
transition by the state it left and ``kappa`` the current state, so the read is the statistics of the
current state's actions — a lookup the plain sum leaves to the consumer's layers.

Normalised keyed reads (``normalize_keyed``): the keyed read is also divided by its own mass
``1 + sum_{j<=t} kappa_t . psi_j`` (softmax attention's normaliser, plus one so an unvisited bucket reads
zero), appended to the readout: the mean of ``phi`` over the transitions in the current bucket, O(1) however
often the bucket was visited, where the ``/ T`` read of a bucket visited n times is O(n / T). The mass is
carried as one more column of the keyed memory (``phi`` extended by a constant 1).

Action buckets (:class:`ActionBuckets`, discrete actions): a second, action-indexed set memory beside it. Each
input's content (the caller's choice; RL² gives the encoded observation *without* the previous action: the
reward it earned, the observation it reached) is summed into the bucket of the action that earned it,
``M_t[a] = sum_{j<=t, a_j = a} c_j`` with counts ``n_t[a]``, and every action gets its own read
``[M_t[a] / (1 + n_t[a]), n_t[a] / T, 1 / (1 + n_t[a])]``: its mean content (a bandit arm's success rate),
how often it was taken, how uncertain that mean is. The reads name no action, so a scorer shared by the
actions treats every action alike (relabel the actions and the reads are relabelled the same way).

Why: in the tabular-MDP family a GRU/LSTM must learn to keep 50 (state, action) reward estimates and 500
transition counts in its state by back-propagation through 100 steps; the sum makes that memory exact and
order-free by construction, and only ``phi`` and the readout's consumer are learned.
"""

from __future__ import annotations

import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.memory import zero_state

#: trials up to this length sum by the triangular matmul (its cost grows as T^2, the scan's as T)
MATMUL_SUM_MAX_T = 256
#: inputs at least this wide go through ``phi``'s first layer (and the write key) by :func:`dense_on_transitions`
SHIFTED_MIN_INPUT = 64


def lower_triangle(n, dtype=tf.float32) -> tf.Tensor:
    """``[n, n]`` ones on and below the diagonal: ``[t, j] = 1`` for ``j <= t`` (``n`` static or a tensor)."""
    return tf.linalg.band_part(tf.ones([n, n], dtype), -1, 0)


def running_sum(f: tf.Tensor) -> tf.Tensor:
    """``tf.cumsum(f, axis=1)`` for ``f [B, T, H]``: ``f`` itself when ``T == 1`` (a step); for a static
    ``T <= MATMUL_SUM_MAX_T`` the ``[T, T]`` lower-triangular matrix times ``f`` (one batched matmul, the matrix
    broadcast over B; on CPU TF's scan kernel along a middle axis is 2.5-5x slower forward and backward at
    ``[64, 10..100, 128]``, see bench/README.md); ``tf.cumsum`` otherwise."""
    t_len = f.shape[1]
    if t_len == 1:
        return f
    if t_len is None or t_len > MATMUL_SUM_MAX_T:
        return tf.cumsum(f, axis=1)
    return tf.matmul(lower_triangle(t_len, f.dtype), f)


def dense_on_transitions(layer: tf.keras.layers.Dense, prev: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
    """``layer`` on the transitions ``[x_{t-1}, x_t]`` of ``x [B, T, D]`` (``x_{-1} = prev [B, D]``) without
    building them: the kernel's first D rows act on ``x`` once and the result is shifted by one step, so the
    ``[B, T, 2D]`` transitions are never materialised and their half of the matmul is done once per step
    instead of twice. Faster for wide inputs (recsys, D = 308: ~6-10 % of a set-memory PPO iteration), not for
    narrow ones (D = 17: one more matmul and a concat per layer cost more than they save), hence
    ``SHIFTED_MIN_INPUT``."""
    d = int(x.shape[-1])
    if not layer.built:
        layer.build(tf.TensorShape([None, 2 * d]))
    dtype = layer.compute_dtype
    x, prev, kernel = tf.cast(x, dtype), tf.cast(prev, dtype), tf.cast(layer.kernel, dtype)
    left = tf.tensordot(x[:, :-1], kernel[:d], 1)  # x_{t-1} W_prev for t >= 1
    first = tf.matmul(prev, kernel[:d])[:, None]
    out = tf.concat([first, left], 1) + tf.tensordot(x, kernel[d:], 1)
    if layer.use_bias:
        out = out + tf.cast(layer.bias, dtype)
    return layer.activation(out)


def dense_on_parts(layer: tf.keras.layers.Dense, x: tf.Tensor, rest: tf.Tensor) -> tf.Tensor:
    """``layer`` on ``concat([x, rest], -1)`` without building it: the kernel's first ``x``-width rows act on
    ``x``, the others on ``rest``. For a wide observation ``x`` (recsys, D = 308, beside a 256-wide memory
    read) the back-propagation then computes no gradient for ``x`` (an observation: nothing upstream learns),
    where through the concatenation it computes one for every column and slices it off: ~55 % of the
    layer's input-gradient matmul. Used in unrolls from ``SHIFTED_MIN_INPUT`` columns on (narrow inputs, and
    steps, which nothing differentiates: the one fused matmul over the concatenation is faster)."""
    d = int(x.shape[-1])
    if not layer.built:
        layer.build(tf.TensorShape([None, d + int(rest.shape[-1])]))
    dtype = layer.compute_dtype
    kernel = tf.cast(layer.kernel, dtype)

    def dot(a, k):  # a step's [B, n] or an unroll's [B, T, n]
        a = tf.cast(a, dtype)
        return tf.matmul(a, k) if a.shape.rank == 2 else tf.tensordot(a, k, 1)

    out = dot(x, kernel[:d]) + dot(rest, kernel[d:])
    if layer.use_bias:
        out = out + tf.cast(layer.bias, dtype)
    return layer.activation(out)


class TransitionSetContext(tf.Module):
    """``phi`` = dense ReLU layers ``(*hidden_sizes, output_size)`` over ``[x_{t-1}, x_t]`` (``2 * input_size``)."""

    def __init__(self, input_size: int, output_size: int, hidden_sizes: tuple[int, ...], trial_length: int,
                 keys: int = 0, normalize_keyed: bool = False, dense_dtype: str | None = None,
                 name: str = "set_context"):
        super().__init__(name=name)
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.trial_length = int(trial_length)
        # dense_dtype "mixed_bfloat16": phi computes in bfloat16; its output is cast back, so the sums, the
        # keys (softmax) and the attention stay float32
        self._phi = [tf.keras.layers.Dense(n, activation="relu", name=f"phi_{i}", dtype=dense_dtype)
                     for i, n in enumerate((*hidden_sizes, output_size))]
        self.keys = int(keys)
        if self.keys:
            self._write_key = tf.keras.layers.Dense(self.keys, activation="softmax", name="write_key")
            self._read_key = tf.keras.layers.Dense(self.keys, activation="softmax", name="read_key")
        if normalize_keyed and not self.keys:
            raise MetaRLInputError("normalize_keyed needs keys > 0 (it normalises the keyed read)")
        self.normalize_keyed = bool(normalize_keyed)

    @property
    def readout_size(self) -> int:
        return self.input_size + (2 + bool(self.keys) + self.normalize_keyed) * self.output_size

    @property
    def _memory_width(self) -> int:
        """Columns of the keyed memory: ``phi`` (+ the constant 1 whose sum is the mass when normalising)."""
        return self.output_size + self.normalize_keyed

    @property
    def state_spec(self) -> list:
        """``[sum of phi, number of transitions, previous input]`` (+ the keyed memory ``[keys * H]``, or
        ``[keys * (H + 1)]`` with ``normalize_keyed``)."""
        spec = [tensor_spec.TensorSpec([self.output_size], tf.float32), tensor_spec.TensorSpec([1], tf.float32),
                tensor_spec.TensorSpec([self.input_size], tf.float32)]
        if self.keys:
            spec.append(tensor_spec.TensorSpec([self.keys * self._memory_width], tf.float32))
        return spec

    def initial_state(self, batch_size) -> list[tf.Tensor]:
        return zero_state(self.state_spec, batch_size)

    def _on_transitions(self, layer: tf.keras.layers.Dense, prev: tf.Tensor, x: tf.Tensor) -> tf.Tensor:
        """``layer`` on the transitions ``[x_{t-1}, x_t]`` of ``x [B, T, D]`` (``x_{-1} = prev``)."""
        if self.input_size >= SHIFTED_MIN_INPUT:
            return dense_on_transitions(layer, prev, x)
        return layer(tf.concat([tf.concat([prev[:, None], x[:, :-1]], 1), x], -1))

    def _phi_of(self, first: tf.Tensor) -> tf.Tensor:
        """The rest of ``phi`` after its first layer's output ``first``."""
        for layer in self._phi[1:]:
            first = layer(first)
        return tf.cast(first, tf.float32)

    def _split_memory(self, flat: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor | None]:
        """The carried keyed memory ``[B, keys * width]`` -> ``([B, keys, H] memory, [B, keys] mass or None)``."""
        memory = tf.reshape(flat, [-1, self.keys, self._memory_width])
        if not self.normalize_keyed:
            return memory, None
        return memory[..., :self.output_size], memory[..., self.output_size]

    def _join_memory(self, memory: tf.Tensor, mass: tf.Tensor | None) -> tf.Tensor:
        if mass is not None:
            memory = tf.concat([memory, mass[..., None]], -1)
        return tf.reshape(memory, [-1, self.keys * self._memory_width])

    def _keyed_reads(self, keyed: tf.Tensor, mass_read: tf.Tensor | None) -> list[tf.Tensor]:
        scale = float(self.trial_length)
        return [keyed / scale] + ([keyed / (1.0 + mass_read)] if mass_read is not None else [])

    def unroll(self, x: tf.Tensor, state, with_input: bool = True) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``x [B, T, D]`` from ``state`` -> ``(readout [B, T, readout_size], final state)``; without
        ``with_input`` the readout leaves out its first part, ``x`` itself (for :func:`dense_on_parts`)."""
        total, count, prev = state[:3]
        f = self._phi_of(self._on_transitions(self._phi[0], prev, x))
        sums = total[:, None] + running_sum(f)
        counts = count[:, None] + tf.cast(tf.range(1, tf.shape(x)[1] + 1), tf.float32)[None, :, None]
        scale = float(self.trial_length)
        readout = [x] * with_input + [sums / counts, sums / scale]
        final = [sums[:, -1], counts[:, -1], x[:, -1]]
        if self.keys:  # causal linear attention: sum_{j<=t} (kappa_t . psi_j) phi_j, plus the carried memory
            memory0, mass0 = self._split_memory(state[3])
            write, read = self._on_transitions(self._write_key, prev, x), self._read_key(x)  # [B, T, K]
            weights = tf.matmul(read, write, transpose_b=True) * lower_triangle(tf.shape(x)[1])  # [B, t, j <= t]
            keyed = tf.matmul(weights, f) + tf.matmul(read, memory0)
            mass_read = mass = None
            if self.normalize_keyed:  # the mass read: sum_{j<=t} kappa_t . psi_j, plus the carried mass's
                mass_read = tf.reduce_sum(weights, -1, keepdims=True) + tf.matmul(read, mass0[..., None])
                mass = mass0 + tf.reduce_sum(write, 1)
            readout += self._keyed_reads(keyed, mass_read)
            final.append(self._join_memory(memory0 + tf.matmul(write, f, transpose_a=True), mass))
        return tf.concat(readout, -1), final

    def step(self, x: tf.Tensor, state, with_input: bool = True) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``x [B, D]`` -> ``(readout [B, readout_size], new state)``: :meth:`unroll` of one step, written out
        (the memory updated by this transition, then read) because the rollout calls it once per step;
        ``with_input`` as in :meth:`unroll`."""
        total, count, prev = state[:3]
        e = tf.concat([prev, x], -1)  # one transition: one matmul per layer (a step is overhead-bound)
        f = self._phi_of(self._phi[0](e))
        sums, counts = total + f, count + 1.0
        readout = [x] * with_input + [sums / counts, sums / float(self.trial_length)]
        new_state = [sums, counts, x]
        if self.keys:  # on the carried [B, K, width] layout as it is (no gradient flows through a step)
            memory = tf.reshape(state[3], [-1, self.keys, self._memory_width])
            write, read = self._write_key(e), self._read_key(x)  # [B, K]
            v = tf.concat([f, tf.ones_like(f[:, :1])], -1) if self.normalize_keyed else f  # + the mass column
            memory = memory + write[:, :, None] * v[:, None, :]
            keyed = tf.matmul(read[:, None], memory)[:, 0]  # [B, width]
            mass_read = None
            if self.normalize_keyed:
                keyed, mass_read = keyed[:, :self.output_size], keyed[:, self.output_size:]
            readout += self._keyed_reads(keyed, mass_read)
            new_state.append(tf.reshape(memory, [-1, self.keys * self._memory_width]))
        return tf.concat(readout, -1), new_state


class ActionBuckets(tf.Module):
    """Per-action running sums of an input's ``content`` ``[..., C]`` (see the module docstring): state
    ``[sums [A * C], counts [A], inputs seen [1]]``; the trial's first input (which reports no action: seen 0)
    goes into no bucket. ``bucket``: the one-hot ``[..., A]`` of the action each input reports as taken."""

    def __init__(self, num_actions: int, content_size: int, trial_length: int, name: str = "action_buckets"):
        super().__init__(name=name)
        self.num_actions, self.content_size = int(num_actions), int(content_size)
        self.trial_length = int(trial_length)

    @property
    def read_size(self) -> int:
        """Width of each action's read: ``[mean content, count / T, 1 / (1 + count)]``."""
        return self.content_size + 2

    @property
    def state_spec(self) -> list:
        return [tensor_spec.TensorSpec([self.num_actions * self.content_size], tf.float32),
                tensor_spec.TensorSpec([self.num_actions], tf.float32), tensor_spec.TensorSpec([1], tf.float32)]

    def initial_state(self, batch_size) -> list[tf.Tensor]:
        return zero_state(self.state_spec, batch_size)

    def _reads(self, sums: tf.Tensor, counts: tf.Tensor) -> tf.Tensor:
        """``sums [..., A, C]``, ``counts [..., A]`` -> ``[..., A, C + 2]``."""
        counts = counts[..., None]
        inverse = 1.0 / (1.0 + counts)
        return tf.concat([sums * inverse, counts / float(self.trial_length), inverse], -1)

    def unroll(self, content: tf.Tensor, bucket: tf.Tensor, state) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``content [B, T, C]``, ``bucket [B, T, A]`` -> ``(reads [B, T, A, C + 2], final state)``."""
        sums0, counts0, seen0 = state
        a, c, t_len = self.num_actions, self.content_size, content.shape[1] or tf.shape(content)[1]
        seen = seen0[:, None] + tf.cast(tf.range(t_len), tf.float32)[None, :, None]  # inputs before each
        b = tf.cast(bucket, tf.float32) * tf.cast(seen > 0, tf.float32)  # [B, T, A]
        sums = sums0[:, None] + running_sum(tf.reshape(b[..., :, None] * content[..., None, :], [-1, t_len, a * c]))
        counts = counts0[:, None] + running_sum(b)
        reads = self._reads(tf.reshape(sums, [-1, t_len, a, c]), counts)
        return reads, [sums[:, -1], counts[:, -1], seen[:, -1] + 1.0]

    def step(self, content: tf.Tensor, bucket: tf.Tensor, state) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``content [B, C]``, ``bucket [B, A]`` -> ``(reads [B, A, C + 2], new state)``."""
        sums, counts, seen = state
        b = tf.cast(bucket, tf.float32) * tf.cast(seen > 0, tf.float32)
        sums = tf.reshape(sums, [-1, self.num_actions, self.content_size]) + b[:, :, None] * content[:, None, :]
        counts = counts + b
        return self._reads(sums, counts), [tf.reshape(sums, [-1, self.num_actions * self.content_size]), counts,
                                           seen + 1.0]
