"""MAML's inner loop and meta-gradient: hand-worked numbers, finite differences, closed forms, batching."""

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.algorithms.maml.losses import inner_update, maml_meta_gradient, mse
from metarl_apps.networks.functional import FunctionalMLP

F64 = tf.float64


def tiny_problem(seed=0, steps=1):
    """1 hidden layer of 3 tanh units, float64 (smooth, so central differences are accurate)."""
    net = FunctionalMLP(2, (3,), 1, activation="tanh", dtype=F64)
    rng = np.random.default_rng(seed)
    params = [tf.Variable(rng.normal(0, 0.8, s)) for s in net.param_shapes]
    xs, xq = rng.normal(size=(4, 2)), rng.normal(size=(5, 2))
    ys, yq = np.sin(xs.sum(1, keepdims=True)), np.sin(xq.sum(1, keepdims=True))
    inner = lambda ps: mse(net.apply(ps, xs), ys)
    outer = lambda ps: mse(net.apply(ps, xq), yq)
    return net, params, inner, outer


def outer_after_adaptation(values, inner, outer, lrs, steps):
    ps = [tf.constant(v) for v in values]
    return float(outer(inner_update(ps, inner, lrs, steps, first_order=False)))


def central_differences(values, f, eps=1e-6):
    """d f / d values, entry by entry."""
    grads = []
    for i, v in enumerate(values):
        g = np.zeros_like(v)
        for idx in np.ndindex(v.shape):
            plus = [w.copy() for w in values]
            minus = [w.copy() for w in values]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            g[idx] = (f(plus) - f(minus)) / (2 * eps)
        grads.append(g)
    return grads


def rel_err(a, b):
    a = np.concatenate([np.ravel(x) for x in a])
    b = np.concatenate([np.ravel(x) for x in b])
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("steps", [1, 2])
def test_second_order_meta_gradient_matches_finite_differences(steps):
    _, params, inner, outer = tiny_problem(steps=steps)
    lr = 0.3
    mg = maml_meta_gradient(params, inner, outer, lr, steps, first_order=False)
    values = [p.numpy() for p in params]
    fd = central_differences(values, lambda vs: outer_after_adaptation(vs, inner, outer, lr, steps))
    assert rel_err([g.numpy() for g in mg.param_grads], fd) < 1e-3
    assert mg.loss.numpy() == pytest.approx(outer_after_adaptation(values, inner, outer, lr, steps))
    # and the first-order gradient does not match (the test can tell the two apart)
    fo = maml_meta_gradient(params, inner, outer, lr, steps, first_order=True)
    assert rel_err([g.numpy() for g in fo.param_grads], fd) > 1e-2


def test_first_order_is_second_order_without_the_hessian_term_closed_form():
    # L_in = ½ θᵀAθ − bᵀθ (Hessian A), L_out = ½‖θ − c‖²; one step θ' = θ − α(Aθ − b).
    A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 3.0]])
    b, c, theta0, alpha = np.array([1.0, -1.0, 0.5]), np.array([0.2, 0.4, -0.3]), np.array([0.3, -0.7, 1.1]), 0.1
    inner = lambda ps: 0.5 * tf.tensordot(ps[0], tf.linalg.matvec(A, ps[0]), 1) - tf.tensordot(b, ps[0], 1)
    outer = lambda ps: 0.5 * tf.reduce_sum(tf.square(ps[0] - c))
    theta = [tf.Variable(theta0)]
    adapted = theta0 - alpha * (A @ theta0 - b)
    fo_expected = adapted - c
    so_expected = (np.eye(3) - alpha * A) @ (adapted - c)
    so = maml_meta_gradient(theta, inner, outer, alpha, 1, first_order=False).param_grads[0].numpy()
    fo = maml_meta_gradient(theta, inner, outer, alpha, 1, first_order=True).param_grads[0].numpy()
    np.testing.assert_allclose(so, so_expected, rtol=1e-12)
    np.testing.assert_allclose(fo, fo_expected, rtol=1e-12)
    np.testing.assert_allclose(so - fo, -alpha * A @ (adapted - c), rtol=1e-12)  # exactly the Hessian term


