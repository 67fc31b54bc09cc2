"""Keyed values for RecSim NG's edward2 random variables: right distributions, per-row streams, pins, means."""

import edward2 as ed
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from metarl_apps.adapters.recsys import sampling

tfd = tfp.distributions


def _keys(*ks):
    return tf.constant(ks, tf.uint64)


def test_categorical_is_gumbel_max_with_the_right_frequencies():
    n = 20000
    probs = np.array([0.5, 0.3, 0.2], np.float32)
    logits = tf.math.log(tf.broadcast_to(probs, [n, 3]))
    with sampling.keyed_values(sampling.row_uniforms(_keys(*range(n)), tf.constant(7, tf.int64))):
        rv = ed.Categorical(logits=logits)
    freq = np.bincount(np.asarray(rv.value), minlength=3) / n
    np.testing.assert_allclose(freq, probs, atol=0.015)
    assert rv.value.dtype == tf.int32


def test_normal_and_mvn_have_the_right_moments():
    n = 20000
    keys = _keys(*range(n))
    with sampling.keyed_values(sampling.row_uniforms(keys, tf.constant(3, tf.int64))):
        x = ed.Normal(loc=tf.fill([n], 2.0), scale=0.5)
        scale = tf.linalg.LinearOperatorScaledIdentity(2, multiplier=tf.fill([n], 3.0))
        y = ed.MultivariateNormalLinearOperator(loc=0.0, scale=scale)
    x, y = np.asarray(x.value), np.asarray(y.value)
    assert abs(x.mean() - 2.0) < 0.02 and abs(x.std() - 0.5) < 0.02
    assert y.shape == (n, 2) and np.all(np.abs(y.mean(0)) < 0.08) and np.all(np.abs(y.std(0) - 3.0) < 0.08)
    assert abs(np.corrcoef(x, y[:, 0])[0, 1]) < 0.03  # different draw index -> independent streams


def test_a_row_depends_on_its_key_only():
    def draw(keys):
        with sampling.keyed_values(sampling.row_uniforms(_keys(*keys), tf.constant(5, tf.int64))):
            c = ed.Categorical(logits=tf.zeros([len(keys), 4]))
            z = ed.Normal(loc=tf.zeros([len(keys), 3]), scale=1.0)
        return np.asarray(c.value), np.asarray(z.value)

    c_batch, z_batch = draw([11, 22, 33])
    c_alone, z_alone = draw([22])
    assert c_batch[1] == c_alone[0]
    np.testing.assert_allclose(z_batch[1], z_alone[0], atol=1e-6)  # SIMD paths differ by ~1 ulp
    _, z_other_counter = draw([11, 22, 33])
    np.testing.assert_array_equal(z_batch, z_other_counter)  # same key and counter -> same values


def test_deterministic_independent_pins_and_mean_mode():
    with sampling.keyed_values(sampling.row_uniforms(_keys(1, 2), tf.constant(0, tf.int64)),
                               pins={"Normal": tf.constant([4.0, 5.0])}):
        d = ed.Independent(tfd.Deterministic(loc=tf.ones([2, 3])), reinterpreted_batch_ndims=1)
        pinned = ed.Normal(loc=tf.zeros([2]), scale=1.0)
    np.testing.assert_array_equal(d.value, np.ones((2, 3)))
    np.testing.assert_array_equal(pinned.value, [4.0, 5.0])
    with sampling.keyed_values(None, mode="mean"):
        m = ed.Normal(loc=tf.constant([1.0, -1.0]), scale=3.0)
        c = ed.Categorical(logits=tf.constant([[0.0, 2.0, 1.0]]))
    np.testing.assert_array_equal(m.value, [1.0, -1.0])
    assert int(c.value[0]) == 1


def test_unkeyable_distribution_and_unbatched_variable_are_refused():
    with pytest.raises(NotImplementedError, match="cannot draw from Dirichlet"):
        with sampling.keyed_values(sampling.row_uniforms(_keys(1), tf.constant(0, tf.int64))):
            ed.Dirichlet(concentration=tf.ones([1, 3]))
    with pytest.raises(ValueError, match="not batched over the 2 users"):
        with sampling.keyed_values(sampling.row_uniforms(_keys(1, 2), tf.constant(0, tf.int64))):
            ed.Normal(loc=tf.zeros([5]), scale=1.0)


def test_global_uniforms_are_reproducible():
    def corpus(key):
        with sampling.keyed_values(sampling.global_uniforms(key)):
            return np.asarray(ed.Normal(loc=tf.zeros([4, 2]), scale=1.0).value)

    np.testing.assert_array_equal(corpus(3), corpus(3))
    assert not np.array_equal(corpus(3), corpus(4))
