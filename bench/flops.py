"""The arithmetic of an RL² meta-training iteration, for ``bench/rl2_throughput.py``'s second table: its FLOPs
(counted by TensorFlow's graph profiler on the network's step and one PPO gradient step), this machine's float32
matmul rate, and from them how far a throughput target is from what the arithmetic allows (bench/README.md).
"""

from __future__ import annotations

import contextlib
import math
import time

import tensorflow as tf


def graph_flops(fn, *signature) -> int:
    """Floating-point operations of one call of ``fn`` traced at ``signature`` (static shapes), as counted by
    TensorFlow's graph profiler (matmuls and elementwise ops with registered FLOP statistics)."""
    graph = tf.function(fn).get_concrete_function(*signature).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger, level = tf.get_logger(), tf.get_logger().level
    logger.setLevel("ERROR")  # the v1 profiler's deprecation notice is not news
    try:
        return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def static_unroll(net):
    """Trace ``net``'s Keras LSTM/GRU layers unrolled step by step (``unroll=True``, the per-step cell instead of
    the fused loop): the same matmuls per step, none hidden in a while loop, so the graph profiler counts them
    all. Restored on exit; graphs traced before or after are untouched."""
    layers = [getattr(net, name) for name in ("_rnn", "_value_rnn") if getattr(net, name, None) is not None]
    saved = [(layer.unroll, getattr(layer, "_could_use_gpu_kernel", None)) for layer in layers]
    try:
        for layer in layers:
            layer.unroll = True
            if hasattr(layer, "_could_use_gpu_kernel"):
                layer._could_use_gpu_kernel = False
        yield
    finally:
        for layer, (unroll, fused) in zip(layers, saved, strict=True):
            layer.unroll = unroll
            if fused is not None:
                layer._could_use_gpu_kernel = fused


def iteration_flops(learner, dist, batch: int, epochs: int, minibatches: int) -> dict:
    """FLOPs of one meta-training iteration of ``learner`` (built) at ``batch`` tasks: the rollout (``net.step``
    on ``[batch]`` once per step of the trial) and the update (``epochs * minibatches`` gradient steps of
    ``RL2._ppo_objective`` on ``[batch // minibatches, T]``; Adam's elementwise update is left out)."""
    net = learner.net
    steps = dist.horizon * dist.episodes_per_trial
    rows = batch // minibatches
    obs_spec = dist.time_step_spec().observation

    def specs(outer):
        return tf.nest.map_structure(lambda s: tf.TensorSpec(outer + s.shape.as_list(), s.dtype), obs_spec)

    def act(observation):
        return net.step(observation, net.initial_state(batch))[:2]

    def gradient(observations, actions, old_logp, advantages, returns):
        with tf.GradientTape() as tape:
            loss, _ = learner._ppo_objective(observations, actions, old_logp, advantages, returns)
        return tape.gradient(loss, net.trainable_variables)

    per_step = graph_flops(act, specs([batch]))
    with static_unroll(net):
        per_gradient_step = graph_flops(gradient, specs([rows, steps]),
                                        tf.TensorSpec([rows, steps, *net.action_shape], tf.int32),
                                        *[tf.TensorSpec([rows, steps], tf.float32)] * 3)
        unrolled = graph_flops(lambda observations: net.unroll(observations, net.initial_state(rows))[:2],
                               specs([rows, steps]))
    # The unroll of a trial does the work of its steps. Less means the count missed a loop the profiler does
    # not look inside (a memory whose unroll is a while loop static_unroll does not know): no update count.
    complete = unrolled >= 0.9 * per_step / batch * rows * steps
    return {"rollout": per_step * steps, "update": epochs * minibatches * per_gradient_step,
            "per_gradient_step": per_gradient_step, "update_counted": complete}


def matmul_peak(size: int = 1024, calls: int = 10, repeats: int = 5) -> float:
    """GFLOP/s of TensorFlow's float32 matmul at ``size``^3 on this machine (best of ``repeats`` blocks): the
    optimistic arithmetic ceiling for the update's smaller matmuls."""
    a = tf.random.stateless_normal([size, size], seed=[1, 2])
    b = tf.random.stateless_normal([size, size], seed=[3, 4])
    chain = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)))
    float(chain(a, b))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            float(chain(a, b))
        best = min(best, (time.perf_counter() - t0) / calls)
    return 2 * size ** 3 / best / 1e9


def add_bounds(row: dict, peak_gflops: float, *, ratio_target: float, fraction_target: float) -> dict:
    """The arithmetic bound of ``row``: the update's GFLOP/s as measured (its FLOPs over the iteration's time
    minus the rollout's, which runs at the ceiling's rate), the GFLOP/s it would need to meet each target (the
    rollout as measured; ``inf``: the rollout alone is over the target's time: ``ratio_target`` x tf-agents, a
    ``fraction_target`` of the ceiling), and the ratio to tf-agents and
    the fraction of the ceiling our iteration would reach if its update ran at ``peak_gflops``."""
    seconds, update = row["seconds_per_iteration"], row["flops_per_iteration"]["update"]
    row["matmul_peak_gflops"] = peak_gflops
    if not row["flops_per_iteration"]["update_counted"]:  # no bound without the update's FLOPs
        row.update(update_gflops_achieved=None, bound_ratio_at_peak=None, bound_fraction_at_peak=None,
                   update_gflops_needed_for_ratio=None, update_gflops_needed_for_fraction=None)
        return row
    at_peak = seconds["ceiling"] + update / (peak_gflops * 1e9)
    # the update's time budget within each target's iteration time, the rollout as measured
    ratio_budget = seconds["tf-agents"] / ratio_target - seconds["ceiling"]
    fraction_budget = seconds["ceiling"] / fraction_target - seconds["ceiling"]
    row.update(update_gflops_needed_for_ratio=update / ratio_budget / 1e9 if ratio_budget > 0 else math.inf,
               update_gflops_needed_for_fraction=update / fraction_budget / 1e9,
               update_gflops_achieved=update / max(seconds["ours"] - seconds["ceiling"], 1e-9) / 1e9,
               bound_ratio_at_peak=seconds["tf-agents"] / at_peak,
               bound_fraction_at_peak=seconds["ceiling"] / at_peak)
    return row
