"""Recurrent actor-critic for RL²: ``(obs, prev_action, prev_reward, new_episode)`` -> embed -> LSTM/GRU ->
policy logits and a value, with explicit recurrent state (tf-agents ``Network`` convention).

Discrete actions of any shape (scalar, multi-discrete ``[m]``) get one categorical per action element:
logits ``[..., *action_shape, num_values]``. Slates (``slate=True``: ``[k]`` distinct items) get one logit
per item, ``[..., num_values]``, for a Plackett-Luce slate distribution (``algorithms/rl2/losses.py``).
An ``obs["action_mask"]`` (1 = allowed) masks the logits of scalar actions.

``scoring="item_features"`` (slate / multi-slot families whose ``obs["doc_features"]`` ``[num_values, F]`` gives
every item's features): the logits come from one shared scorer over ``[memory, item features]`` —
``Dense(relu(W_h h + W_d x_i + b))`` per item — instead of one output per item id, so what the policy learns
about one item carries over to items with similar features.

``prior`` (a :class:`~metarl_apps.networks.prior.FrozenScorer`, slate families): ``prior_scale * q(doc)``, q
standardised over the candidates, is added to every item's logit (of every slot), ``prior_scale`` trainable:
the policy starts as a softmax over the population reward model and the heads learn the departures from it.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.env import DOC_FEATURES, OBS, PREV_ACTION
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.encoding import encode_observation, encoded_size, item_feature_size, split_action_mask
from metarl_apps.networks.memory import check_cell, make_rnn, rnn_state_spec, zero_state
from metarl_apps.networks.set_context import (
    SHIFTED_MIN_INPUT,
    ActionBuckets,
    TransitionSetContext,
    dense_on_parts,
)

MASKED_LOGIT = -1e9
COMPUTE_DTYPES = ("float32", "bfloat16")


def check_compute_dtype(compute_dtype: str, cell: str) -> str:
    """``compute_dtype`` if this network can compute in it; a clear error otherwise."""
    if compute_dtype not in COMPUTE_DTYPES:
        raise MetaRLInputError(f"compute_dtype={compute_dtype!r}: must be one of "
                               f"{', '.join(repr(d) for d in COMPUTE_DTYPES)}")
    if compute_dtype == "bfloat16" and cell != "set":
        raise MetaRLInputError(f"compute_dtype='bfloat16' is built for cell 'set', not {cell!r} (a Keras LSTM/GRU "
                               f"is no faster in bfloat16 on CPU: bench/README.md); use compute_dtype 'float32'")
    return compute_dtype


def action_layout(action_spec) -> tuple[tuple[int, ...], int, int]:
    """``(action_shape, num_values, minimum)`` of a bounded integer action spec; clear error otherwise."""
    if not (isinstance(action_spec, tensor_spec.BoundedTensorSpec) and action_spec.dtype.is_integer):
        raise MetaRLInputError(
            f"action spec {action_spec}: this network needs a single bounded integer action spec "
            f"(discrete, multi-discrete or slate); continuous actions need a Gaussian policy"
        )
    lo, hi = np.min(action_spec.minimum), np.max(action_spec.maximum)
    if not (np.all(action_spec.minimum == lo) and np.all(action_spec.maximum == hi)):
        raise MetaRLInputError(f"action spec {action_spec}: every action element must share the same bounds")
    return tuple(action_spec.shape.as_list()), int(hi - lo + 1), int(lo)


class RecurrentActorCritic(tf.Module):
    """LSTM (default) or GRU actor-critic over trial observations; ``cell="set"`` replaces ``embed -> LSTM``
    by the permutation-invariant transition-set memory of :mod:`metarl_apps.networks.set_context` (its
    readout, through one dense ReLU layer of ``hidden_size``, feeds the heads; ``trial_length`` scales its sums).

    ``step`` acts one step (``[B, ...]``); ``unroll`` runs whole sequences (``[B, T, ...]``) from a given
    state. Both share the same weights (the Keras RNN layer and its cell).

    ``separate_value`` (LSTM/GRU): the value head reads its own embedding and recurrent cell instead of the
    policy's (the state is then the policy cell's state followed by the value cell's), so the value loss
    does not shape the policy's memory.

    ``task_info_size`` > 0 (an asymmetric, "privileged" critic): the value head reads
    ``relu(Dense(hidden_size)([value memory, task_info]))``, ``task_info`` ``[B, task_info_size]`` being the task's
    hidden parameters, given in training only. The policy's logits never depend on it; without it (acting, an
    exported policy) the value is computed from zeros in its place and means nothing.

    ``set_action_reads`` ("set", one discrete action per step): :class:`ActionBuckets` beside the set memory
    sums each input's encoding without its previous action into that action's bucket; one scorer shared by the
    actions, ``relu(Dense(read_a) + Dense(memory))`` then a linear unit, adds a score to each action's logit.
    The state is the set memory's followed by the buckets' ``[sums, counts, inputs seen]``.
    """

    def __init__(self, observation_spec, action_spec, *, cell: str = "lstm", hidden_size: int = 128,
                 embed_sizes: tuple[int, ...] = (64,), slate: bool = False, scoring: str = "per_item",
                 item_hidden: int = 64, trial_length: int = 1, set_keys: int = 0,
                 set_normalize_keyed: bool = False, prior=None, prior_scale: float = 1.0,
                 separate_value: bool = False, head_hidden: int = 0, task_info_size: int = 0,
                 compute_dtype: str = "float32", set_action_reads: bool = False,
                 name: str = "recurrent_actor_critic"):
        super().__init__(name=name)
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self.action_shape, self.num_values, self.action_min = action_layout(action_spec)
        #: > 0: actions are slates of this many distinct items, scored by one logit per item
        self.slate_size = 0
        if slate:
            if len(self.action_shape) != 1 or self.action_shape[0] > self.num_values:
                raise MetaRLInputError(f"action spec {action_spec}: a slate action must have shape [k] with "
                                       f"k <= the number of items ({self.num_values})")
            self.slate_size = self.action_shape[0]
        self.cell_type = cell
        self.compute_dtype = check_compute_dtype(compute_dtype, cell)
        # Keras' mixed policy: float32 variables, bfloat16 matmuls; None = the float32 default
        dense_dtype = "mixed_bfloat16" if self.compute_dtype == "bfloat16" else None
        self.hidden_size = int(hidden_size)
        d = encoded_size(observation_spec)
        self._input_size = d
        self._embed = [tf.keras.layers.Dense(n, activation="relu", name=f"embed_{i}")
                       for i, n in enumerate(embed_sizes)]
        self.action_reads = bool(set_action_reads)
        if self.action_reads and (cell != "set" or self.action_shape or self.slate_size or scoring != "per_item"):
            raise MetaRLInputError(f"set_action_reads needs cell 'set', one discrete action per step and scoring "
                                   f"'per_item' (got cell {cell!r}, action shape {list(self.action_shape)}, scoring "
                                   f"{scoring!r}); set set_action_reads false")
        if check_cell(cell) == "set":
            self._embed = []  # phi of the set memory embeds the transitions
            self._set = TransitionSetContext(d, hidden_size, tuple(embed_sizes), trial_length, keys=set_keys,
                                             normalize_keyed=set_normalize_keyed, dense_dtype=dense_dtype)
            if self.action_reads:  # what each input brought, without the action that brought it
                self._blind_spec = {k: v for k, v in observation_spec.items() if k != PREV_ACTION}
                self._buckets = ActionBuckets(self.num_values, encoded_size(self._blind_spec), trial_length)
            # the readout is linear in the sums; one dense ReLU layer gives the heads a nonlinear memory
            self._readout = tf.keras.layers.Dense(hidden_size, activation="relu", name="set_readout",
                                                  dtype=dense_dtype)
        else:
            self._rnn = make_rnn(cell, hidden_size)
        self.separate_value = bool(separate_value)
        if self.separate_value:
            if self.cell_type == "set":
                raise MetaRLInputError("separate_value needs an 'lstm' or 'gru' cell, not 'set'; use "
                                       "value_network: shared with the set memory")
            self._value_embed = [tf.keras.layers.Dense(n, activation="relu", name=f"value_embed_{i}")
                                 for i, n in enumerate(embed_sizes)]
            self._value_rnn = make_rnn(cell, hidden_size, name=f"value_{cell}")
        #: > 0: each head reads ``relu(Dense(head_hidden)([memory, encoded current observation]))`` instead of
        #: the memory alone, so looking up what the memory holds about the current observation (e.g. a
        #: tabular MDP's reward estimates for the current state) need not happen inside the recurrent cell
        self.head_hidden = int(head_hidden)
        if self.head_hidden:
            self._policy_hidden = tf.keras.layers.Dense(self.head_hidden, activation="relu", name="policy_hidden",
                                                        dtype=dense_dtype)
            self._value_hidden = tf.keras.layers.Dense(self.head_hidden, activation="relu", name="value_hidden",
                                                       dtype=dense_dtype)
        self.item_scoring = scoring == "item_features"
        if self.item_scoring:
            item_feature_size(observation_spec.get(OBS) if isinstance(observation_spec, dict) else None,
                              self.num_values, self.action_shape, "RL2")
            self._item_h = tf.keras.layers.Dense(item_hidden, name="item_memory", dtype=dense_dtype)
            self._item_x = tf.keras.layers.Dense(item_hidden, use_bias=False, name="item_features", dtype=dense_dtype)
            n_logits = 1 if self.slate_size else max(1, int(np.prod(self.action_shape or (1,))))
        elif scoring == "per_item":
            n_logits = self.num_values if self.slate_size else int(np.prod(self.action_shape or (1,))) * self.num_values
        else:
            raise MetaRLInputError(f"scoring={scoring!r}: must be 'per_item' or 'item_features'")
        self._policy_head = tf.keras.layers.Dense(
            n_logits, kernel_initializer=tf.keras.initializers.Orthogonal(0.01), name="policy", dtype=dense_dtype)
        self._value_head = tf.keras.layers.Dense(1, name="value", dtype=dense_dtype)
        if self.action_reads:  # one scorer shared by the actions over [its own read, the memory]
            self._action_read = tf.keras.layers.Dense(hidden_size, name="action_read", dtype=dense_dtype)
            self._action_memory = tf.keras.layers.Dense(hidden_size, use_bias=False, name="action_memory",
                                                        dtype=dense_dtype)
            self._action_score = tf.keras.layers.Dense(
                1, kernel_initializer=tf.keras.initializers.Orthogonal(0.01), name="action_score", dtype=dense_dtype)
        self.task_info_size = int(task_info_size)
        if self.task_info_size:
            self._info_hidden = tf.keras.layers.Dense(self.hidden_size, activation="relu", name="value_task_info",
                                                      dtype=dense_dtype)
        self.prior = prior
        if prior is not None:
            if len(self.action_shape) != 1:
                raise MetaRLInputError(f"action spec {action_spec}: a prior scores items of a [k] slate action")
            self.prior_scale = tf.Variable(float(prior_scale), name="prior_scale")
        # Build every layer once so `step` and `unroll` share variables from the start.
        self.unroll(tf.nest.map_structure(lambda s: tf.zeros([1, 1] + s.shape.as_list(), s.dtype), observation_spec),
                    self.initial_state(1))

    # ------------------------------------------------------------------ state
    @property
    def state_spec(self):
        if self.cell_type == "set":
            return self._set.state_spec + (self._buckets.state_spec if self.action_reads else [])
        return rnn_state_spec(self.cell_type, self.hidden_size) * (2 if self.separate_value else 1)

    def initial_state(self, batch_size) -> list[tf.Tensor]:
        return zero_state(self.state_spec, batch_size)

    # ---------------------------------------------------------------- forward
    def _features(self, observation, outer_rank: int) -> tuple[tf.Tensor, tf.Tensor | None, tf.Tensor]:
        """The observation encoded once (``[*outer, D]``, returned last), through the policy's embedding (none
        for "set") and, with ``separate_value``, through the value's (else None)."""
        encoded = encode_observation(observation, self.observation_spec, outer_rank)
        x, x_value = encoded, encoded if self.separate_value else None
        for layer in self._embed:
            x = layer(x)
        for layer in self._value_embed if self.separate_value else ():
            x_value = layer(x_value)
        return x, x_value, encoded

    def _split(self, state) -> tuple[list, list]:
        """``(policy cell state, value cell state)``; the latter empty unless ``separate_value``."""
        state = list(state)
        n = len(state) // 2 if self.separate_value else len(state)
        return state[:n], state[n:]

    def _action_bucket(self, observation) -> tf.Tensor:
        """One-hot ``[..., num_values]`` of the action each input reports as taken (``set_action_reads``)."""
        return tf.one_hot(tf.cast(observation[PREV_ACTION], tf.int32) - self.action_min, self.num_values)

    def _set_memory(self, x, state, observation, outer_rank: int):
        """The set memory's ``step`` (``outer_rank`` 1) or ``unroll`` (2) through the readout layer, and the
        action buckets' (``set_action_reads``) -> ``(h, new state, each action's read or None)``."""
        state, n = list(state), len(self._set.state_spec)
        # an unroll of a wide input (back-propagated through) gives the readout layer x apart from the memory read;
        # a step (the rollout's, no gradient) keeps the one fused matmul over the concatenation, faster there
        wide = outer_rank == 2 and self._set.input_size >= SHIFTED_MIN_INPUT
        h, new_state = (self._set.step if outer_rank == 1 else self._set.unroll)(x, state[:n], with_input=not wide)
        reads = None
        if self.action_reads:
            blind = encode_observation({k: v for k, v in observation.items() if k != PREV_ACTION}, self._blind_spec,
                                       outer_rank)
            buckets = self._buckets.step if outer_rank == 1 else self._buckets.unroll
            reads, bucket_state = buckets(blind, self._action_bucket(observation), state[n:])
            new_state = list(new_state) + bucket_state
        return dense_on_parts(self._readout, x, h) if wide else self._readout(h), list(new_state), reads

    def _heads(self, h: tf.Tensor, observation, encoded: tf.Tensor | None = None,
               h_value: tf.Tensor | None = None, task_info: tf.Tensor | None = None,
               action_reads: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Logits and value from the memory ``h`` (``h_value``: the value's own memory) and the observation
        (``encoded``: its encoding, computed here when not given); ``task_info`` ``[B, F]``: see the class;
        ``action_reads`` ``[..., num_values, R]`` (``set_action_reads``): each action's read of the set memory,
        scored by one shared scorer and added to that action's logit."""
        h_value = h if h_value is None else h_value
        scores = None
        if action_reads is not None:  # from the memory before head_hidden: the same input as the policy head's
            z = tf.nn.relu(self._action_read(action_reads) + self._action_memory(h)[..., None, :])
            scores = tf.cast(tf.squeeze(self._action_score(z), -1), tf.float32)
        if self.head_hidden:
            if encoded is None:
                encoded = encode_observation(observation, self.observation_spec, len(h.shape) - 1)
            encoded = tf.cast(encoded, h.dtype)
            h_value = self._value_hidden(tf.concat([h_value, encoded], -1))
            h = self._policy_hidden(tf.concat([h, encoded], -1))
        if self.task_info_size:
            h_value = self._info_hidden(tf.concat([h_value, self._task_info(task_info, h_value)], -1))
        outer = tf.shape(h)[:-1]
        per_item = [] if self.slate_size else list(self.action_shape)
        if self.item_scoring:  # [..., items, outputs] from the shared scorer -> [..., *slots, items]
            docs = tf.cast(observation[OBS][DOC_FEATURES], h.dtype)
            z = tf.nn.relu(self._item_h(h)[..., None, :] + self._item_x(docs))
            logits = self._policy_head(z)
            logits = tf.squeeze(logits, -1) if not per_item else tf.linalg.matrix_transpose(logits)
        else:
            logits = self._policy_head(h)
            logits = tf.reshape(logits, tf.concat([outer, per_item + [self.num_values]], 0))
        logits = tf.cast(logits, tf.float32)  # bfloat16 compute: distributions and losses stay float32
        if scores is not None:
            logits = logits + scores
        if self.prior is not None:  # [*outer, items], the same for every slot
            q = tf.stop_gradient(self.prior.standardized(observation, len(h.shape) - 1))
            logits = logits + self.prior_scale * (q if self.slate_size else q[..., None, :])
        _, mask = split_action_mask(observation)
        if mask is not None and not self.action_shape:
            logits = tf.where(tf.cast(mask, tf.bool), logits, MASKED_LOGIT)
        value = tf.squeeze(tf.cast(self._value_head(h_value), tf.float32), -1)
        return logits, value

    def _task_info(self, task_info: tf.Tensor | None, h_value: tf.Tensor) -> tf.Tensor:
        """``task_info`` ``[B, F]`` (zeros when None) broadcast to ``h_value``'s outer shape ``[B(, T)]``."""
        outer = tf.shape(h_value)[:-1]
        if task_info is None:
            return tf.zeros(tf.concat([outer, [self.task_info_size]], 0), h_value.dtype)
        info = tf.cast(task_info, h_value.dtype)
        if info.shape.rank != 2 or info.shape[-1] != self.task_info_size:
            raise MetaRLInputError(f"task_info of shape {info.shape}: expected [batch, {self.task_info_size}]")
        for _ in range(len(h_value.shape) - 2):
            info = info[:, None]
        return tf.broadcast_to(info, tf.concat([outer, [self.task_info_size]], 0))

    def step(self, observation, state, task_info=None):
        """One step: observation ``[B, ...]`` -> ``(logits [B, *A, n], value [B], new_state)``."""
        (x, x_value, encoded), h_value, reads = self._features(observation, 1), None, None
        if self.cell_type == "set":
            h, new_state, reads = self._set_memory(x, state, observation, 1)
        else:
            state, value_state = self._split(state)
            h, new_state = self._rnn.cell(x, state)
            new_state = list(new_state)
            if self.separate_value:
                h_value, new_value_state = self._value_rnn.cell(x_value, value_state)
                new_state += list(new_value_state)
        logits, value = self._heads(h, observation, encoded, h_value, task_info, reads)
        return logits, value, list(new_state)

    def unroll(self, observation, state, task_info=None):
        """Sequences: observation ``[B, T, ...]`` -> ``(logits [B, T, *A, n], value [B, T], final_state)``."""
        (x, x_value, encoded), h_value, reads = self._features(observation, 2), None, None
        if self.cell_type == "set":
            h, final_state, reads = self._set_memory(x, state, observation, 2)
        else:
            state, value_state = self._split(state)
            out = self._rnn(x, initial_state=state)
            h, final_state = out[0], list(out[1:])
            if self.separate_value:
                out = self._value_rnn(x_value, initial_state=value_state)
                h_value, final_state = out[0], final_state + list(out[1:])
        logits, value = self._heads(h, observation, encoded, h_value, task_info, reads)
        return logits, value, final_state
