"""MQL losses and estimators by hand: Q targets, double Q, slates, propensity density ratio, ESS, proximal term."""

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.algorithms.mql import MQLConfig
from metarl_apps.algorithms.mql.losses import (
    action_value,
    bootstrap_value,
    density_ratio,
    effective_sample_size,
    fit_propensity,
    huber,
    n_step_targets,
    proximal_penalty,
    td_loss,
)
from metarl_apps.core.errors import MetaRLInputError


def test_n_step_targets_by_hand():
    rewards = tf.constant([[1.0, 2.0, 3.0]])
    values = tf.constant([[10.0, 20.0, 30.0]])  # V(s_t)
    # n=1, the window ends the trial: y_t = r_t + g V(s_{t+1}); the last action is terminal
    y, valid = n_step_targets(rewards, values, 0.5, 1, tf.constant([True]))
    np.testing.assert_allclose(y.numpy(), [[1 + 0.5 * 20, 2 + 0.5 * 30, 3]])
    assert valid.numpy().all()
    # n=2: y_0 = 1 + 0.5*2 + 0.25*30; y_1 = 2 + 0.5*3 (terminal); y_2 = 3
    y, valid = n_step_targets(rewards, values, 0.5, 2, tf.constant([True]))
    np.testing.assert_allclose(y.numpy(), [[9.5, 3.5, 3.0]])
    # a window cut before the trial's end: no target where the return runs past the window
    _, valid = n_step_targets(rewards, values, 0.5, 2, tf.constant([False]))
    np.testing.assert_array_equal(valid.numpy(), [[True, False, False]])
    _, valid = n_step_targets(rewards, values, 0.5, 1, tf.constant([False]))
    np.testing.assert_array_equal(valid.numpy(), [[True, True, False]])


def test_double_q_bootstrap_and_slate_values_by_hand():
    q_select = tf.constant([[1.0, 5.0, 2.0]])
    q_eval = tf.constant([[10.0, 3.0, 7.0]])
    # double Q: the online net picks action 1, the target net values it at 3; plain DQN takes max = 10
    assert bootstrap_value(q_select, q_eval, "discrete", double_q=True).numpy().tolist() == [3.0]
    assert bootstrap_value(q_select, q_eval, "discrete", double_q=False).numpy().tolist() == [10.0]
    # slates: per-item Q; the greedy slate is the top-2 items {1, 3}; Q(slate) = mean of its items
    q_items = tf.constant([[1.0, 5.0, 2.0, 4.0]])
    q_items_eval = tf.constant([[0.0, 2.0, 8.0, 6.0]])
    assert bootstrap_value(q_items, q_items_eval, "slate", slate_size=2).numpy().tolist() == [4.0]
    assert action_value(q_items, tf.constant([[2, 0]]), "slate").numpy().tolist() == [1.5]
    # multi-discrete: mean over elements of each element's Q
    q_multi = tf.constant([[[1.0, 2.0], [3.0, 5.0]]])  # [B=1, m=2, A=2]
    assert action_value(q_multi, tf.constant([[1, 0]]), "multi").numpy().tolist() == [2.5]


def test_td_loss_by_hand():
    q = tf.constant([0.0, 1.0, 5.0])
    y = tf.constant([0.5, 3.0, 5.0])
    # huber(delta=1): 0.5*0.25, 1*(2-1)+0.5, 0; the third is ignored (weight 0)
    w = tf.constant([1.0, 1.0, 0.0])
    np.testing.assert_allclose(td_loss(q, y, w, 1.0).numpy(), (0.125 + 1.5) / 2)
    np.testing.assert_allclose(td_loss(q, y, w, None).numpy(), (0.125 + 2.0) / 2)
    np.testing.assert_allclose(huber(tf.constant([-3.0]), 2.0).numpy(), [0.5 * 4 + 2 * 1])


