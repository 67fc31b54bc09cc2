"""MQL losses and estimators, pure functions on tensors (hand-checked in tests/unit/algorithms/mql).

* Q of a taken action, the greedy action and the (double-Q) bootstrap value, for the three Q layouts of
  :mod:`metarl_apps.algorithms.mql.networks` (``discrete``, ``multi``, ``slate``).
* n-step return targets over trial sequences (windows of stored trials).
* The propensity classifier of the adaptation (logistic regression separating a new task's contexts from
  meta-training contexts), its density ratio ``beta / (1 - beta)`` (clipped) and the effective sample size.
* The proximal term ``lambda * ||theta - theta_meta||^2``.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


# ----------------------------------------------------------------- Q values
def action_value(q: tf.Tensor, actions: tf.Tensor, kind: str) -> tf.Tensor:
    """Q of the taken (0-based) actions.

    ``discrete``: q ``[..., A]``, actions ``[...]``; ``multi``: q ``[..., m, A]``, actions ``[..., m]`` (mean
    over elements); ``slate``: q ``[..., N]``, actions ``[..., k]`` item indices (mean over the slate).
    Returns ``[...]``.
    """
    actions = tf.cast(actions, tf.int32)
    if kind == "discrete":
        return tf.gather(q, actions, batch_dims=len(actions.shape))
    if kind == "multi":
        return tf.reduce_mean(tf.gather(q, actions, batch_dims=len(actions.shape)), axis=-1)
    return tf.reduce_mean(tf.gather(q, actions, batch_dims=len(actions.shape) - 1), axis=-1)


def greedy_action(q: tf.Tensor, kind: str, slate_size: int = 0) -> tf.Tensor:
    """0-based greedy action of ``q`` (argmax; per element for ``multi``; top-k items for ``slate``)."""
    if kind == "slate":
        return tf.math.top_k(q, k=slate_size).indices
    return tf.argmax(q, axis=-1, output_type=tf.int32)


def bootstrap_value(q_select: tf.Tensor, q_eval: tf.Tensor, kind: str, slate_size: int = 0,
                    double_q: bool = True) -> tf.Tensor:
    """Value of the next state: ``q_eval`` at the greedy action of ``q_select`` (double Q), else max ``q_eval``."""
    source = q_select if double_q else q_eval
    return action_value(q_eval, greedy_action(source, kind, slate_size), kind)


def n_step_targets(rewards: tf.Tensor, next_values: tf.Tensor, discount: float, n: int,
                   ends_trial: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """n-step targets over sequences of one trial.

    Args:
      rewards: ``[B, T]`` reward of the action taken at step t.
      next_values: ``[B, T]`` bootstrap value of the state *at* step t (``V(s_t)``).
      discount: gamma (inner-episode boundaries are not terminal: the trial is one return).
      n: steps before bootstrapping.
      ends_trial: ``[B]`` bool, the sequence's last step is the trial's last action (after it: terminal).

    Returns ``(targets [B, T], valid [B, T])``:
    ``y_t = sum_{k<n, t+k<T} gamma^k r_{t+k} + gamma^n V(s_{t+n})`` when ``t + n < T``; when ``t + n >= T``
    the target is the truncated sum (terminal) if ``ends_trial``, and invalid otherwise (the window cut the
    return short: no target).
    """
    rewards = tf.convert_to_tensor(rewards, tf.float32)
    t_len = tf.shape(rewards)[1]
    targets = tf.zeros_like(rewards)
    padded_r = tf.pad(rewards, [[0, 0], [0, n]])
    for k in range(n):
        targets += (discount ** k) * padded_r[:, k:k + t_len]
    padded_v = tf.pad(next_values, [[0, 0], [0, n]])
    boot = padded_v[:, n:n + t_len]
    inside = tf.range(t_len) + n < t_len  # [T]
    targets += (discount ** n) * tf.where(inside[None, :], boot, 0.0)
    valid = tf.logical_or(inside[None, :], ends_trial[:, None])
    return targets, valid


def huber(err: tf.Tensor, delta: float | None) -> tf.Tensor:
    """Elementwise Huber loss of ``err`` (``0.5 err^2`` inside ``delta``, linear outside); squared if None."""
    if delta is None:
        return 0.5 * tf.square(err)
    a = tf.abs(err)
    quad = tf.minimum(a, delta)
    return 0.5 * tf.square(quad) + delta * (a - quad)


def td_loss(q_taken: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor, huber_delta: float | None) -> tf.Tensor:
    """Weighted mean of the Huber (or squared) TD error; targets are constants. ``weights`` 0 = ignored."""
    per = huber(q_taken - tf.stop_gradient(targets), huber_delta)
    return tf.reduce_sum(weights * per) / tf.maximum(tf.reduce_sum(weights), 1e-8)


# --------------------------------------------------------------- propensity
def fit_propensity(new_x: tf.Tensor, old_x: tf.Tensor, *, steps: int = 200, learning_rate: float = 0.05,
                   l2: float = 1e-3) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Logistic regression per new task: label 1 = the task's contexts, label 0 = meta-training contexts.

    Args:
      new_x: ``[B, N, D]`` contexts of each of B new tasks.
      old_x: ``[M, D]`` meta-training contexts (shared by all B classifiers).

    The two classes get equal total weight (balanced), so ``beta / (1 - beta) = exp(logit)`` estimates the
    density ratio ``p_new(x) / p_old(x)`` directly. Inputs are standardised with the meta-training mean and
    standard deviation. Full-batch Adam, L2 penalty ``l2 * ||w||^2`` on the weights (not the bias).

    Returns ``(w [B, D], b [B], mean [D], std [D])`` — use :func:`density_ratio`.
    """
    new_x = tf.convert_to_tensor(new_x, tf.float32)
    old_x = tf.convert_to_tensor(old_x, tf.float32)
    mean = tf.reduce_mean(old_x, axis=0)
    std = tf.math.reduce_std(old_x, axis=0) + 1e-6
    return _fit_logistic(new_x, old_x, mean, std, int(steps), float(learning_rate), float(l2)) + (mean, std)


