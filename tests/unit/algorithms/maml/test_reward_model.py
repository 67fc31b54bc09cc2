"""MAML's reward-model objective (MeLU-style): hand-computed loss and inner step, greedy serving, clear errors,
meta-training on discrete and slate families, PolicySaver round trip."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver
from tf_agents.specs import tensor_spec

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.navigation import PointNavigation
from metarl_apps.algorithms.maml.learner import MAML
from metarl_apps.algorithms.maml.losses import inner_update
from metarl_apps.algorithms.maml.policy import FunctionalPolicyNet, reward_model_loss_fn
from metarl_apps.core.env import trial_time_step_spec
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import make_task_distribution
from tests.unit.algorithms.helpers import play

SMALL = dict(hidden_sizes=(8,), meta_batch_size=4, outer_epochs=2, objective="reward_model")


def _linear_net(action_spec):
    """A linear reward model over a 2-feature observation whose weights are zero: scores = the bias."""
    obs = tensor_spec.TensorSpec((2,), tf.float32, name="obs")
    spec = trial_time_step_spec(obs, action_spec).observation
    return FunctionalPolicyNet(spec, action_spec, hidden_sizes=(), reward_model=True)


SLATE = tensor_spec.BoundedTensorSpec((2,), tf.int32, minimum=0, maximum=3, name="action")
DISCRETE = tensor_spec.BoundedTensorSpec((), tf.int32, minimum=0, maximum=3, name="action")


def test_loss_and_inner_step_match_the_hand_computation():
    net = _linear_net(SLATE)
    bias = tf.constant([[1.0, 2.0, 3.0, 4.0]])  # one task; scores of items 0..3
    params = [tf.zeros([1, net.input_size, 4]), bias]
    x = tf.ones([1, 1, net.input_size])  # one step
    raw = tf.constant([[[0, 1]]])  # served items 0 and 1: predicted (1 + 2) / 2 = 1.5
    reward = tf.constant([[10.0]])
    loss = reward_model_loss_fn(net, x, raw, reward)
    np.testing.assert_allclose(loss(params).numpy(), [(1.5 - 10.0) ** 2])
    # d/db_0 = d/db_1 = 2 (1.5 - 10) / 2 = -8.5; other items untouched; lr 1
    adapted = inner_update(params, loss, 1.0, 1, first_order=True)
    np.testing.assert_allclose(adapted[1].numpy(), [[9.5, 10.5, 3.0, 4.0]])
    # served slate: the top-2 items, best first
    assert net.serve(net.scores(params, x))[0, 0].numpy().tolist() == [3, 2]
    assert net.serve(net.scores(adapted, x))[0, 0].numpy().tolist() == [1, 0]


def test_slate_item_feedback_targets_the_chosen_item_and_zeros_the_others():
    net = _linear_net(SLATE)
    params = [tf.zeros([1, net.input_size, 4]), tf.constant([[1.0, 2.0, 3.0, 4.0]])]
    x = tf.ones([1, 2, net.input_size])  # two steps
    raw = tf.constant([[[0, 1], [2, 3]]])
    reward = tf.constant([[10.0, 5.0]])
    choice = tf.constant([[1, 2]])  # step 1: item 1 chosen; step 2: no choice (k = 2)
    loss = reward_model_loss_fn(net, x, raw, reward, choice)
    # step 1: (1 - 0)^2 + (2 - 10)^2; step 2: 3^2 + 4^2; mean over 2 steps x 2 items
    np.testing.assert_allclose(loss(params).numpy(), [(1.0 + 64.0 + 9.0 + 16.0) / 4])


def test_discrete_actions_predict_the_taken_action_and_respect_the_mask():
    net = _linear_net(DISCRETE)
    params = [tf.zeros([1, net.input_size, 4]), tf.constant([[1.0, 2.0, 3.0, 4.0]])]
    x = tf.ones([1, 1, net.input_size])
    np.testing.assert_allclose(reward_model_loss_fn(net, x, tf.constant([[2]]), tf.constant([[1.0]]))(params),
                               [(3.0 - 1.0) ** 2])
    scores = net.scores(params, x)[:, 0]
    assert int(net.serve(scores)[0]) == 3
    assert int(net.serve(scores, tf.constant([[1.0, 1.0, 0.0, 0.0]]))[0]) == 1  # best allowed action


def test_continuous_actions_are_a_clear_error():
    dist = PointNavigation(horizon=3, episodes=2)
    with pytest.raises(MetaRLInputError, match="objective 'reward_model' needs discrete actions or slates"):
        MAML(**SMALL).meta_train(dist, iterations=1)


@pytest.mark.parametrize("family, params", [
    ("bandits.bernoulli", {"arms": 3, "pulls": 4}),
    ("recsys.interest_evolution", {"num_topics": 3, "num_docs": 6, "slate_size": 2, "interactions": 4,
                                   "corpus_seed": 0}),
])
def test_meta_trains_and_serves_distinct_slates(family, params):
    dist = make_task_distribution(family, **params)
    learner = MAML(**SMALL, learn_inner_lr=True)
    result = learner.meta_train(dist, dist.sample(8, "train"), iterations=3)
    assert np.isfinite(result.metrics["outer_loss"])
    assert any(not np.allclose(lr.numpy(), 0.01) for lr in learner.lrs)  # rates meta-trained on the regression
    tasks = dist.sample(6, "test")
    actions, state = play(learner.adapt(tasks, 2), dist, tasks)
    if actions.ndim == 3:
        assert all(len(set(row)) == row.size for row in actions.reshape(-1, actions.shape[-1]))  # top-k: distinct
    assert int(state["steps"][0]) == 2 and np.abs(state["offset"][-1].numpy()).max() > 0
    assert learner.net.item_feedback == (family == "recsys.interest_evolution")  # slates with obs["choice"]


def test_policy_saver_round_trip(tmp_path):
    dist = BernoulliBandits(arms=3, pulls=3)
    learner = MAML(**SMALL, init_only=True)
    learner.meta_train(dist, iterations=1)
    tasks = dist.sample(8, "test")
    policy = learner.adapt(tasks, 2)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))

    ours, s1 = play(policy, dist, tasks)
    theirs, s2 = play(loaded, dist, tasks)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(s1["offset"][1], s2["offset"][1], atol=1e-6)
    assert np.abs(s2["offset"][1]).max() > 0


def test_post_episodes_lengthen_the_query_set_within_the_trial():
    dist = make_task_distribution("recsys.interest_evolution", num_topics=3, num_docs=6, slate_size=2,
                                  interactions=4, corpus_seed=0)
    learner = MAML(**{**SMALL, "inner_steps": 1, "post_episodes": 3})
    learner.meta_train(dist, dist.sample(8, "train"), iterations=1)
    env = dist.make_env(dist.sample(4, "train"))
    pre, post = learner._collect(env, tf.random.Generator.from_seed(0))
    assert len(pre) == 1 and post["reward"].shape == (4, 3) and post["choice"].shape == (4, 3)
    with pytest.raises(MetaRLInputError, match=r"inner_steps=2 and post_episodes=3 need trials of at least 5"):
        MAML(**{**SMALL, "inner_steps": 2, "post_episodes": 3}).meta_train(dist, iterations=1)


# ------------------------------------------------------------------ item-feature scoring
RECSYS = dict(num_topics=3, num_docs=6, slate_size=2, interactions=4, corpus_seed=0)


def _item_net(hidden=()):
    dist = make_task_distribution("recsys.interest_evolution", **RECSYS)
    net = FunctionalPolicyNet(dist.observation_spec(), dist.action_spec(), hidden_sizes=hidden, reward_model=True,
                              scoring="item_features")
    return dist, net


def test_item_inputs_hold_each_documents_features_and_the_last_clicked_documents():
    dist, net = _item_net()
    docs = dist.doc_feature_matrix  # [6, 4]
    env = dist.make_env(dist.sample(3, "test"))
    time_step = env.reset()
    x, _ = net.features(time_step.observation)
    f = docs.shape[1]
    # per item: its features, the clicked document's features and flag, choice one-hot (3), consumed
    assert x.shape == (3, 6, f + f + 1 + 3 + 1) and net.input_shape == (6, 2 * f + 5)
    np.testing.assert_allclose(x[0, :, :f], docs)
    np.testing.assert_allclose(x[:, :, f:2 * f + 1], 0.0)  # first step: nothing clicked yet
    for _ in range(3):  # the context row is the same for every item and names the clicked document
        time_step = env.step(tf.constant([[0, 1], [2, 3], [4, 5]]))
        x, _ = net.features(time_step.observation)
        clicked = time_step.observation["obs"]["clicked"].numpy()
        for row in range(3):
            ctx = x[row, :, f:].numpy()
            np.testing.assert_allclose(ctx, np.broadcast_to(ctx[0], ctx.shape))
            want = np.append(docs[clicked[row]], 1.0) if clicked[row] < 6 else np.zeros(f + 1)
            np.testing.assert_allclose(ctx[0, :f + 1], want, atol=1e-6)


def test_item_scoring_is_one_shared_function_and_an_inner_step_moves_unserved_items():
    dist, net = _item_net()
    env = dist.make_env(dist.sample(1, "test"))
    x, _ = net.features(env.reset().observation)
    x = x[None]  # [N=1, M=1, I, D]
    params = [tf.Variable(p) for p in net.init_params(0)]
    w, b = params[0].numpy(), params[1].numpy()
    stacked = [p[None] for p in params]
    scores = net.scores(stacked, x)
    np.testing.assert_allclose(scores[0, 0], x[0, 0].numpy() @ w[:, 0] + b[0], rtol=1e-5, atol=1e-6)  # linear
    # one inner step on a served slate of items 0 and 1 (item 0 chosen, reward 1): unlike one output per item
    # id, the shared weights move the scores of the unserved items 2..5 too
    loss = reward_model_loss_fn(net, x, tf.constant([[[0, 1]]]), tf.constant([[1.0]]), tf.constant([[0]]))
    adapted = inner_update(stacked, loss, 0.5, 1, first_order=True)
    moved = np.abs(net.scores(adapted, x).numpy() - scores.numpy())[0, 0]
    assert (moved[2:] > 1e-4).all()
    per_item = FunctionalPolicyNet(dist.observation_spec(), dist.action_spec(), hidden_sizes=(), reward_model=True)
    xp, _ = per_item.features(env.reset().observation)
    p_stacked = [p[None] for p in per_item.init_params(0)]
    p_loss = reward_model_loss_fn(per_item, xp[None], tf.constant([[[0, 1]]]), tf.constant([[1.0]]),
                                  tf.constant([[0]]))
    p_adapted = inner_update(p_stacked, p_loss, 0.5, 1, first_order=True)
    p_moved = np.abs(per_item.scores(p_adapted, xp[None]).numpy() - per_item.scores(p_stacked, xp[None]).numpy())[0, 0]
    np.testing.assert_allclose(p_moved[2:], 0.0, atol=1e-7)


def test_item_scoring_meta_trains_adapts_and_survives_policy_saver(tmp_path):
    dist = make_task_distribution("recsys.interest_evolution", **RECSYS)
    learner = MAML(**SMALL, scoring="item_features", learn_inner_lr=True, post_episodes=2)
    result = learner.meta_train(dist, dist.sample(8, "train"), iterations=3)
    assert np.isfinite(result.metrics["outer_loss"])
    tasks = dist.sample(5, "test")
    policy = learner.adapt(tasks, 2)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    ours, s1 = play(policy, dist, tasks, steps=4)
    theirs, s2 = play(loaded, dist, tasks, steps=4)
    np.testing.assert_array_equal(ours, theirs)
    assert all(len(set(row)) == row.size for row in ours.reshape(-1, 2))  # top-k: distinct items
    assert int(s2["steps"][0]) == 2 and np.abs(s2["offset"][0]).max() > 0
    np.testing.assert_allclose(s1["offset"][0], s2["offset"][0], atol=1e-5)


def test_item_scoring_errors_name_the_fix():
    with pytest.raises(MetaRLInputError, match="scoring=.*'item_features' scores items for a reward model"):
        MAML(hidden_sizes=(8,), scoring="item_features")
    with pytest.raises(MetaRLInputError, match="scoring=.*must be 'per_item' or 'item_features'"):
        MAML(**SMALL, scoring="features")
    dist = BernoulliBandits(arms=3, pulls=4)
    with pytest.raises(MetaRLInputError, match=r"needs obs\['doc_features'\] of shape \[num_items=3, F\]"):
        MAML(**SMALL, scoring="item_features").meta_train(dist, iterations=1)
