import numpy as np
import tensorflow as tf

from metarl_apps.core import rng


def _keys(xs):
    return tf.constant(np.asarray(xs, dtype=np.uint64))


def test_row_uniform_depends_only_on_key_counter_and_index():
    keys = [rng.task_key("a", i) for i in range(6)]
    batch = rng.row_uniform(_keys(keys), 7, 4).numpy()
    for i, k in enumerate(keys):
        alone = rng.row_uniform(_keys([k]), 7, 4).numpy()
        np.testing.assert_array_equal(batch[i], alone[0])
    assert not np.allclose(batch, rng.row_uniform(_keys(keys), 8, 4).numpy())


def test_row_uniform_moments_and_range():
    u = rng.row_uniform(_keys(np.arange(2000)), 3, 50).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.005 and abs(u.var() - 1 / 12) < 0.002
    # neighbouring keys and columns are uncorrelated
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.1
    assert abs(np.corrcoef(u[:, 0], u[:, 1])[0, 1]) < 0.1


def test_row_normal_moments():
    z = rng.row_normal(_keys(np.arange(4000)), 0, 25).numpy()
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1.0) < 0.02


def test_task_key_is_stable():
    assert rng.task_key("bandits.bernoulli", "test", 0, 0) == rng.task_key("bandits.bernoulli", "test", 0, 0)
    assert rng.task_key("x", 1) != rng.task_key("x", 2)
    assert 0 <= rng.task_key("x") < 2**63