def test_propensity_weights_match_the_two_gaussian_density_ratio():
    rng = np.random.default_rng(0)
    old = rng.normal(0.0, 1.0, size=(6000, 1)).astype(np.float32)
    mus = [1.0, -0.5]
    new = np.stack([rng.normal(mu, 1.0, size=(6000, 1)) for mu in mus]).astype(np.float32)  # [B=2, N, 1]
    prop = fit_propensity(new, old, steps=600, learning_rate=0.05, l2=0.0)
    grid = np.linspace(-1.0, 1.5, 11, dtype=np.float32)[:, None]
    ratio = density_ratio(prop, grid).numpy()  # [2, 11]
    for b, mu in enumerate(mus):
        truth = np.exp(mu * grid[:, 0] - mu ** 2 / 2)  # N(mu,1) / N(0,1)
        np.testing.assert_allclose(ratio[b], truth, rtol=0.12)
    # clipping
    assert density_ratio(prop, np.array([[8.0]], np.float32), max_weight=3.0).numpy()[0, 0] == pytest.approx(3.0)


def test_effective_sample_size_by_hand():
    w = tf.constant([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0], [2.0, 1.0, 0.0, 0.0]])
    np.testing.assert_allclose(effective_sample_size(w).numpy(), [4.0, 1.0, 9.0 / 5.0], rtol=1e-6)


def test_proximal_term_pulls_parameters_back_by_hand():
    theta = tf.Variable([1.0, 2.0])
    anchor = tf.constant([0.0, 0.0])
    # value: 0.5 * (1 + 4)
    assert proximal_penalty([theta], [anchor], 0.5).numpy() == pytest.approx(2.5)
    # one SGD step, lr 0.1: theta - 0.1 * 2 * 0.5 * (theta - anchor) = 0.9 * theta
    with tf.GradientTape() as tape:
        loss = proximal_penalty([theta], [anchor], 0.5)
    theta.assign_sub(0.1 * tape.gradient(loss, theta))
    np.testing.assert_allclose(theta.numpy(), [0.9, 1.8], rtol=1e-6)
    # with a linear task loss a.theta the minimiser is anchor - a / (2 lambda): pulled back from -inf
    a, lam = tf.constant([1.0, -2.0]), 0.25
    theta = tf.Variable([0.0, 0.0])
    for _ in range(200):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(a * theta) + proximal_penalty([theta], [anchor], lam)
        theta.assign_sub(0.2 * tape.gradient(loss, theta))
    np.testing.assert_allclose(theta.numpy(), [-2.0, 4.0], rtol=1e-4)
    # stacked per-task parameters: one penalty per task, the anchor broadcast
    stacked = tf.constant([[1.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(proximal_penalty([stacked], [anchor], 2.0, batch_dims=1).numpy(), [2.0, 18.0])


@pytest.mark.parametrize("field,value,match", [
    ("cell", "rnn", r"MQLConfig.cell='rnn': must be 'gru', 'lstm' or 'set'"),
    ("n_step", 0, r"MQLConfig.n_step=0: must be a positive integer"),
    ("discount", 1.5, r"MQLConfig.discount=1.5: must be in \[0, 1\]"),
    ("context_length", 1, r"MQLConfig.context_length=1: must be an integer >= 2"),
    ("max_weight", 0, r"MQLConfig.max_weight=0: must be a positive number"),
    ("proximal_coef", -1.0, r"MQLConfig.proximal_coef=-1.0: must be a non-negative number"),
    ("huber_delta", 0.0, r"MQLConfig.huber_delta=0.0: must be a positive number, or null"),
])
def test_bad_config_is_a_one_line_error(field, value, match):
    with pytest.raises(MetaRLInputError, match=match) as err:
        MQLConfig(**{field: value})
    assert "\n" not in str(err.value)


def test_context_length_must_exceed_n_step_and_epsilon_schedule():
    with pytest.raises(MetaRLInputError, match=r"context_length=3: must exceed n_step \(3\)"):
        MQLConfig(context_length=3, n_step=3)
    c = MQLConfig(epsilon_start=1.0, epsilon_final=0.1, epsilon_decay_iterations=10)
    assert [c.epsilon_at(i) for i in (0, 5, 10, 50)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
