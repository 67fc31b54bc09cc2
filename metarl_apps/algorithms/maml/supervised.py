"""Supervised sanity check of MAML: sinusoid regression (Finn et al. 2017, §5.1).

A task is ``y = A sin(x − φ)`` with ``A ~ U[0.1, 5]``, ``φ ~ U[0, π]``, ``x ~ U[−5, 5]``; the learner sees K = 10
points (the support set) and is scored by MSE on fresh points of the same sinusoid (the query set) after one
gradient step of rate 0.01 from its initial parameters. Network: MLP 1-40-40-1, ReLU.

Two models, same network, same optimiser, same tasks, same number of updates:
  * MAML: initial parameters meta-trained so that one inner step on the support set fits the query set;
  * pretrained: trained on all tasks jointly with no adaptation objective (MAML with ``inner_steps=0``),
then both fine-tuned with the same inner step on held-out sinusoids drawn from a separate (test) stream.

Run ``python -m metarl_apps.algorithms.maml.supervised --iterations 3000`` to print the comparison.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time

import numpy as np
import tensorflow as tf

from metarl_apps.algorithms.maml.config import MAMLConfig
from metarl_apps.algorithms.maml.losses import inner_update, maml_meta_gradient, mse
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.evaluation.stats import mean_ci95
from metarl_apps.networks.functional import FunctionalMLP, stack_params

AMPLITUDE_RANGE = (0.1, 5.0)
PHASE_RANGE = (0.0, math.pi)
X_RANGE = (-5.0, 5.0)
SPLITS = {"train": 0, "test": 1}


@dataclasses.dataclass(frozen=True)
class SinusoidBatch:
    """N sinusoid tasks with their points. ``amplitude``/``phase`` ``[N]``; ``x_*``/``y_*`` ``[N, K, 1]``."""

    amplitude: tf.Tensor
    phase: tf.Tensor
    x_support: tf.Tensor
    y_support: tf.Tensor
    x_query: tf.Tensor
    y_query: tf.Tensor


class SinusoidTasks:
    """Sinusoid tasks from counter-based streams: ``(seed, split, index)`` fixes a batch, in-graph.

    ``split="train"`` and ``split="test"`` are different streams of the same seed, so held-out tasks are never
    the ones trained on. ``index`` (an int or a scalar int tensor, e.g. the meta-step) selects the draw.
    """

    def __init__(self, seed: int = 0):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise MetaRLInputError(f"SinusoidTasks seed={seed!r}: must be a non-negative integer")
        self.seed = seed

    def sample(self, num_tasks: int, num_support: int, num_query: int, split: str = "train",
               index: int | tf.Tensor = 0) -> SinusoidBatch:
        if split not in SPLITS:
            raise MetaRLInputError(f"split={split!r}: must be one of {sorted(SPLITS)}")
        key = tf.constant([self.seed, 0x51A5], dtype=tf.int64)
        key = tf.random.experimental.stateless_fold_in(key, SPLITS[split])
        key = tf.random.experimental.stateless_fold_in(key, tf.cast(index, tf.int64))
        k_amp, k_phase, k_x = tf.unstack(tf.random.experimental.stateless_split(key, 3))
        amp = tf.random.stateless_uniform([num_tasks], k_amp, *AMPLITUDE_RANGE)
        phase = tf.random.stateless_uniform([num_tasks], k_phase, *PHASE_RANGE)
        x = tf.random.stateless_uniform([num_tasks, num_support + num_query, 1], k_x, *X_RANGE)
        y = amp[:, None, None] * tf.sin(x - phase[:, None, None])
        return SinusoidBatch(amp, phase, x[:, :num_support], y[:, :num_support], x[:, num_support:],
                             y[:, num_support:])


@dataclasses.dataclass
class SinusoidModel:
    """A trained network: its initial parameters, inner rates (float, or one tensor per parameter), history."""

    config: MAMLConfig
    net: FunctionalMLP
    params: list[tf.Variable]
    lrs: float | list[tf.Variable]
    losses: np.ndarray  # [iterations] training (outer) loss per meta-step
    seconds: float


def make_network(config: MAMLConfig) -> FunctionalMLP:
    return FunctionalMLP(1, config.hidden_sizes, 1, activation="relu")


def meta_train_sinusoid(config: MAMLConfig, iterations: int, num_shots: int = 10,
                        num_query: int = 10) -> SinusoidModel:
    """Meta-train on training sinusoids: ``iterations`` Adam meta-updates of ``config.meta_batch_size`` tasks.

    Each meta-step is one ``tf.function`` call; the meta-batch adapts as one batched computation (stacked
    per-task parameters). With ``config.inner_steps == 0`` this is multi-task pretraining on support ∪ query.
    """
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise MetaRLInputError(f"iterations={iterations!r}: must be a positive integer")
    net = make_network(config)
    params = net.init_params(config.seed)
    if config.learn_inner_lr:
        lrs = [tf.Variable(tf.fill(p.shape, tf.constant(config.inner_lr, p.dtype)), name=f"inner_lr_{i}")
               for i, p in enumerate(params)]
        trainable = params + lrs
    else:
        lrs = float(config.inner_lr)
        trainable = list(params)
    optimizer = tf.keras.optimizers.Adam(config.outer_lr)
    tasks = SinusoidTasks(config.seed)
    n = config.meta_batch_size

    @tf.function
    def meta_step(step):
        b = tasks.sample(n, num_shots, num_query, "train", step)
        if config.inner_steps == 0:  # pretraining: no adaptation, fit every point of every task
            x = tf.concat([b.x_support, b.x_query], axis=1)
            y = tf.concat([b.y_support, b.y_query], axis=1)
        else:
            x, y = b.x_query, b.y_query
        mg = maml_meta_gradient(
            params,
            inner_loss_fn=lambda ps: mse(net.apply_batched(ps, b.x_support), b.y_support),
            outer_loss_fn=lambda ps: mse(net.apply_batched(ps, x), y),
            lrs=lrs, steps=config.inner_steps, first_order=config.first_order, num_tasks=n)
        optimizer.apply_gradients(zip(mg.param_grads + (mg.lr_grads or []), trainable, strict=True))
        return mg.loss

    start = time.perf_counter()
    losses = [meta_step(tf.constant(i, tf.int64)) for i in range(iterations)]
    losses = tf.stack(losses).numpy()
    return SinusoidModel(config, net, params, lrs, losses, time.perf_counter() - start)


def pretrain_sinusoid(config: MAMLConfig, iterations: int, num_shots: int = 10, num_query: int = 10) -> SinusoidModel:
    """The non-adaptive baseline: the same network and optimiser trained on all tasks jointly."""
    base = dataclasses.replace(config, inner_steps=0, first_order=False, learn_inner_lr=False)
    return meta_train_sinusoid(base, iterations, num_shots, num_query)


def evaluate(model: SinusoidModel, num_tasks: int = 500, num_shots: int = 10, num_query: int = 100,
             steps: int = 1, seed: int | None = None, lr: float | None = None) -> dict:
    """MSE on held-out (test-stream) sinusoids after ``steps`` inner steps on ``num_shots`` points.

    The step uses the model's inner rates (learned ones for Meta-SGD), or ``lr`` if given. All tasks adapt as
    one batched computation. Returns per-task MSEs before/after adaptation and their mean ± 95% CI.
    """
    tasks = SinusoidTasks(model.config.seed if seed is None else seed)
    b = tasks.sample(num_tasks, num_shots, num_query, "test", 0)
    lrs = model.lrs if lr is None else lr
    stacked = stack_params(model.params, num_tasks)
    adapted = inner_update(stacked, lambda ps: mse(model.net.apply_batched(ps, b.x_support), b.y_support),
                           lrs, steps, first_order=True)
    before = mse(model.net.apply_batched(stacked, b.x_query), b.y_query).numpy()
    after = mse(model.net.apply_batched(adapted, b.x_query), b.y_query).numpy()
    mean, ci = mean_ci95(after)
    return {"mse_before": before, "mse_after": after, "mean": mean, "ci95": ci, "steps": steps}


def compare(config: MAMLConfig, iterations: int, num_eval_tasks: int = 500) -> dict:
    """Train MAML and the pretrained baseline for the same iterations; evaluate both after 1 inner step."""
    maml = meta_train_sinusoid(config, iterations)
    pre = pretrain_sinusoid(config, iterations)
    m, p = evaluate(maml, num_eval_tasks), evaluate(pre, num_eval_tasks)
    return {"maml": m, "pretrained": p, "ratio": m["mean"] / p["mean"],
            "train_seconds": {"maml": maml.seconds, "pretrained": pre.seconds}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--meta-batch-size", type=int, default=25)
    ap.add_argument("--first-order", action="store_true")
    ap.add_argument("--learn-inner-lr", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    config = MAMLConfig(meta_batch_size=a.meta_batch_size, first_order=a.first_order,
                        learn_inner_lr=a.learn_inner_lr, seed=a.seed)
    start = time.perf_counter()
    r = compare(config, a.iterations)
    for name in ("maml", "pretrained"):
        e = r[name]
        print(f"{name:>10}: MSE after 1 step {e['mean']:.3f} ± {e['ci95']:.3f} "
              f"(before {e['mse_before'].mean():.3f}), trained in {r['train_seconds'][name]:.1f} s")
    print(f"ratio maml/pretrained = {r['ratio']:.3f}; total wall {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
