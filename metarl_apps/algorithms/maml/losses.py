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