def test_first_order_is_second_order_minus_hessian_vector_product_on_a_network():
    _, params, inner, outer = tiny_problem(seed=1)
    alpha = 0.3
    so = maml_meta_gradient(params, inner, outer, alpha, 1, first_order=False)
    fo = maml_meta_gradient(params, inner, outer, alpha, 1, first_order=True)
    # v = ∇L_out(θ') at the adapted parameters; Hv by differentiating ⟨∇L_in(θ), v⟩ (independent of the code).
    adapted = inner_update(params, inner, alpha, 1, first_order=False)
    with tf.GradientTape() as t:
        t.watch(adapted)
        lo = outer(adapted)
    v = [tf.stop_gradient(g) for g in t.gradient(lo, adapted)]
    with tf.GradientTape() as t2:
        with tf.GradientTape() as t1:
            li = inner(params)
        g_in = t1.gradient(li, params)
        dot = tf.add_n([tf.reduce_sum(g * u) for g, u in zip(g_in, v, strict=True)])
    hv = t2.gradient(dot, params)
    for s, f, h, vv in zip(so.param_grads, fo.param_grads, hv, v, strict=True):
        np.testing.assert_allclose(f.numpy(), vv.numpy(), rtol=1e-10)
        np.testing.assert_allclose(s.numpy(), f.numpy() - alpha * h.numpy(), rtol=1e-8, atol=1e-12)


def test_inner_update_on_a_hand_made_batch():
    # Linear model y = w x + b, w=2, b=1, x=[1, 2], y=[3, 3]: predictions [3, 5], errors [0, 2], MSE 2.
    # dL/dw = mean(2·err·x) = 4, dL/db = mean(2·err) = 2.
    net = FunctionalMLP(1, (), 1, dtype=F64)
    params = [tf.constant([[2.0]], F64), tf.constant([1.0], F64)]
    x, y = tf.constant([[1.0], [2.0]], F64), tf.constant([[3.0], [3.0]], F64)
    loss = lambda ps: mse(net.apply(ps, x), y)
    w, b = inner_update(params, loss, 0.1, 1, first_order=False)
    np.testing.assert_allclose([w.numpy().item(), b.numpy().item()], [2 - 0.1 * 4, 1 - 0.1 * 2], rtol=1e-12)
    # second step from (1.6, 0.8): predictions [2.4, 4.0], errors [-0.6, 1.0] -> dw = 1.4, db = 0.4
    w, b = inner_update(params, loss, 0.1, 2, first_order=True)
    np.testing.assert_allclose([w.numpy().item(), b.numpy().item()], [1.6 - 0.14, 0.8 - 0.04], rtol=1e-12)
    # Meta-SGD: one rate per parameter
    w, b = inner_update(params, loss, [tf.constant([[0.1]], F64), tf.constant([0.5], F64)], 1, first_order=False)
    np.testing.assert_allclose([w.numpy().item(), b.numpy().item()], [1.6, 0.0], atol=1e-12)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_sgd_rate_gradient_is_nonzero_and_matches_finite_differences(first_order):
    _, params, inner, outer = tiny_problem(seed=2)
    lrs = [tf.Variable(np.full(p.shape, 0.2)) for p in params]
    mg = maml_meta_gradient(params, inner, outer, lrs, 1, first_order=first_order)
    assert all(np.any(g.numpy() != 0) for g in mg.lr_grads)
    values = [p.numpy() for p in params]
    fd = central_differences([r.numpy() for r in lrs], lambda rs: outer_after_adaptation(values, inner, outer, rs, 1))
    assert rel_err([g.numpy() for g in mg.lr_grads], fd) < 1e-3  # first order keeps the rate gradient intact
    # closed form for one step: dL_out(θ')/dα = −∇L_in(θ) ⊙ ∇L_out(θ')
    with tf.GradientTape() as t:
        li = inner(params)
    g_in = t.gradient(li, params)
    adapted = [p - r * g for p, r, g in zip(params, lrs, g_in, strict=True)]
    with tf.GradientTape() as t:
        t.watch(adapted)
        lo = outer(adapted)
    g_out = t.gradient(lo, adapted)
    for got, gi, go in zip(mg.lr_grads, g_in, g_out, strict=True):
        np.testing.assert_allclose(got.numpy(), -(gi * go).numpy(), rtol=1e-8, atol=1e-14)


