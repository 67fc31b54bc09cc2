"""MAML's policy: a functional MLP over the task observation, with per-task (stacked) parameters, and the
adapted tf-agents policy that takes the inner gradient steps online, inside the trial.

Heads (chosen from the action spec):
  * continuous ``[A]`` float actions: a diagonal Gaussian in units of the action range: the env action is
    ``center + scale · u``, ``u ~ N(μ_θ(s), exp(log_std)²)``; ``log_std`` ``[A]`` is a parameter (adapted too);
  * discrete scalar actions: one categorical (``obs["action_mask"]``, 1 = allowed, masks the logits);
  * integer ``[k]`` actions (multi-discrete, recommender slates): one categorical per slot;
  * ``objective: reward_model`` (discrete actions and slates): one predicted reward per action value / item; the
    policy serves the argmax action / the top-k items (see :func:`reward_model_loss_fn`).

Item scoring (``reward_model`` only): ``per_item`` (default) is one MLP over the whole encoded observation with
one output per item id; ``item_features`` scores each item with one shared MLP over ``[its features, context]``
(the features are ``obs["doc_features"]`` ``[num_items, F]``; the context is the features of the item chosen
last — ``obs["clicked"]``, zeros and a 0 flag when none — and the other observation leaves). The same weights
score every item, so what an inner step learns from one clicked item moves the scores of similar items (the
global reward model baseline's inductive bias, here meta-learned and adapted per user).

The network sees only ``observation["obs"]`` (encoded by :mod:`metarl_apps.networks.encoding`), not the trial
inputs ``prev_action`` / ``prev_reward``: adaptation is the gradient step, not a memory.

**Budget and online adaptation** (:class:`MAMLPolicy`): an adaptation budget of K means K inner gradient steps,
each on one inner episode of the task's own interaction. The policy plays episode 1 with θ, takes an inner step
on it, plays episode 2 with θ'₁, and so on; after K steps it keeps θ'_K. So the reward the evaluator counts
over the first K episodes *includes* the episodes spent adapting (nothing is free). Its state, reset at every
trial's ``FIRST`` step (tf-agents' automatic state reset to zeros), holds each task's parameter offset
``θ'_i − θ`` (zero = unadapted) and the current episode's buffer. ``PolicySaver`` exports it (the inner
gradient step is part of the saved ``action`` graph).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from metarl_apps.algorithms.maml.losses import advantages, pg_inner_loss
from metarl_apps.algorithms.rl2.losses import action_distribution
from metarl_apps.core.agent import AdaptedPolicy
from metarl_apps.core.env import CHOICE, CLICKED, DOC_FEATURES, NEW_EPISODE, OBS
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.encoding import (
    ACTION_MASK,
    encode_observation,
    encoded_size,
    item_feature_size,
    split_action_mask,
)
from metarl_apps.networks.functional import FunctionalMLP
from metarl_apps.networks.recurrent import MASKED_LOGIT, action_layout

tfd = tfp.distributions


class FunctionalPolicyNet:
    """``obs -> action distribution`` with explicit parameters, batched over tasks.

    Parameters: the MLP's ``[W_0, b_0, ..., W_L, b_L]`` then, for Gaussian heads, ``log_std`` ``[A]``.
    Stacked parameters carry a leading task dimension ``[N, ...]``; inputs are ``[N, M, ...]`` (M samples per
    task).
    """

    def __init__(self, observation_spec, action_spec, hidden_sizes: Sequence[int], activation: str = "tanh",
                 dtype: tf.DType = tf.float32, reward_model: bool = False, scoring: str = "per_item"):
        self.reward_model = bool(reward_model)
        self.item_scoring = scoring == "item_features"
        self.observation_spec = observation_spec
        self.action_spec = action_spec
        self._obs_spec = {OBS: observation_spec[OBS]}
        self.input_size = encoded_size(self._obs_spec)
        self.input_shape: tuple[int, ...] = (self.input_size,)  # of one step's features (see :meth:`features`)
        _, self._mask_spec = split_action_mask(self._obs_spec)
        if action_spec.dtype.is_floating:
            if self.reward_model:
                raise MetaRLInputError(f"action spec {action_spec}: MAML objective 'reward_model' needs discrete "
                                       f"actions or slates (one predicted reward per action / item); use "
                                       f"'policy_gradient'")
            if not isinstance(action_spec, tensor_spec.BoundedTensorSpec) or len(action_spec.shape) != 1:
                raise MetaRLInputError(f"action spec {action_spec}: MAML's Gaussian head needs a bounded [A] float "
                                       f"action spec")
            self.continuous = True
            self.action_shape = tuple(action_spec.shape.as_list())
            lo = np.broadcast_to(action_spec.minimum, self.action_shape).astype(np.float32)
            hi = np.broadcast_to(action_spec.maximum, self.action_shape).astype(np.float32)
            self.center, self.scale = (hi + lo) / 2.0, (hi - lo) / 2.0
            out = self.action_shape[0]
        else:
            self.continuous = False
            self.action_shape, self.num_values, self.action_min = action_layout(action_spec)
            out = int(np.prod(self.action_shape or (1,))) * self.num_values
            if self.reward_model:
                if len(self.action_shape) > 1:
                    raise MetaRLInputError(f"action spec {action_spec}: MAML objective 'reward_model' takes a scalar "
                                           f"discrete action or a [k] slate of distinct items")
                out = self.num_values  # one predicted reward per action value / item
        # slate families that report which slate position was chosen (obs["choice"], ``k`` = none): the reward
        # model learns per item (chosen: the reward, other served items: 0) instead of per slate
        obs = observation_spec[OBS]
        self.item_feedback = bool(self.reward_model and len(self.action_shape) == 1 and isinstance(obs, dict)
                                  and CHOICE in obs)
        if self.item_scoring:
            out = self._init_item_scoring(obs)
        self.dtype = tf.as_dtype(dtype)  # float64 only for finite-difference tests
        self.mlp = FunctionalMLP(self.input_size, hidden_sizes, out, activation=activation, dtype=self.dtype)
        self.raw_dtype = tf.float32 if self.continuous else tf.int32

    def _init_item_scoring(self, obs_spec) -> int:
        """Check the family for ``scoring: item_features``, set the per-item input size; returns the MLP's outputs."""
        if not self.reward_model or self.continuous:
            raise MetaRLInputError("MAML scoring 'item_features' scores items for a reward model: it needs objective "
                                   "'reward_model' (discrete actions or slates); use scoring 'per_item'")
        f = item_feature_size(obs_spec, self.num_values, self.action_shape, "MAML")
        self._context_spec = {k: v for k, v in obs_spec.items() if k not in (DOC_FEATURES, CLICKED, ACTION_MASK)}
        self._has_clicked = CLICKED in obs_spec
        self.input_size = f + (f + 1 if self._has_clicked else 0) + encoded_size(self._context_spec)
        self.input_shape = (self.num_values, self.input_size)
        return 1

    # -------------------------------------------------------------- parameters
    @property
    def param_shapes(self) -> list[tuple[int, ...]]:
        return self.mlp.param_shapes + ([self.action_shape] if self.continuous else [])

    def init_params(self, seed: int) -> list[tf.Variable]:
        """Keras-``Dense`` initialisation, output layer scaled by 0.01 (near-uniform / zero-mean start)."""
        params = self.mlp.init_params(seed)
        params[-2].assign(params[-2] * 0.01)
        if self.continuous:
            params.append(tf.Variable(tf.zeros(self.action_shape, self.dtype), name="log_std"))
        return params

    # ----------------------------------------------------------------- forward
    def features(self, observation, outer_rank: int = 1) -> tuple[tf.Tensor, tf.Tensor | None]:
        """``(x [*outer, *input_shape], action mask [*outer, n] or None)`` of a trial observation: ``x`` is the
        encoded observation ``[D]``, or with item scoring one input row per item ``[num_items, D_item]``."""
        obs = {OBS: observation[OBS]}
        x = self._item_inputs(obs[OBS], outer_rank) if self.item_scoring else encode_observation(
            obs, self._obs_spec, outer_rank)
        _, mask = split_action_mask(obs)
        return x, (tf.cast(mask, tf.float32) if mask is not None else None)

    def _item_inputs(self, obs, outer_rank: int) -> tf.Tensor:
        """``[*outer, num_items, D_item]``: each item's features, then the shared context (see the module doc)."""
        docs = tf.cast(obs[DOC_FEATURES], tf.float32)  # [*outer, I, F]
        parts = []
        if self._has_clicked:
            clicked = tf.cast(obs[CLICKED], tf.int32)
            flag = tf.cast(clicked < self.num_values, tf.float32)[..., None]
            doc = tf.gather(docs, tf.minimum(clicked, self.num_values - 1), batch_dims=outer_rank)
            parts += [doc * flag, flag]
        if self._context_spec:
            rest = {k: obs[k] for k in self._context_spec}
            parts.append(encode_observation({OBS: rest}, {OBS: self._context_spec}, outer_rank))
        if not parts:
            return docs
        context = tf.concat(parts, axis=-1)[..., None, :]
        context = tf.broadcast_to(context, tf.concat([tf.shape(docs)[:-1], tf.shape(context)[-1:]], 0))
        return tf.concat([docs, context], axis=-1)

    def distribution(self, stacked: Sequence[tf.Tensor], x: tf.Tensor, mask: tf.Tensor | None = None):
        """The action distribution over raw actions (``u`` or 0-based indices), batch ``[N, M]``.

        Args:
          stacked: per-task parameters ``[N, ...]``.
          x: features ``[N, M, D]``.
          mask: ``[N, M, n]`` or None (scalar discrete actions only).
        """
        n_mlp = len(self.mlp.param_shapes)
        out = self.mlp.apply_batched(stacked[:n_mlp], x)  # [N, M, out]
        if self.continuous:
            std = tf.exp(tf.clip_by_value(stacked[n_mlp], tf.cast(-5.0, self.dtype), tf.cast(2.0, self.dtype)))[:, None]
            return tfd.Independent(tfd.Normal(out, std), reinterpreted_batch_ndims=1)
        logits = tf.reshape(out, tf.concat([tf.shape(out)[:2], list(self.action_shape) + [self.num_values]], 0))
        if mask is not None and not self.action_shape:
            logits = tf.where(mask > 0.5, logits, MASKED_LOGIT)
        return action_distribution(logits, len(self.action_shape), 0)

    # ------------------------------------------------------ reward-model head
    def scores(self, stacked: Sequence[tf.Tensor], x: tf.Tensor) -> tf.Tensor:
        """``reward_model``: predicted reward of every action value / item, ``[N, M, num_values]`` (``x``
        ``[N, M, *input_shape]``)."""
        params = stacked[:len(self.mlp.param_shapes)]
        if not self.item_scoring:
            return self.mlp.apply_batched(params, x)
        shape = tf.shape(x)  # [N, M, I, D_item]: all items of all steps in one batched matmul per layer
        out = self.mlp.apply_batched(params, tf.reshape(x, [shape[0], shape[1] * shape[2], shape[3]]))
        return tf.reshape(out, shape[:3])

    def serve(self, scores: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
        """``reward_model``: the argmax allowed action ``[...]``, or the top-k items ``[..., k]`` of ``scores``."""
        if mask is not None and not self.action_shape:
            scores = tf.where(mask > 0.5, scores, MASKED_LOGIT)
        if self.action_shape:
            return tf.math.top_k(scores, k=self.action_shape[0]).indices
        return tf.argmax(scores, axis=-1, output_type=tf.int32)

    def predicted_reward(self, scores: tf.Tensor, raw: tf.Tensor) -> tf.Tensor:
        """``reward_model``: the prediction for what was served, ``[...]`` (a slate: the mean over its items)."""
        raw = tf.cast(raw, tf.int32)
        if self.action_shape:
            return tf.reduce_mean(tf.gather(scores, raw, batch_dims=len(raw.shape) - 1), axis=-1)
        return tf.gather(scores, raw, batch_dims=len(raw.shape))

    def to_env_action(self, raw: tf.Tensor) -> tf.Tensor:
        if self.continuous:
            return tf.cast(self.center + self.scale * raw, self.action_spec.dtype)
        return tf.cast(raw + self.action_min, self.action_spec.dtype)


def inner_loss_fn(net: FunctionalPolicyNet, x, mask, raw, rewards, *, estimator: str, baseline: str,
                  discount: float, normalize: bool, choice=None):
    """``stacked params -> [N]`` inner losses on one episode per task (``x [N, T, D]``, ``raw [N, T, ...]``,
    ``rewards [N, T]``). A ``reward_model`` network gets :func:`reward_model_loss_fn` (the other keywords are
    policy-gradient settings and are ignored)."""
    if net.reward_model:
        return reward_model_loss_fn(net, x, raw, rewards, choice)
    adv, values = advantages(x, rewards, discount=discount, baseline=baseline, normalize=normalize, per_task=True)

    def loss(stacked):
        logp = net.distribution(stacked, x, mask).log_prob(raw)
        return pg_inner_loss(logp, rewards, adv, values, estimator=estimator, discount=discount)

    return loss


def reward_model_loss_fn(net: FunctionalPolicyNet, x, raw, rewards, choice=None):
    """``stacked params -> [N]``: mean squared error between each served action's / slate's predicted reward
    and the observed reward, over one episode per task (``x [N, T, D]``, ``raw [N, T, ...]``, ``rewards [N, T]``).

    With ``choice [N, T]`` (the slate position the user chose, ``k`` for none) each served item is its own
    regression target: the reward for the chosen item, 0 for the others (the global reward model's targets).
    """
    rewards = tf.cast(rewards, net.dtype)

    def loss(stacked):
        scores = net.scores(stacked, x)
        if choice is None:
            return tf.reduce_mean(tf.square(net.predicted_reward(scores, raw) - rewards), axis=1)
        served = tf.gather(scores, tf.cast(raw, tf.int32), batch_dims=2)  # [N, T, k]
        chosen = tf.one_hot(tf.cast(choice, tf.int32), served.shape[-1], dtype=net.dtype)  # none: all zeros
        return tf.reduce_mean(tf.square(served - chosen * rewards[..., None]), axis=[1, 2])

    return loss


class MAMLPolicy(AdaptedPolicy):
    """Adapts online: after each of the first ``budget`` inner episodes of a trial, one inner gradient step per
    task on that episode (see the module docstring). Batched over tasks: row i has its own parameters
    ``θ + offset_i``.

    Args:
      net: the policy network.
      params: the meta-learned initial parameters θ (Variables, unstacked).
      lrs: the inner rate (float) or one rate Variable per parameter (Meta-SGD).
      horizon: steps per inner episode.
      budget: inner steps to take (0 = never adapt).
      greedy: act by the mode (mean / argmax) instead of sampling (for tests and exports).
    """

    def __init__(self, net: FunctionalPolicyNet, params: Sequence[tf.Variable], lrs, time_step_spec, action_spec,
                 *, horizon: int, budget: int, estimator: str, baseline: str, discount: float, normalize: bool,
                 greedy: bool = False, adaptation: dict | None = None):
        self._net = net
        self._theta = list(params)
        self._lrs = list(lrs) if isinstance(lrs, (list, tuple)) else float(lrs)
        self._horizon = int(horizon)
        self._budget = int(budget)
        self._loss_kwargs = dict(estimator=estimator, baseline=baseline, discount=discount, normalize=normalize)
        self._greedy = greedy
        h = self._horizon
        state_spec = {
            "offset": [tensor_spec.TensorSpec(s, tf.float32) for s in net.param_shapes],
            "x": tensor_spec.TensorSpec((h, *net.input_shape), tf.float32),
            "raw": tensor_spec.TensorSpec((h, *net.action_shape), net.raw_dtype),
            "reward": tensor_spec.TensorSpec((h,), tf.float32),
            "t": tensor_spec.TensorSpec((), tf.int32),  # steps of the current episode taken so far
            "steps": tensor_spec.TensorSpec((), tf.int32),  # inner steps taken
        }
        if net._mask_spec is not None:
            state_spec["mask"] = tensor_spec.TensorSpec((h, net.num_values), tf.float32)
        if net.item_feedback:  # the slate position chosen at each step of the episode
            state_spec["choice"] = tensor_spec.TensorSpec((h,), tf.int32)
        super().__init__(time_step_spec, action_spec, policy_state_spec=state_spec, adaptation=adaptation,
                         name="maml_policy")

    def _adapted(self, state) -> list[tf.Tensor]:
        """Per-row parameters ``[B, ...]``: θ + offset."""
        return [p[None] + o for p, o in zip(self._theta, state["offset"], strict=True)]

    def _inner_step(self, state) -> list[tf.Tensor]:
        """New offsets after one inner step on the buffered episode (rows update independently)."""
        x = state["x"]
        mask = state.get("mask")
        loss_fn = inner_loss_fn(self._net, x, mask, state["raw"], state["reward"], choice=state.get("choice"),
                                **self._loss_kwargs)
        params = self._adapted(state)
        with tf.GradientTape() as tape:
            tape.watch(params)
            loss = tf.reduce_sum(loss_fn(params))
        grads = tape.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        rates = self._lrs if isinstance(self._lrs, list) else [self._lrs] * len(params)
        return [o - lr * g for o, lr, g in zip(state["offset"], rates, grads, strict=True)]  # lr broadcasts over rows

    def _action(self, time_step: ts.TimeStep, policy_state, seed):
        state = dict(policy_state)
        b = tf.shape(time_step.reward)[0]
        first = tf.equal(time_step.step_type, ts.StepType.FIRST)
        t = state["t"]
        # the reward of the previous action arrives now: write it at slot t - 1
        prev = tf.one_hot(t - 1, self._horizon, dtype=tf.float32)  # all-zero when t == 0
        state["reward"] = state["reward"] + prev * time_step.reward[:, None]
        if self._net.item_feedback:  # and with it the position chosen in that slate
            chosen = tf.cast(time_step.observation[OBS][CHOICE], tf.int32)[:, None]
            state["choice"] = tf.where(prev > 0.5, chosen, state["choice"])
        new_episode = tf.logical_and(time_step.observation[NEW_EPISODE] > 0.5, tf.logical_not(first))
        update = tf.logical_and(tf.logical_and(new_episode, t >= self._horizon), state["steps"] < self._budget)
        if self._budget > 0:
            offsets = tf.cond(tf.reduce_any(update), lambda: self._inner_step(state), lambda: state["offset"])

            def pick(new, old):
                cond = tf.reshape(update, [-1] + [1] * (len(old.shape) - 1))
                return tf.where(cond, new, old)

            state["offset"] = [pick(n, o) for n, o in zip(offsets, state["offset"], strict=True)]
            state["steps"] = state["steps"] + tf.cast(update, tf.int32)
        t = tf.where(new_episode, tf.zeros_like(t), t)
        state["reward"] = tf.where(new_episode[:, None], tf.zeros_like(state["reward"]), state["reward"])
        # act with the current (adapted) parameters
        x, mask = self._net.features(time_step.observation)
        if self._net.reward_model:  # serve the best predicted action / slate of the adapted reward model
            raw = self._net.serve(self._net.scores(self._adapted(state), x[:, None])[:, 0], mask)
        else:
            dist = self._net.distribution(self._adapted(state), x[:, None], None if mask is None else mask[:, None])
            raw = dist.mode()[:, 0] if self._greedy else dist.sample()[:, 0]
        raw = tf.cast(raw, self._net.raw_dtype)
        slot = tf.one_hot(tf.minimum(t, self._horizon - 1), self._horizon, dtype=tf.float32)  # [B, H]

        def write(buf, value):
            s = tf.reshape(slot, [b, self._horizon] + [1] * (len(buf.shape) - 2))
            return tf.cast(tf.cast(buf, tf.float32) * (1.0 - s) + s * tf.cast(value[:, None], tf.float32), buf.dtype)

        state["x"] = write(state["x"], x)
        state["raw"] = write(state["raw"], raw)
        if mask is not None:
            state["mask"] = write(state["mask"], mask)
        state["t"] = t + 1
        return policy_step.PolicyStep(self._net.to_env_action(raw), state, ())

    def _distribution(self, time_step, policy_state):
        raise NotImplementedError("MAMLPolicy samples inside action(); use action()")
