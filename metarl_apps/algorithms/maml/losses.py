"""MAML's differentiable inner loop and meta-gradient, for one task or a stack of tasks.

Notation: θ the initial parameters, α the inner rate(s), L_in / L_out the inner (support) and outer (query)
losses. One inner step is ``θ' = θ − α ⊙ ∇L_in(θ)``; MAML minimises ``L_out(θ')`` over θ (and α with
Meta-SGD). The chain rule through the step gives

    d L_out(θ') / dθ = (I − α ⊙ H_in(θ)) ∇L_out(θ')        (second order, H_in the Hessian of L_in)
    d L_out(θ') / dα = −∇L_in(θ) ⊙ ∇L_out(θ')

The second-order term ``α H_in ∇L_out`` is a Hessian-vector product: nested ``tf.GradientTape``s get it for free
because the inner gradient is computed while the outer tape records. First-order MAML applies
``tf.stop_gradient`` to the inner gradients, which removes exactly that term (and nothing else: the rate
gradient is unchanged).

Stacked tasks: parameters carry a leading task dimension ``[N, ...]`` and the loss functions return one loss
per task ``[N]``. The inner loop differentiates the *sum* of the per-task losses: task i's loss depends only on
slice i of the parameters, so each task's slice receives exactly its own gradient. The outer loss is the
*mean* over tasks (the meta-objective). Rates (a float, or one tensor per parameter shaped like the
unstacked parameter) broadcast over the task dimension.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf

from metarl_apps.networks.functional import stack_params

LossFn = Callable[[list[tf.Tensor]], tf.Tensor]  # params -> scalar, or [N] per-task losses for stacked params
Rates = float | tf.Tensor | Sequence[tf.Tensor]  # one rate, or one per parameter (Meta-SGD)


def mse(pred: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Mean squared error over the last two axes: ``[K, out]`` -> scalar, ``[N, K, out]`` -> ``[N]`` per task."""
    return tf.reduce_mean(tf.square(pred - target), axis=[-2, -1])


def _rate_list(lrs: Rates, n: int) -> list:
    if isinstance(lrs, (list, tuple)):
        if len(lrs) != n:
            raise ValueError(f"lrs has {len(lrs)} entries: must be one rate, or one per parameter ({n})")
        return list(lrs)
    return [lrs] * n


