"""Hand-made users and a few numpy formulas of the RecSim NG user models, for hand-checked tests."""

import numpy as np
import tensorflow as tf

from metarl_apps.core.task import Task


def users(family, key, value, n, seed0=0):
    """``n`` tasks of ``family`` that all share the latent ``{key: value}`` (distinct seeds: independent draws)."""
    value = np.asarray(value, np.float32)
    return [Task(f"test/hand/{i}", family, {key: value}, "test", seed0 + i) for i in range(n)]


def step(env, slate):
    """Serve the same ``slate`` (a list of doc indices) to every user; returns the time step."""
    return env.step(tf.constant([list(slate)] * env.batch_size, tf.int32))


def mnl_probs(logits, no_click_logit):
    """Multinomial-logit probabilities of ``[*slate, no-click]``."""
    z = np.exp(np.append(np.asarray(logits, np.float64), no_click_logit))
    return z / z.sum()


def squash(x, m=10.0):
    """RecSim's soft saturation of interests: ``4 m (sigmoid(x / m) - 0.5)``."""
    return 4.0 * m * (1.0 / (1.0 + np.exp(-x / m)) - 0.5)
