"""RL MAML: hand-worked inner steps, first vs second order, finite differences, config errors, heads."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.specs import tensor_spec

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.navigation import PointNavigation
from metarl_apps.algorithms.maml.config import MAMLConfig
from metarl_apps.algorithms.maml.learner import MAML
from metarl_apps.algorithms.maml.losses import (
    baseline_features,
    discounted_returns,
    inner_update,
    linear_baseline,
    ppo_outer_loss,
)
from metarl_apps.algorithms.maml.policy import FunctionalPolicyNet, inner_loss_fn
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.functional import stack_params

REINFORCE = dict(estimator="reinforce", baseline="zero", discount=1.0, normalize=False)


def _bandit_net(arms=2):
    d = BernoulliBandits(arms=arms, pulls=4)
    return d, FunctionalPolicyNet(d.observation_spec(), d.action_spec(), hidden_sizes=())


def test_discounted_returns_and_linear_baseline_by_hand():
    r = tf.constant([[1.0, 0.0, 2.0]])
    np.testing.assert_allclose(discounted_returns(r, 0.5), [[1.5, 1.0, 2.0]])
    # returns that are exactly linear in the features are fitted exactly
    obs = tf.constant(np.random.default_rng(0).normal(size=(2, 30, 2)), tf.float32)
    w = np.array([1.0, -2.0, 0.5, 0.3, 4.0, 0.0, 0.0, 1.5], np.float32)
    y = tf.linalg.matvec(baseline_features(obs, 30), w)
    np.testing.assert_allclose(linear_baseline(obs, y), y, rtol=0.03, atol=0.03)  # up to the small ridge


def test_inner_update_on_hand_made_batch():
    """Linear softmax over 2 arms, logits = b (the bandit obs is 0), one episode of pulls (0, 1) with rewards
    (1, 0). REINFORCE, γ = 1, no baseline: ∇L = -½ (e_0 − π) · 1 = [−¼, ¼] at b = 0, so b' = b − 0.1 ∇L."""
    _, net = _bandit_net()
    params = [tf.Variable(p) for p in net.init_params(0)]
    for p in params:
        p.assign(tf.zeros_like(p))
    x = tf.zeros([1, 2, 1])
    raw = tf.constant([[0, 1]])
    rewards = tf.constant([[1.0, 0.0]])
    loss_fn = inner_loss_fn(net, x, None, raw, rewards, **REINFORCE)
    adapted = inner_update(stack_params(params, 1), loss_fn, 0.1, 1, first_order=False)
    np.testing.assert_allclose(adapted[1][0], [0.025, -0.025], atol=1e-7)
    np.testing.assert_allclose(adapted[0][0], np.zeros((1, 2)), atol=1e-7)
    # DiCE: same direction, divided by the per-task std of R − b (= 0.5 here): b' = [0.05, -0.05]
    dice = inner_loss_fn(net, x, None, raw, rewards, estimator="dice", baseline="zero", discount=1.0,
                         normalize=False)
    adapted = inner_update(stack_params(params, 1), dice, 0.1, 1, first_order=False)
    np.testing.assert_allclose(adapted[1][0], [0.05, -0.05], atol=1e-6)


def test_online_policy_takes_the_hand_computed_step():
    """The adapted policy's state after one pull of a 3-armed bandit holds offset_b = lr · (e_a − π) · r."""
    dist, _ = _bandit_net(3)
    learner = MAML(inner_lr=0.5, hidden_sizes=(), estimator="reinforce", baseline="zero",
                   normalize_advantages=False, discount=1.0)
    learner._build(dist)
    learner.params[1].assign([0.2, -0.1, 0.0])
    (task,) = dist.sample(1, "test")
    policy = learner.adapt([task], 2)
    env = dist.make_env([task])
    time_step = env.reset()
    state = policy.get_initial_state(1)
    step = policy.action(time_step, state)
    time_step = env.step(step.action)
    a, r = int(step.action[0]), float(time_step.reward[0])
    step2 = policy.action(time_step, step.state)
    pi = tf.nn.softmax([0.2, -0.1, 0.0]).numpy()
    expected = 0.5 * (np.eye(3)[a] - pi) * r
    np.testing.assert_allclose(step2.state["offset"][1][0], expected, atol=1e-6)
    assert int(step2.state["steps"][0]) == 1


