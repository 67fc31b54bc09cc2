"""Hand-worked numbers for RL²'s GAE over a trial and the PPO loss."""

import numpy as np
import pytest
import tensorflow as tf

from metarl_apps.algorithms.rl2.config import RL2Config
from metarl_apps.algorithms.rl2.losses import gae, ppo_loss
from metarl_apps.core.errors import MetaRLInputError


def test_gae_by_hand():
    # T=3, gamma=0.5, lambda=0.5, values 1,2,3, rewards 1,1,1; the trial ends after the last step.
    rewards = tf.constant([[1.0, 1.0, 1.0]])
    values = tf.constant([[1.0, 2.0, 3.0]])
    adv, ret = gae(rewards, values, discount=0.5, lam=0.5)
    d2 = 1.0 - 3.0                      # last step: r - V (no bootstrap)
    d1 = 1.0 + 0.5 * 3.0 - 2.0          # 0.5
    d0 = 1.0 + 0.5 * 2.0 - 1.0          # 1.0
    a2 = d2
    a1 = d1 + 0.25 * a2
    a0 = d0 + 0.25 * a1
    np.testing.assert_allclose(adv.numpy(), [[a0, a1, a2]], rtol=1e-6)
    np.testing.assert_allclose(ret.numpy(), [[a0 + 1, a1 + 2, a2 + 3]], rtol=1e-6)
    # the discount may be a variable (the scheduled one): same numbers, and a new value takes effect in a graph
    discount = tf.Variable(0.5)
    graph_gae = tf.function(lambda: gae(rewards, values, discount, 0.5)[0])
    np.testing.assert_allclose(graph_gae().numpy(), adv.numpy(), rtol=1e-6)
    discount.assign(1.0)
    np.testing.assert_allclose(graph_gae().numpy(), gae(rewards, values, 1.0, 0.5)[0].numpy(), rtol=1e-6)


