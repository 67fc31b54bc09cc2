"""Multi-task replay: one ring buffer of whole trials per training task, in TF variables, sampled in-graph.

Storage ``[P, C, T, ...]``: P training tasks (slot ``i`` is ``task_ids[i]``), C trials per task, T steps per
trial. A step stores the encoded network input ``x_t`` (the trial observation before the action: it carries
the previous action and reward, so the context can be recomputed), the action ``a_t`` and its reward ``r_t``.

Isolation: the buffer is built from the meta-training population only (``meta_train`` refuses held-out
tasks) and adaptation never writes into it; a new task's data lives in its own tensors during ``adapt``.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf


class TaskReplay(tf.Module):
    """Per-task ring buffers of trials. ``add`` and ``sample`` are graph-friendly (call them in tf.function)."""

    def __init__(self, task_ids: Sequence[str], capacity: int, trial_length: int, input_size: int,
                 action_shape: Sequence[int], name: str = "task_replay"):
        super().__init__(name=name)
        self.task_ids = list(task_ids)
        p, c, t = len(self.task_ids), int(capacity), int(trial_length)
        self.capacity, self.trial_length = c, t
        self.inputs = tf.Variable(tf.zeros([p, c, t, input_size]), trainable=False, name="inputs")
        self.actions = tf.Variable(tf.zeros([p, c, t, *action_shape], tf.int32), trainable=False, name="actions")
        self.rewards = tf.Variable(tf.zeros([p, c, t]), trainable=False, name="rewards")
        self.count = tf.Variable(tf.zeros([p], tf.int64), trainable=False, name="count")  # trials ever added

    @property
    def num_tasks(self) -> int:
        return len(self.task_ids)

    def add(self, slots: tf.Tensor, inputs: tf.Tensor, actions: tf.Tensor, rewards: tf.Tensor) -> None:
        """Store one trial per row: ``slots [B]`` (distinct), ``inputs [B, T, D]``, ``actions [B, T, ...]``,
        ``rewards [B, T]``; each goes into its task's oldest position."""
        slots = tf.cast(slots, tf.int64)
        pos = tf.math.floormod(tf.gather(self.count, slots), self.capacity)
        idx = tf.stack([slots, pos], axis=1)
        self.inputs.scatter_nd_update(idx, inputs)
        self.actions.scatter_nd_update(idx, tf.cast(actions, tf.int32))
        self.rewards.scatter_nd_update(idx, rewards)
        self.count.scatter_nd_add(slots[:, None], tf.ones_like(slots))

    def sample(self, n: int, generator: tf.random.Generator, window: int | None = None):
        """``n`` trials (or windows of ``window`` steps) drawn uniformly over all stored trials.

        Returns ``(inputs [n, L, D], actions [n, L, ...], rewards [n, L], ends_trial [n] bool, slots [n])``.
        """
        filled = tf.cast(tf.minimum(self.count, self.capacity), tf.float32)  # [P]
        logits = tf.where(filled > 0, tf.math.log(tf.maximum(filled, 1.0)), -1e9)
        seed = generator.make_seeds(1)[:, 0]
        slots = tf.random.stateless_categorical(logits[None], n, seed=seed, dtype=tf.int32)[0]
        u = generator.uniform([n])
        pos = tf.cast(tf.floor(u * tf.gather(filled, slots)), tf.int32)
        idx = tf.stack([slots, pos], axis=1)
        inputs = tf.gather_nd(self.inputs, idx)
        actions = tf.gather_nd(self.actions, idx)
        rewards = tf.gather_nd(self.rewards, idx)
        t = self.trial_length
        if window is None or window >= t:
            return inputs, actions, rewards, tf.ones([n], tf.bool), slots
        start = tf.cast(tf.floor(generator.uniform([n]) * (t - window + 1)), tf.int32)  # [n]
        steps = start[:, None] + tf.range(window)[None, :]  # [n, L]
        take = lambda x: tf.gather(x, steps, batch_dims=1)  # noqa: E731
        return take(inputs), take(actions), take(rewards), tf.equal(start + window, t), slots