@tf.function(reduce_retracing=True)
def _fit_logistic(new_x, old_x, mean, std, steps: int, learning_rate: float, l2: float):
    xn = (new_x - mean) / std  # [B, N, D]
    xo = (old_x - mean) / std  # [M, D]
    b_size, d = tf.shape(xn)[0], tf.shape(xn)[2]
    beta1, beta2 = 0.9, 0.999

    def loss_fn(w, b):
        logit_new = tf.einsum("bnd,bd->bn", xn, w) + b[:, None]
        logit_old = tf.einsum("md,bd->bm", xo, w) + b[:, None]
        # balanced: mean log-loss of each class, summed over tasks (tasks are independent)
        return tf.reduce_sum(tf.reduce_mean(tf.nn.softplus(-logit_new), axis=1)
                             + tf.reduce_mean(tf.nn.softplus(logit_old), axis=1)
                             + l2 * tf.reduce_sum(tf.square(w), axis=1))

    def adam(p, g, m, v, t):
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * tf.square(g)
        step = learning_rate * (m / (1 - beta1 ** t)) / (tf.sqrt(v / (1 - beta2 ** t)) + 1e-8)
        return p - step, m, v

    def body(i, w, b, mw, vw, mb, vb):
        with tf.GradientTape() as tape:
            tape.watch([w, b])
            loss = loss_fn(w, b)
        gw, gb = tape.gradient(loss, [w, b])
        t = tf.cast(i + 1, tf.float32)
        w, mw, vw = adam(w, gw, mw, vw, t)
        b, mb, vb = adam(b, gb, mb, vb, t)
        return i + 1, w, b, mw, vw, mb, vb

    zw, zb = tf.zeros([b_size, d]), tf.zeros([b_size])
    out = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), zw, zb, zw, zw, zb, zb))
    return out[1], out[2]


def density_ratio(propensity, x: tf.Tensor, max_weight: float | None = None) -> tf.Tensor:
    """``beta(x) / (1 - beta(x))`` of each task's classifier at ``x [M, D]``: ``[B, M]``, clipped at ``max_weight``."""
    w, b, mean, std = propensity
    xs = (tf.convert_to_tensor(x, tf.float32) - mean) / std
    logit = tf.einsum("md,bd->bm", xs, w) + b[:, None]
    if max_weight is not None:
        logit = tf.minimum(logit, tf.math.log(float(max_weight)))
    return tf.exp(logit)


def effective_sample_size(weights: tf.Tensor) -> tf.Tensor:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` per row of ``weights [B, M]``: ``[B]``."""
    return tf.square(tf.reduce_sum(weights, -1)) / tf.maximum(tf.reduce_sum(tf.square(weights), -1), 1e-12)


# ----------------------------------------------------------------- proximal
def proximal_penalty(params: Sequence[tf.Tensor], anchors: Sequence[tf.Tensor], coef: float,
                     batch_dims: int = 0) -> tf.Tensor:
    """``coef * ||theta - theta_meta||^2``; with ``batch_dims=1`` params are stacked per task (``[B, ...]``)
    and the result is ``[B]`` (anchors broadcast, e.g. the meta-trained head shared by every task)."""
    total = 0.0
    for p, a in zip(params, anchors, strict=True):
        sq = tf.square(p - a)
        axes = list(range(batch_dims, len(sq.shape)))
        total += tf.reduce_sum(sq, axis=axes)
    return coef * total