def _tiny_rl_problem(dtype=tf.float64, seed=0):
    """A categorical policy (3 actions, MLP 3-4-3) with fixed pre/post episodes for 2 tasks."""
    spec = {"obs": tensor_spec.TensorSpec((3,), tf.float32), "prev_action": None}
    net = FunctionalPolicyNet(spec, tensor_spec.BoundedTensorSpec((), tf.int32, 0, 2), (4,), dtype=dtype)
    rng = np.random.default_rng(seed)
    theta = [tf.constant(rng.normal(scale=0.5, size=s), dtype) for s in net.param_shapes]
    n, t = 2, 12  # more steps than baseline features (8), so the linear baseline is not an exact fit
    pre = dict(x=tf.constant(rng.normal(size=(n, t, 3)), dtype), raw=tf.constant(rng.integers(0, 3, (n, t)), tf.int32),
               reward=tf.constant(rng.normal(size=(n, t)), dtype))
    post = dict(x=tf.constant(rng.normal(size=(n, t, 3)), dtype), raw=tf.constant(rng.integers(0, 3, (n, t)), tf.int32),
                adv=tf.constant(rng.normal(size=(n, t)), dtype))
    return net, theta, pre, post


def _outer_loss(net, theta, pre, post, estimator, first_order=False, old_logp=None, lr=0.3):
    loss_fn = inner_loss_fn(net, pre["x"], None, pre["raw"], pre["reward"], estimator=estimator, baseline="linear",
                            discount=0.9, normalize=True)
    adapted = inner_update(stack_params(theta, 2), loss_fn, lr, 1, first_order)
    logp = net.distribution(adapted, post["x"]).log_prob(post["raw"])
    if old_logp is None:
        old_logp = tf.stop_gradient(logp)
    return tf.reduce_mean(ppo_outer_loss(logp, old_logp, post["adv"], 0.2)), logp, adapted


def test_meta_gradient_matches_finite_differences():
    """The sampled REINFORCE objective is a smooth function of θ: its exact second-order meta-gradient matches
    central differences. (DiCE's second derivative is by design *not* the derivative of the sampled first
    gradient — it adds the score-function terms of the expected objective — so it is checked below instead.)"""
    estimator = "reinforce"
    net, theta, pre, post = _tiny_rl_problem()
    _, old_logp, _ = _outer_loss(net, theta, pre, post, estimator)  # ratios start at 1 (inside the clip)
    old_logp = old_logp * 1.0 + 0.01  # move off the clip boundary's kink
    with tf.GradientTape() as tape:
        tape.watch(theta)
        loss, _, _ = _outer_loss(net, theta, pre, post, estimator, old_logp=old_logp)
    grads = tape.gradient(loss, theta)
    rng = np.random.default_rng(1)
    direction = [tf.constant(rng.normal(size=p.shape), tf.float64) for p in theta]
    eps = 1e-5
    plus = _outer_loss(net, [p + eps * d for p, d in zip(theta, direction, strict=True)], pre, post, estimator,
                       old_logp=old_logp)[0]
    minus = _outer_loss(net, [p - eps * d for p, d in zip(theta, direction, strict=True)], pre, post, estimator,
                        old_logp=old_logp)[0]
    numeric = float((plus - minus) / (2 * eps))
    analytic = float(sum(tf.reduce_sum(g * d) for g, d in zip(grads, direction, strict=True)))
    assert abs(numeric - analytic) / max(abs(numeric), 1e-8) < 1e-3, (numeric, analytic)


def test_dice_first_gradient_is_the_discounted_policy_gradient():
    net, theta, pre, _ = _tiny_rl_problem()
    stacked = [tf.identity(s) for s in stack_params(theta, 2)]
    kw = dict(baseline="zero", discount=0.9, normalize=False)
    returns = discounted_returns(pre["reward"], 0.9)
    gamma_t = 0.9 ** tf.range(12, dtype=tf.float64)[None]
    scale = tf.math.reduce_std(returns, axis=1, keepdims=True)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(stacked)
        dice = tf.reduce_sum(inner_loss_fn(net, pre["x"], None, pre["raw"], pre["reward"], estimator="dice", **kw)(
            stacked))
        logp = net.distribution(stacked, pre["x"]).log_prob(pre["raw"])
        reference = -tf.reduce_sum(tf.reduce_mean(logp * gamma_t * tf.stop_gradient(returns / scale), axis=1))
    for a, b in zip(tape.gradient(dice, stacked), tape.gradient(reference, stacked), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-10)  # the 1e-8 guard in the scale


