"""The transition-set memory (networks/set_context.py): sums, counts and the keyed (linear-attention) read,
checked against explicit loops over the transitions."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.set_context import (
    MATMUL_SUM_MAX_T,
    SHIFTED_MIN_INPUT,
    ActionBuckets,
    TransitionSetContext,
    dense_on_parts,
    dense_on_transitions,
    running_sum,
)

D, H, K, T = 5, 6, 3, 7


def _context(keys=K, normalize_keyed=False):
    tf.keras.utils.set_random_seed(0)
    ctx = TransitionSetContext(D, H, (8,), trial_length=10, keys=keys, normalize_keyed=normalize_keyed)
    ctx.unroll(tf.zeros([1, 1, D]), ctx.initial_state(1))  # build
    return ctx


def _phi(ctx, e):
    for layer in ctx._phi:
        e = layer(e)
    return e


def test_readout_is_input_mean_sum_and_keyed_read_by_explicit_loops():
    ctx = _context()
    x = tf.random.stateless_normal([2, T, D], seed=[5, 6])
    readout, final = ctx.unroll(x, ctx.initial_state(2))
    assert readout.shape == (2, T, ctx.readout_size) == (2, T, D + 3 * H)
    prev = tf.zeros([2, D])
    total, memory = np.zeros([2, H]), np.zeros([2, K, H])
    for t in range(T):
        e = tf.concat([prev, x[:, t]], -1)
        f, w = _phi(ctx, e).numpy(), ctx._write_key(e).numpy()
        total += f
        memory += w[:, :, None] * f[:, None, :]
        read = ctx._read_key(x[:, t]).numpy()
        want = np.concatenate([x[:, t].numpy(), total / (t + 1), total / 10,
                               np.einsum("bk,bkh->bh", read, memory) / 10], -1)
        np.testing.assert_allclose(readout[:, t].numpy(), want, rtol=1e-4, atol=1e-5)
        prev = x[:, t]
    np.testing.assert_allclose(final[0].numpy(), total, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final[1].numpy(), np.full([2, 1], T))
    np.testing.assert_allclose(final[2].numpy(), x[:, -1].numpy())
    np.testing.assert_allclose(final[3].numpy(), memory.reshape(2, K * H), rtol=1e-4, atol=1e-5)


def test_normalised_keyed_read_is_the_bucket_mean_by_explicit_loops():
    ctx = _context(normalize_keyed=True)
    x = tf.random.stateless_normal([2, T, D], seed=[3, 4])
    readout, final = ctx.unroll(x, ctx.initial_state(2))
    assert readout.shape == (2, T, ctx.readout_size) == (2, T, D + 4 * H)
    prev = tf.zeros([2, D])
    memory, mass = np.zeros([2, K, H]), np.zeros([2, K])
    for t in range(T):
        e = tf.concat([prev, x[:, t]], -1)
        f, w = _phi(ctx, e).numpy(), ctx._write_key(e).numpy()
        memory += w[:, :, None] * f[:, None, :]
        mass += w
        read = ctx._read_key(x[:, t]).numpy()
        keyed = np.einsum("bk,bkh->bh", read, memory)
        want = np.concatenate([keyed / 10, keyed / (1 + np.einsum("bk,bk->b", read, mass))[:, None]], -1)
        np.testing.assert_allclose(readout[:, t, D + 2 * H:].numpy(), want, rtol=1e-4, atol=1e-5)
        prev = x[:, t]
    carried = np.concatenate([memory, mass[..., None]], -1).reshape(2, K * (H + 1))
    np.testing.assert_allclose(final[3].numpy(), carried, rtol=1e-4, atol=1e-5)
    # one bucket: the mass is the number of transitions, so the read is their mean (shrunk by one)
    one = _context(keys=1, normalize_keyed=True)
    readout, _ = one.unroll(x, one.initial_state(2))
    sums = readout[..., D + H:D + 2 * H] * 10  # sum / T
    steps = np.arange(1, T + 1, dtype=np.float32)[None, :, None]
    np.testing.assert_allclose(readout[..., D + 3 * H:].numpy(), sums.numpy() / (1 + steps), rtol=1e-4, atol=1e-5)
    with pytest.raises(MetaRLInputError, match="normalize_keyed needs keys > 0"):
        TransitionSetContext(D, H, (8,), trial_length=10, keys=0, normalize_keyed=True)


@pytest.mark.parametrize(("keys", "normalize_keyed"), [(0, False), (K, False), (K, True)])
def test_chunks_with_carried_state_equal_one_unroll_and_steps(keys, normalize_keyed):
    ctx = _context(keys=keys, normalize_keyed=normalize_keyed)
    x = tf.random.stateless_normal([2, T, D], seed=[7, 8])
    whole, _ = ctx.unroll(x, ctx.initial_state(2))
    first, state = ctx.unroll(x[:, :3], ctx.initial_state(2))
    rest, _ = ctx.unroll(x[:, 3:], state)
    np.testing.assert_allclose(tf.concat([first, rest], 1).numpy(), whole.numpy(), rtol=1e-4, atol=1e-5)
    state = ctx.initial_state(2)
    for t in range(T):
        out, state = ctx.step(x[:, t], state)
        np.testing.assert_allclose(out.numpy(), whole[:, t].numpy(), rtol=1e-4, atol=1e-5)
    _, unrolled = ctx.unroll(x, ctx.initial_state(2))  # the stepped state is the unrolled one
    for a, b in zip(state, unrolled, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_memory_is_the_same_for_any_order_of_the_same_transitions():
    ctx = _context()
    a, b, c = (tf.one_hot(i, D) * (i + 1.5) for i in range(3))
    # consecutive pairs of a-b-a-c-a and a-c-a-b-a are one multiset: (0,a) (a,b) (b,a) (a,c) (c,a)
    _, one = ctx.unroll(tf.stack([a, b, a, c, a])[None], ctx.initial_state(1))
    _, two = ctx.unroll(tf.stack([a, c, a, b, a])[None], ctx.initial_state(1))
    for s1, s2 in zip(one, two, strict=True):
        np.testing.assert_allclose(s1.numpy(), s2.numpy(), rtol=1e-5, atol=1e-6)
    plain = _context(keys=0)
    assert plain.readout_size == D + 2 * H and len(plain.state_spec) == 3


@pytest.mark.parametrize("t_len", [1, 2, 7, 100, MATMUL_SUM_MAX_T + 44])
def test_running_sum_is_cumsum_over_time_for_every_path(t_len):
    f = tf.random.stateless_normal([3, t_len, 4], seed=[1, t_len])
    want = np.cumsum(f.numpy(), axis=1)
    np.testing.assert_allclose(running_sum(f).numpy(), want, rtol=1e-4, atol=1e-4)
    dynamic = tf.function(running_sum, input_signature=[tf.TensorSpec([None, None, 4], tf.float32)])
    np.testing.assert_allclose(dynamic(f).numpy(), want, rtol=1e-4, atol=1e-4)
    with tf.GradientTape() as tape:  # the gradient of sum(w * cumsum(f)) is the reverse cumsum of w
        tape.watch(f)
        w = tf.random.stateless_normal(f.shape, seed=[2, t_len])
        loss = tf.reduce_sum(w * running_sum(f))
    grad = np.flip(np.cumsum(np.flip(w.numpy(), 1), axis=1), 1)
    np.testing.assert_allclose(tape.gradient(loss, f).numpy(), grad, rtol=1e-4, atol=1e-4)



def test_wide_inputs_take_the_shifted_first_layer_with_the_same_readout_and_gradients():
    d = SHIFTED_MIN_INPUT  # at this width phi's first layer and the write key act on x once, shifted
    tf.keras.utils.set_random_seed(2)
    ctx = TransitionSetContext(d, H, (8,), trial_length=10, keys=K, normalize_keyed=True)
    x = tf.random.stateless_normal([2, T, d], seed=[9, 10])
    prev = tf.random.stateless_normal([2, d], seed=[11, 12])
    layer = ctx._phi[0]
    with tf.GradientTape(persistent=True) as tape:
        shifted = dense_on_transitions(layer, prev, x)  # builds the layer for 2 * d inputs
        e = tf.concat([tf.concat([prev[:, None], x[:, :-1]], 1), x], -1)
        direct = layer(e)
    assert layer.kernel.shape == (2 * d, 8)
    np.testing.assert_allclose(shifted.numpy(), direct.numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(tape.gradient(shifted, layer.trainable_variables), tape.gradient(direct, layer.trainable_variables),
                    strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    whole, final = ctx.unroll(x, ctx.initial_state(2))
    state = ctx.initial_state(2)
    for t in range(T):  # steps go through the concatenated transition: the same readout
        out, state = ctx.step(x[:, t], state)
        np.testing.assert_allclose(out.numpy(), whole[:, t].numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(state, final, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)



@pytest.mark.parametrize("outer", [[3], [3, T]])
def test_dense_on_parts_is_the_layer_on_the_concatenation_with_the_same_gradients(outer):
    tf.keras.utils.set_random_seed(4)
    x = tf.random.stateless_normal(outer + [SHIFTED_MIN_INPUT], seed=[1, 2])
    rest = tf.random.stateless_normal(outer + [2 * H], seed=[3, 4])
    layer = tf.keras.layers.Dense(5, activation="relu")
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(rest)
        parts = dense_on_parts(layer, x, rest)  # builds the layer for the concatenation's width
        whole = layer(tf.concat([x, rest], -1))
    assert layer.kernel.shape == (SHIFTED_MIN_INPUT + 2 * H, 5)
    np.testing.assert_allclose(parts.numpy(), whole.numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(tape.gradient(parts, [*layer.trainable_variables, rest]),
                    tape.gradient(whole, [*layer.trainable_variables, rest]), strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)


def test_wide_observation_network_reads_its_memory_apart_from_the_input_with_the_concatenated_readout():
    """A set-memory actor-critic over a wide observation (>= SHIFTED_MIN_INPUT columns, as recsys) feeds its
    readout layer the observation and the memory read separately: the same hidden layer as the layer on their
    concatenation, and acting step by step equals the unroll."""
    from metarl_apps.networks.recurrent import RecurrentActorCritic

    obs_spec = {"features": tensor_spec.TensorSpec([SHIFTED_MIN_INPUT + 6], tf.float32)}
    action_spec = tensor_spec.BoundedTensorSpec([], tf.int32, 0, 3)
    tf.keras.utils.set_random_seed(5)
    net = RecurrentActorCritic(obs_spec, action_spec, cell="set", hidden_size=H, embed_sizes=(8,), trial_length=T)
    obs = {"features": tf.random.stateless_normal([2, T, SHIFTED_MIN_INPUT + 6], seed=[6, 7])}
    memory, _ = net._set.unroll(obs["features"], net._set.initial_state(2), with_input=False)
    readout, _ = net._set.unroll(obs["features"], net._set.initial_state(2))
    assert memory.shape[-1] == readout.shape[-1] - (SHIFTED_MIN_INPUT + 6) == 2 * H
    first, _ = net._set.step(obs["features"][:, 0], net._set.initial_state(2), with_input=False)
    np.testing.assert_allclose(first.numpy(), memory[:, 0].numpy(), rtol=1e-5, atol=1e-5)
    h, _, _ = net._set_memory(obs["features"], net.initial_state(2), obs, 2)
    np.testing.assert_allclose(h.numpy(), net._readout(readout).numpy(), rtol=1e-5, atol=1e-5)
    logits, value, final = net.unroll(obs, net.initial_state(2))
    state = net.initial_state(2)
    for t in range(T):
        step_logits, step_value, state = net.step({"features": obs["features"][:, t]}, state)
        np.testing.assert_allclose(step_logits.numpy(), logits[:, t].numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(step_value.numpy(), value[:, t].numpy(), rtol=1e-4, atol=1e-5)
    for a, b in zip(state, final, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5)


def test_action_buckets_read_each_actions_mean_content_count_and_uncertainty_by_explicit_loops():
    buckets = ActionBuckets(num_actions=4, content_size=3, trial_length=10)
    content = tf.random.stateless_normal([2, T, 3], seed=[7, 8])
    actions = np.array([[0, 2, 2, 1, 2, 0, 3], [1, 1, 1, 1, 1, 1, 1]])
    bucket = tf.one_hot(actions, 4)
    reads, final = buckets.unroll(content, bucket, buckets.initial_state(2))
    assert reads.shape == (2, T, 4, buckets.read_size) == (2, T, 4, 5)
    sums, counts = np.zeros([2, 4, 3]), np.zeros([2, 4])
    for t in range(T):
        if t > 0:  # the trial's first input reports no action taken: it is in no bucket
            for b in range(2):
                sums[b, actions[b, t]] += content[b, t].numpy()
                counts[b, actions[b, t]] += 1
        inverse = 1 / (1 + counts[..., None])
        want = np.concatenate([sums * inverse, counts[..., None] / 10, inverse], -1)
        np.testing.assert_allclose(reads[:, t].numpy(), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final[1].numpy(), [[1, 1, 3, 1], [0, 6, 0, 0]])  # inputs 1..6 only
    np.testing.assert_allclose(final[0].numpy(), sums.reshape(2, -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final[2].numpy(), [[T], [T]])
    # chunks with the carried state, and steps, give the same reads and the same final state
    first, mid = buckets.unroll(content[:, :3], bucket[:, :3], buckets.initial_state(2))
    rest, end = buckets.unroll(content[:, 3:], bucket[:, 3:], mid)
    np.testing.assert_allclose(tf.concat([first, rest], 1).numpy(), reads.numpy(), rtol=1e-5, atol=1e-6)
    state = buckets.initial_state(2)
    for t in range(T):
        step_reads, state = buckets.step(content[:, t], bucket[:, t], state)
        np.testing.assert_allclose(step_reads.numpy(), reads[:, t].numpy(), rtol=1e-5, atol=1e-6)
    for a, b, c in zip(state, end, final, strict=True):
        np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b.numpy(), c.numpy(), rtol=1e-5, atol=1e-6)