def inner_update(params: Sequence[tf.Tensor], loss_fn: LossFn, lrs: Rates, steps: int,
                 first_order: bool) -> list[tf.Tensor]:
    """``steps`` differentiable gradient steps ``θ ← θ − α ⊙ ∇L_in(θ)``; returns the adapted parameters.

    Args:
      params: ``[...]`` per parameter, or stacked ``[N, ...]`` (one slice per task). Variables or tensors.
      loss_fn: ``params -> loss``: a scalar, or ``[N]`` per-task losses (summed, so each task's slice gets its
        own gradient).
      lrs: a rate, or one rate tensor per parameter (shaped like the unstacked parameter; Meta-SGD).
      steps: number of inner steps (0 returns ``params`` unchanged).
      first_order: treat the inner gradients as constants (first-order MAML).

    Run inside an outer ``tf.GradientTape`` to differentiate through the steps.
    """
    params = list(params)
    rates = _rate_list(lrs, len(params))
    for _ in range(steps):
        with tf.GradientTape() as tape:
            tape.watch(params)
            loss = tf.reduce_sum(loss_fn(params))
        grads = tape.gradient(loss, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        if first_order:
            grads = [tf.stop_gradient(g) for g in grads]
        params = [p - lr * g for p, lr, g in zip(params, rates, grads, strict=True)]
    return params


@dataclasses.dataclass(frozen=True)
class MetaGradient:
    """Outer loss after adaptation and its gradients.

    loss: scalar, the outer loss (mean over tasks when stacked).
    param_grads: d loss / d θ, one per initial parameter (unstacked shapes).
    lr_grads: d loss / d α, one per rate tensor when ``lrs`` is a list (Meta-SGD), else ``None``.
    """

    loss: tf.Tensor
    param_grads: list[tf.Tensor]
    lr_grads: list[tf.Tensor] | None


def maml_meta_gradient(params: Sequence[tf.Tensor], inner_loss_fn: LossFn, outer_loss_fn: LossFn, lrs: Rates,
                       steps: int, first_order: bool, num_tasks: int | None = None) -> MetaGradient:
    """Adapt, evaluate the outer loss, and differentiate it w.r.t. the initial parameters (and rates).

    Args:
      params: initial parameters θ (unstacked).
      inner_loss_fn, outer_loss_fn: support / query losses of the (adapted) parameters; with ``num_tasks``
        they receive stacked ``[N, ...]`` parameters and return ``[N]`` per-task losses.
      lrs: a rate, or one rate tensor per parameter (Meta-SGD: their gradients are returned).
      steps, first_order: as :func:`inner_update`.
      num_tasks: if given, θ is copied to ``[N, ...]`` (inside the tape) and all N tasks adapt as one batched
        computation; the gradient w.r.t. θ is then the sum over tasks of the gradient of the mean outer loss.
    """
    params = list(params)
    rate_list = list(lrs) if isinstance(lrs, (list, tuple)) else None
    sources = params + (rate_list or [])
    with tf.GradientTape() as tape:
        tape.watch(sources)
        start = stack_params(params, num_tasks) if num_tasks is not None else params
        adapted = inner_update(start, inner_loss_fn, lrs, steps, first_order)
        loss = tf.reduce_mean(outer_loss_fn(adapted))
    grads = tape.gradient(loss, sources, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    n = len(params)
    return MetaGradient(loss, grads[:n], grads[n:] if rate_list is not None else None)


# ------------------------------------------------------------------------------------------------------------
# Policy-gradient losses for RL MAML. Trajectory tensors are per task and per step: ``[N, T]`` (N tasks, one
# inner episode of T steps each), ``obs`` features ``[N, T, D]``; per-task losses are ``[N]``.
# ------------------------------------------------------------------------------------------------------------


def discounted_returns(rewards: tf.Tensor, discount: float) -> tf.Tensor:
    """Reward-to-go within the episode: ``R_t = Σ_{t' ≥ t} γ^{t'-t} r_t'``, ``[N, T]`` -> ``[N, T]``."""
    rev = tf.reverse(rewards, axis=[1])
    out = tf.scan(lambda acc, r: r + discount * acc, tf.transpose(rev), initializer=tf.zeros_like(rev[:, 0]))
    return tf.reverse(tf.transpose(out), axis=[1])


def baseline_features(obs: tf.Tensor, horizon: int) -> tf.Tensor:
    """garage's ``LinearFeatureBaseline`` features ``[o, o², t, t², t³, 1]`` (t = step / 100): ``[N, T, 2D + 4]``."""
    t = tf.cast(tf.range(tf.shape(obs)[1]), obs.dtype)[None, :, None] / 100.0
    t = tf.broadcast_to(t, tf.concat([tf.shape(obs)[:2], [1]], 0))
    obs = tf.clip_by_value(obs, -10.0, 10.0)
    return tf.concat([obs, tf.square(obs), t, t ** 2, t ** 3, tf.ones_like(t)], axis=-1)


def linear_baseline(obs: tf.Tensor, returns: tf.Tensor, reg: float = 1e-5) -> tf.Tensor:
    """Per-task ridge regression of ``returns [N, T]`` on :func:`baseline_features` of ``obs [N, T, D]``;
    returns the fitted values ``[N, T]`` (a constant for the gradient)."""
    x = baseline_features(tf.stop_gradient(obs), obs.shape[1])
    y = tf.stop_gradient(returns)[..., None]
    f = x.shape[-1]
    # ridge on the normal equations; the ridge grows with the features' scale (float32 Gram matrices of
    # collinear features, e.g. a position that never moves, are otherwise singular)
    gram = tf.linalg.matmul(x, x, transpose_a=True)
    ridge = reg + 1e-4 * tf.reduce_mean(tf.linalg.diag_part(gram), axis=-1)[:, None, None]
    w = tf.linalg.solve(gram + ridge * tf.eye(f, dtype=x.dtype), tf.linalg.matmul(x, y, transpose_a=True))
    return tf.stop_gradient(tf.squeeze(tf.linalg.matmul(x, w), -1))


def _standardize(x: tf.Tensor, axes) -> tf.Tensor:
    mean, var = tf.nn.moments(x, axes=axes, keepdims=True)
    return (x - mean) / (tf.sqrt(var) + 1e-8)


def advantages(obs: tf.Tensor, rewards: tf.Tensor, *, discount: float, baseline: str, normalize: bool,
               per_task: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """``(advantages [N, T], baseline values [N, T])``: reward-to-go minus the baseline, optionally standardised
    per task (``per_task``; skipped for one-step episodes, T = 1) or over the whole batch."""
    returns = discounted_returns(rewards, discount)
    values = linear_baseline(obs, returns) if baseline == "linear" else tf.zeros_like(returns)
    adv = returns - values
    if normalize and not (per_task and rewards.shape[1] == 1):  # one sample per task cannot be standardised
        adv = _standardize(adv, [1] if per_task else [0, 1])
    return tf.stop_gradient(adv), values


def magic_box(x: tf.Tensor) -> tf.Tensor:
    """DiCE's ``exp(x - stop_gradient(x))``: 1 in value, ``∇x`` in gradient (to any order)."""
    return tf.exp(x - tf.stop_gradient(x))


def pg_inner_loss(log_prob: tf.Tensor, rewards: tf.Tensor, adv: tf.Tensor, baseline_values: tf.Tensor, *,
                  estimator: str, discount: float) -> tf.Tensor:
    """Per-task inner policy-gradient loss ``[N]`` from ``log_prob``, ``rewards``, ``adv`` and baseline values
    ``[N, T]``.

    * ``"reinforce"``: ``-mean_t log π(a_t|s_t) A_t`` (A constant);
    * ``"lvc"``: ProMP's low-variance curvature ``-mean_t □(log π_t) A_t``: REINFORCE's value-free first
      gradient, and per-step score-function curvature ``(∇log π_t ∇log π_tᵀ + ∇²log π_t) A_t`` (biased,
      but without DiCE's products of whole-trajectory scores, whose variance grows with T²);
    * ``"dice"``: ``-mean_t [□(Σ_{t'≤t} log π_t') γ^t r_t + (1 - □(log π_t)) γ^t b_t]`` (DiCE with a baseline,
      Mao et al. 2019), with □ the magic box. Its first gradient is ``-mean_t γ^t ∇log π_t (R_t - b_t)`` (the
      discounted policy gradient); its Hessian has the sampling-distribution terms.
      With ``adv`` standardised the step size is comparable to REINFORCE's; the rewards are rescaled by the
      same per-task factor.
    """
    if estimator == "reinforce":
        return -tf.reduce_mean(log_prob * adv, axis=1)
    if estimator == "lvc":
        return -tf.reduce_mean(magic_box(log_prob) * adv, axis=1)
    t = tf.cast(tf.range(tf.shape(rewards)[1]), rewards.dtype)
    gamma_t = tf.pow(tf.constant(discount, rewards.dtype), t)[None]
    returns = discounted_returns(rewards, discount)
    # rescale so that R - b has the same per-task scale as the (standardised) advantages
    scale = tf.stop_gradient(tf.math.reduce_std(returns - baseline_values, axis=1, keepdims=True) + 1e-8)
    cum = tf.math.cumsum(log_prob, axis=1)
    surrogate = magic_box(cum) * gamma_t * rewards + (1.0 - magic_box(log_prob)) * gamma_t * baseline_values
    return -tf.reduce_sum(surrogate / scale, axis=1) / tf.cast(tf.shape(rewards)[1], rewards.dtype)


def ppo_outer_loss(log_prob: tf.Tensor, old_log_prob: tf.Tensor, adv: tf.Tensor, clip_ratio: float) -> tf.Tensor:
    """Per-task PPO-clip loss of the post-adaptation episode, ``[N]``:
    ``-mean_t min(ρ_t A_t, clip(ρ_t, 1 ± ε) A_t)`` with ``ρ_t = π_θ'(a_t|s_t) / π_old(a_t|s_t)``."""
    ratio = tf.exp(log_prob - old_log_prob)
    clipped = tf.clip_by_value(ratio, 1.0 - clip_ratio, 1.0 + clip_ratio)
    return -tf.reduce_mean(tf.minimum(ratio * adv, clipped * adv), axis=1)