def test_gae_lambda_one_gamma_one_is_return_to_go_minus_value():
    rewards = tf.constant([[1.0, 0.0, 2.0], [0.0, 0.0, 1.0]])
    values = tf.constant([[0.5, 0.5, 0.5], [0.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, discount=1.0, lam=1.0)
    np.testing.assert_allclose(ret.numpy(), [[3.0, 2.0, 2.0], [1.0, 1.0, 1.0]], rtol=1e-6)


def test_ppo_loss_by_hand():
    new = tf.math.log(tf.constant([[0.6, 0.2]]))
    old = tf.math.log(tf.constant([[0.4, 0.4]]))
    adv = tf.constant([[1.0, -1.0]])
    ent = tf.constant([[1.0, 0.5]])
    values, returns = tf.constant([[1.0, 2.0]]), tf.constant([[0.0, 2.0]])
    total, parts = ppo_loss(new, old, adv, ent, values, returns, clip_ratio=0.2, entropy_coef=0.1,
                            value_coef=0.5)
    # ratios 1.5 (clipped to 1.2 for a positive advantage) and 0.5 (min(0.5*-1, 0.8*-1) = -0.8)
    surrogate = (1.2 * 1.0 + (-0.8)) / 2
    value_loss = 0.5 * (1.0 + 0.0) / 2
    assert parts["policy_loss"].numpy() == pytest.approx(-surrogate, rel=1e-6)
    assert parts["value_loss"].numpy() == pytest.approx(value_loss, rel=1e-6)
    assert parts["clip_fraction"].numpy() == pytest.approx(1.0)
    assert total.numpy() == pytest.approx(-surrogate + 0.5 * value_loss - 0.1 * 0.75, rel=1e-6)


@pytest.mark.parametrize("field, value, match", [
    ("cell", "rnn", "cell='rnn': must be 'lstm', 'gru' or 'set'"),
    ("value_network", "own", "value_network='own': must be 'shared' or 'separate'"),
    ("head_hidden", -1, "head_hidden=-1: must be a non-negative integer"),
    ("hidden_size", 0, "hidden_size=0: must be a positive integer"),
    ("learning_rate", -1e-3, "learning_rate=-0.001: must be a positive number"),
    ("discount", 1.5, "discount=1.5: must be in"),
    ("clip_ratio", -0.1, "clip_ratio=-0.1"),
    ("embed_sizes", [64, 0], "embed_sizes"),
    ("entropy_coef_final", -0.1, "entropy_coef_final=-0.1: must be a non-negative number"),
    ("entropy_anneal_iterations", 100, "entropy_anneal_iterations=100: set it and entropy_coef_final together"),
    ("learning_rate_final", 0.0, "learning_rate_final=0.0: must be a positive number"),
    ("learning_rate_anneal_iterations", 5, "learning_rate_anneal_iterations=5: set it and learning_rate_final"),
    ("anneal_start", -1, "anneal_start=-1: must be a non-negative integer"),
    ("discount_final", 1.5, r"discount_final=1.5: must be in \[0, 1\]"),
    ("discount_anneal_iterations", 5, "discount_anneal_iterations=5: set it and discount_final together"),
    ("select_every", -5, "select_every=-5: must be a non-negative integer"),
    ("select_tasks", 0, "select_tasks=0: must be a positive integer"),
    ("select_budgets", [10, 0], r"select_budgets=\[10, 0\]: must be a non-empty list of positive integers"),
    ("select_budgets", [], "select_budgets=\\[\\]: must be a non-empty list"),
    ("phases", {"start": 5}, "phases=.*: must be a list of mappings"),
    ("phases", [3], "phase 0 must be a mapping"),
    ("phases", [{"start": 5, "clip_ratio": 0.1}], "phase 0: unknown setting\\(s\\) 'clip_ratio'"),
    ("phases", [{"discount": 1.0}], "phase 0: start must be a non-negative integer"),
    ("phases", [{"start": 5}], "phase 0: sets nothing"),
    ("phases", [{"start": 5, "discount": 1.0}, {"start": 5, "gae_lambda": 1.0}],
     "phase 1: start 5 must be greater than the previous phase's \\(5\\)"),
    ("phases", [{"start": 5, "gae_lambda": 1.5}], r"phase 0: gae_lambda=1.5 must be in \[0, 1\] \(and finite\)"),
    ("phases", [{"start": 5, "learning_rate": 0}], r"phase 0: learning_rate=0 must be a positive number"),
    ("phases", [{"start": 5, "entropy_coef": True}], "phase 0: entropy_coef=True must be a non-negative number"),
    ("phases", [{"start": 5, "learning_rate": float("inf")}],
     r"phase 0: learning_rate=inf must be a positive number \(and finite\)"),
])
def test_bad_config_is_a_clear_error(field, value, match):
    with pytest.raises(MetaRLInputError, match=match):
        RL2Config(**{field: value})


def test_separate_value_network_needs_a_recurrent_cell():
    with pytest.raises(MetaRLInputError, match="'separate' needs cell 'lstm' or 'gru'"):
        RL2Config(cell="set", value_network="separate")


def test_phases_override_the_schedules_from_their_starts():
    from metarl_apps.algorithms.rl2 import RL2

    learner = RL2(learning_rate=1e-3, learning_rate_final=1e-4, learning_rate_anneal_iterations=10,
                  discount=0.99, gae_lambda=0.95,
                  phases=[{"start": 20, "discount": 1.0, "gae_lambda": 1.0},
                          {"start": 30, "learning_rate": 5e-4, "gae_lambda": 0.5}])
    assert learner.config.phases == ({"start": 20, "discount": 1.0, "gae_lambda": 1.0},
                                      {"start": 30, "learning_rate": 5e-4, "gae_lambda": 0.5})
    assert [learner.discount_at(i) for i in (0, 19, 20, 30, 99)] == pytest.approx([0.99, 0.99, 1.0, 1.0, 1.0])
    assert [learner.gae_lambda_at(i) for i in (0, 19, 20, 29, 30)] == pytest.approx([0.95, 0.95, 1.0, 1.0, 0.5])
    # the learning-rate schedule holds until a phase names the learning rate
    assert [learner.learning_rate_at(i) for i in (5, 20, 29, 30)] == pytest.approx([5.5e-4, 1e-4, 1e-4, 5e-4])
    assert RL2(phases=None).config.phases == ()


def test_entropy_schedule_is_linear_then_flat():
    from metarl_apps.algorithms.rl2 import RL2

    learner = RL2(entropy_coef=0.1, entropy_coef_final=0.0, entropy_anneal_iterations=10)
    assert [learner.entropy_coef_at(i) for i in (0, 5, 10, 50)] == pytest.approx([0.1, 0.05, 0.0, 0.0])
    assert RL2(entropy_coef=0.03).entropy_coef_at(10_000) == pytest.approx(0.03)
    with pytest.raises(MetaRLInputError, match="set it and entropy_coef_final together"):
        RL2Config(entropy_coef_final=0.0)


def test_schedules_start_at_anneal_start():
    from metarl_apps.algorithms.rl2 import RL2

    learner = RL2(learning_rate=1e-3, learning_rate_final=1e-4, learning_rate_anneal_iterations=10,
                  entropy_coef=0.01, entropy_coef_final=0.0, entropy_anneal_iterations=20, anneal_start=100)
    its = (0, 99, 100, 105, 110, 120, 5000)
    assert [learner.learning_rate_at(i) for i in its] == pytest.approx([1e-3, 1e-3, 1e-3, 5.5e-4, 1e-4, 1e-4, 1e-4])
    assert [learner.entropy_coef_at(i) for i in its] == pytest.approx([0.01, 0.01, 0.01, 0.0075, 0.005, 0.0, 0.0])
    assert RL2(learning_rate=3e-4).learning_rate_at(10_000) == pytest.approx(3e-4)
    rising = RL2(discount=0.9, discount_final=0.99, discount_anneal_iterations=10, anneal_start=100)
    assert [rising.discount_at(i) for i in its] == pytest.approx([0.9, 0.9, 0.9, 0.945, 0.99, 0.99, 0.99])
    assert RL2(discount=0.95).discount_at(10_000) == pytest.approx(0.95)


def test_slate_log_prob_by_hand_and_sampling_gives_distinct_items():
    from metarl_apps.algorithms.rl2.losses import SlateDistribution

    logits = tf.math.log(tf.constant([[0.5, 0.3, 0.2]]))
    dist = SlateDistribution(logits, 2)
    # P([0, 2]) = 0.5 * 0.2 / (0.3 + 0.2) = 0.2 ; P([2, 0]) = 0.2 * 0.5 / 0.8 = 0.125
    np.testing.assert_allclose(np.exp(dist.log_prob(tf.constant([[0, 2]])).numpy()), [0.2], rtol=1e-5)
    np.testing.assert_allclose(np.exp(dist.log_prob(tf.constant([[2, 0]])).numpy()), [0.125], rtol=1e-5)
    # all 6 ordered slates sum to one
    slates = tf.constant([[[a, b] for a in range(3) for b in range(3) if a != b]])
    total = np.exp(SlateDistribution(logits[:, None, :], 2).log_prob(slates).numpy()).sum()
    assert total == pytest.approx(1.0, rel=1e-5)
    draws = SlateDistribution(tf.zeros([4000, 5]), 3).sample(seed=tf.constant([1, 2])).numpy()
    assert all(len(set(row)) == 3 for row in draws)
    first = np.bincount(draws[:, 0], minlength=5) / 4000
    np.testing.assert_allclose(first, 0.2, atol=0.03)  # uniform logits: each item first w.p. 1/5
    counts = SlateDistribution(logits, 2).sample(20000, seed=tf.constant([3, 4])).numpy()[:, 0]
    pair = np.mean((counts[:, 0] == 0) & (counts[:, 1] == 2))
    assert pair == pytest.approx(0.2, abs=0.015)
    assert SlateDistribution(logits, 2).mode().numpy().tolist() == [[0, 1]]
