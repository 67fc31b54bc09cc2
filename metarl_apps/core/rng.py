"""Counter-based random numbers with one independent stream per batch row.

Batched environments step many tasks at once, yet a task must see the same randomness whether it is stepped
alone or inside any batch (``check_task_distribution`` asserts it). TF's stateless ops draw one stream per
call, so we key every row with its task's seed and hash ``(key, counter, j)`` with SplitMix64. Pure integer
ops on ``uint64`` (wrap-around arithmetic), in-graph, device agnostic.
"""

from __future__ import annotations

import hashlib

import numpy as np
import tensorflow as tf

_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB


def _u64(x: int) -> tf.Tensor:
    return tf.constant(x, dtype=tf.uint64)


def splitmix64(x: tf.Tensor) -> tf.Tensor:
    """SplitMix64 finaliser of a ``uint64`` tensor (any shape)."""
    z = x + _u64(_GOLDEN)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(30))) * _u64(_M1)
    z = tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(27))) * _u64(_M2)
    return tf.bitwise.bitwise_xor(z, tf.bitwise.right_shift(z, _u64(31)))


def row_uniform(keys: tf.Tensor, counter: tf.Tensor, num: int) -> tf.Tensor:
    """Uniform [0, 1) floats, ``[B, num]`` float32, a function of (key of the row, counter, j) only.

    Args:
      keys: ``[B]`` uint64, one key per row (task).
      counter: scalar or ``[B]`` integer; use a different counter for every draw of a row.
      num: how many numbers per row.
    """
    keys = tf.convert_to_tensor(keys, tf.uint64)
    counter = tf.cast(counter, tf.uint64)
    base = splitmix64(keys + splitmix64(counter * _u64(_GOLDEN) + _u64(1)))  # [B]
    j = tf.constant(np.arange(num, dtype=np.uint64))
    bits = splitmix64(base[:, None] + j[None, :] * _u64(_M2))  # [B, num]
    mantissa = tf.bitwise.right_shift(bits, _u64(40))  # 24 random bits
    return tf.cast(mantissa, tf.float32) * (1.0 / (1 << 24))


def row_normal(keys: tf.Tensor, counter: tf.Tensor, num: int) -> tf.Tensor:
    """Standard normal ``[B, num]`` float32 by Box-Muller on :func:`row_uniform` draws."""
    u = row_uniform(keys, counter, 2 * num)
    u1 = 1.0 - u[:, :num]  # (0, 1]
    u2 = u[:, num:]
    return tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * np.pi * u2)


def task_key(*parts: object) -> int:
    """A stable 63-bit key from any printable parts (same parts -> same key on every machine)."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