def test_apply_batched_equals_apply_per_task():
    net = FunctionalMLP(2, (4, 3), 2, activation="relu")
    per_task = [net.init_params(seed) for seed in range(3)]
    stacked = [tf.stack(ps) for ps in zip(*per_task, strict=True)]
    x = tf.random.stateless_normal([3, 5, 2], seed=[1, 2])
    out = net.apply_batched(stacked, x)
    assert out.shape == (3, 5, 2)
    for i in range(3):
        np.testing.assert_allclose(out[i].numpy(), net.apply(per_task[i], x[i]).numpy(), rtol=1e-5, atol=1e-6)


def test_batched_inner_update_and_meta_gradient_equal_per_task_ones():
    net = FunctionalMLP(2, (3,), 1, activation="tanh", dtype=F64)
    rng = np.random.default_rng(3)
    n = 3
    per_task = [[tf.constant(rng.normal(0, 0.8, s)) for s in net.param_shapes] for _ in range(n)]
    xs, xq = rng.normal(size=(n, 4, 2)), rng.normal(size=(n, 6, 2))
    ys, yq = np.sin(xs.sum(-1, keepdims=True)), np.cos(xq.sum(-1, keepdims=True))
    lrs = [tf.constant(rng.uniform(0.1, 0.3, s)) for s in net.param_shapes]
    # different parameters per task, adapted together vs one at a time
    stacked = [tf.stack(ps) for ps in zip(*per_task, strict=True)]
    batched = inner_update(stacked, lambda ps: mse(net.apply_batched(ps, xs), ys), lrs, 2, first_order=False)
    for i in range(n):
        single = inner_update(per_task[i], lambda ps, i=i: mse(net.apply(ps, xs[i]), ys[i]), lrs, 2, False)
        for b, s in zip(batched, single, strict=True):
            np.testing.assert_allclose(b[i].numpy(), s.numpy(), rtol=1e-12)
    # the meta-gradient of the mean outer loss over a stacked meta-batch = mean of per-task meta-gradients
    params = [tf.Variable(p) for p in per_task[0]]
    rates = [tf.Variable(r) for r in lrs]
    mg = maml_meta_gradient(params, lambda ps: mse(net.apply_batched(ps, xs), ys),
                            lambda ps: mse(net.apply_batched(ps, xq), yq), rates, 2, False, num_tasks=n)
    singles = [maml_meta_gradient(params, lambda ps, i=i: mse(net.apply(ps, xs[i]), ys[i]),
                                  lambda ps, i=i: mse(net.apply(ps, xq[i]), yq[i]), rates, 2, False)
               for i in range(n)]
    assert mg.loss.numpy() == pytest.approx(np.mean([s.loss.numpy() for s in singles]), rel=1e-12)
    for k, g in enumerate(mg.param_grads):
        np.testing.assert_allclose(g.numpy(), np.mean([s.param_grads[k].numpy() for s in singles], 0), rtol=1e-10)
    for k, g in enumerate(mg.lr_grads):
        np.testing.assert_allclose(g.numpy(), np.mean([s.lr_grads[k].numpy() for s in singles], 0), rtol=1e-10)


def test_functional_mlp_matches_keras_dense_layers_and_is_seeded():
    net = FunctionalMLP(3, (5,), 2, activation="relu")
    params = net.init_params(seed=7)
    assert [tuple(p.shape) for p in params] == [(3, 5), (5,), (5, 2), (2,)]
    np.testing.assert_array_equal(params[0].numpy(), net.init_params(seed=7)[0].numpy())
    assert not np.array_equal(params[0].numpy(), net.init_params(seed=8)[0].numpy())
    assert np.all(params[1].numpy() == 0)
    model = tf.keras.Sequential([tf.keras.layers.Dense(5, activation="relu"), tf.keras.layers.Dense(2)])
    model.build((None, 3))
    model.set_weights([p.numpy() for p in params])
    x = tf.random.stateless_normal([4, 3], seed=[0, 1])
    np.testing.assert_allclose(net.apply(params, x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_functional_mlp_rejects_bad_sizes():
    from metarl_apps.core.errors import MetaRLInputError

    with pytest.raises(MetaRLInputError, match=r"hidden_sizes=\(0,\).*must all be positive integers"):
        FunctionalMLP(1, (0,), 1)