def test_first_order_is_second_order_without_the_hessian_term():
    """g_2nd = v − α H_in v and g_1st = v, with v = ∇_θ' L_out(θ') and H_in the inner loss's Hessian at θ."""
    net, theta, pre, post = _tiny_rl_problem()
    lr = 0.3
    _, old_logp, _ = _outer_loss(net, theta, pre, post, "dice")
    grads = {}
    for fo in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            loss, _, adapted = _outer_loss(net, theta, pre, post, "dice", first_order=fo, old_logp=old_logp)
        grads[fo] = tape.gradient(loss, theta)
    # v: gradient w.r.t. the adapted parameters, treated as leaves
    _, _, adapted = _outer_loss(net, theta, pre, post, "dice", old_logp=old_logp)
    adapted = [tf.identity(a) for a in adapted]
    with tf.GradientTape() as tape:
        tape.watch(adapted)
        logp = net.distribution(adapted, post["x"]).log_prob(post["raw"])
        loss = tf.reduce_mean(ppo_outer_loss(logp, old_logp, post["adv"], 0.2))
    v = tape.gradient(loss, adapted)  # [N, ...]
    loss_fn = inner_loss_fn(net, pre["x"], None, pre["raw"], pre["reward"], estimator="dice", baseline="linear",
                            discount=0.9, normalize=True)
    stacked = [tf.identity(s) for s in stack_params(theta, 2)]
    with tf.GradientTape() as outer:
        outer.watch(stacked)
        with tf.GradientTape() as inner:
            inner.watch(stacked)
            lin = tf.reduce_sum(loss_fn(stacked))
        g = inner.gradient(lin, stacked)
        gv = tf.add_n([tf.reduce_sum(a * b) for a, b in zip(g, v, strict=True)])
    hv = outer.gradient(gv, stacked)
    for g1, g2, vi, hvi in zip(grads[True], grads[False], v, hv, strict=True):
        np.testing.assert_allclose(g1, tf.reduce_sum(vi, 0), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(g2, tf.reduce_sum(vi - lr * hvi, 0), rtol=1e-9, atol=1e-12)
    assert max(float(tf.reduce_max(tf.abs(h))) for h in hv) > 1e-3  # the Hessian term is not negligible


def test_heads_gaussian_mask_and_slots():
    nav = PointNavigation()
    g = FunctionalPolicyNet(nav.observation_spec(), nav.action_spec(), (8,))
    params = stack_params(g.init_params(0), 2)
    d = g.distribution(params, tf.zeros([2, 5, 2]))
    assert d.sample().shape == (2, 5, 2) and d.log_prob(d.sample()).shape == (2, 5)
    np.testing.assert_allclose(g.to_env_action(tf.ones([1, 2])), [[0.1, 0.1]], atol=1e-7)
    masked_spec = {"obs": {"x": tensor_spec.TensorSpec((2,), tf.float32),
                           "action_mask": tensor_spec.TensorSpec((4,), tf.float32)}}
    m = FunctionalPolicyNet(masked_spec, tensor_spec.BoundedTensorSpec((), tf.int32, 0, 3), (8,))
    x, mask = m.features({"obs": {"x": tf.ones([2, 2]), "action_mask": tf.constant([[1., 0, 0, 1], [0, 1, 0, 0]])}})
    probs = m.distribution(stack_params(m.init_params(0), 2), x[:, None], mask[:, None]).probs_parameter()
    np.testing.assert_allclose(probs[1, 0], [0, 1, 0, 0], atol=1e-6)
    assert float(probs[0, 0, 1]) < 1e-6 and float(probs[0, 0, 2]) < 1e-6
    slots = FunctionalPolicyNet({"obs": tensor_spec.TensorSpec((3,), tf.float32)},
                                tensor_spec.BoundedTensorSpec((3,), tf.int32, 0, 9), (8,))
    d = slots.distribution(stack_params(slots.init_params(0), 2), tf.zeros([2, 4, 3]))
    assert d.sample().shape == (2, 4, 3) and d.log_prob(d.sample()).shape == (2, 4)


@pytest.mark.parametrize("kwargs, message", [
    ({"inner_lr": -0.5}, r"^MAMLConfig\.inner_lr=-0\.5: must be a positive number$"),
    ({"inner_steps": 0, "first_order": True}, r"^MAMLConfig\.inner_steps=0: must be >= 1 with first_order=True"),
    ({"estimator": "ppo"}, r"^MAMLConfig\.estimator='ppo': must be 'reinforce', 'lvc' or 'dice'$"),
    ({"baseline": "mlp"}, r"^MAMLConfig\.baseline='mlp': must be 'linear' or 'zero'$"),
    ({"discount": 1.5}, r"^MAMLConfig\.discount=1\.5: must be in \[0, 1\]$"),
    ({"outer_epochs": 0}, r"^MAMLConfig\.outer_epochs=0: must be a positive integer$"),
    ({"clip_ratio": 0}, r"^MAMLConfig\.clip_ratio=0: must be a positive number$"),
    ({"init_only": "yes"}, r"^MAMLConfig\.init_only='yes': must be true or false$"),
])
def test_bad_rl_config_is_a_one_line_error(kwargs, message):
    with pytest.raises(MetaRLInputError, match=message):
        MAML(kwargs)


def test_trial_too_short_for_inner_steps_is_a_clear_error():
    dist = PointNavigation(horizon=5, episodes=2)
    with pytest.raises(MetaRLInputError, match=r"inner_steps=2 and post_episodes=1 need trials of at least 3 episodes"):
        MAML(inner_steps=2).meta_train(dist, iterations=1)


def test_config_replace_keeps_validation():
    with pytest.raises(MetaRLInputError):
        dataclasses.replace(MAMLConfig(), inner_lr=-1.0)
