"""RL² with a population prior (``prior: global_mlp``): the frozen scorer reproduces the fitted ``global_mlp``
baseline, the untrained policy's greedy slate is the baseline's, the prior is never trained but is checkpointed
and exported with the policy, and misuse is a clear error."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.algorithms.rl2 import RL2
from metarl_apps.baselines.recsys import GlobalRewardModelBaseline
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import make_task_distribution
from metarl_apps.networks.prior import FrozenScorer
from tests.unit.algorithms.helpers import RL2_TINY as TINY
from tests.unit.algorithms.helpers import play

FIT = {"fit_users": 32, "fit_interactions": 4, "epochs": 2, "hidden": [8]}


@pytest.fixture(scope="module")
def dist():
    return make_task_distribution("recsys.interest_evolution", num_topics=3, num_docs=8, slate_size=3,
                                  interactions=6, corpus_seed=0)


def _observations(dist, tasks, steps):
    """``[steps]`` time steps of random slates on ``tasks`` (clicks and no-clicks, so the context varies)."""
    env, rng = dist.make_env(tasks, seed=0), np.random.default_rng(0)
    out = [env.reset()]
    for _ in range(steps - 1):
        slates = np.stack([rng.permutation(dist.action_spec().maximum.max() + 1)[:3] for _ in tasks])
        out.append(env.step(tf.constant(slates, tf.int32)))
    return out


def test_frozen_scorer_gives_the_global_models_scores(dist):
    pool = dist.sample(40, "train")
    baseline = GlobalRewardModelBaseline(**FIT)
    baseline.fit(dist, pool, seed=0)
    features = dist.observation_spec()["obs"]["doc_features"].shape[-1]
    for wrong in (FrozenScorer(features, (8,), "none"), FrozenScorer(features, (8, 8), "last_click")):
        with pytest.raises(MetaRLInputError, match="fit it with the same hidden and context"):
            wrong.assign_from(baseline._model)
    scorer = FrozenScorer(features, (8,), "last_click")
    scorer.assign_from(baseline._model)
    tasks = dist.sample(6, "test")
    policy = baseline.make_policy(dist, tasks)
    steps = _observations(dist, tasks, 5)
    assert any(float(t.observation["obs"]["choice"][0]) < 3 for t in steps[1:])  # a click reached the context
    for t in steps:
        np.testing.assert_allclose(scorer(t.observation, 1), policy.predict(t), rtol=1e-5, atol=1e-6)
    # [B, T, ...] (unroll) gives the per-step scores
    seq = tf.nest.map_structure(lambda *x: tf.stack(x, axis=1), *[t.observation for t in steps])
    np.testing.assert_allclose(scorer(seq, 2), tf.stack([policy.predict(t) for t in steps], 1), rtol=1e-5, atol=1e-6)
    z = scorer.standardized(seq, 2).numpy()
    np.testing.assert_allclose(z.mean(-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(z.std(-1), 1.0, atol=1e-3)
    assert (np.argsort(z, -1) == np.argsort(scorer(seq, 2).numpy(), -1)).all()


@pytest.mark.parametrize("slate", [True, False])
def test_untrained_policy_serves_the_population_slate_and_the_prior_stays_frozen(dist, slate):
    pool = dist.sample(64, "train")
    learner = RL2(**TINY, prior="global_mlp", prior_config=FIT, slate=slate, greedy_eval=True)
    learner._build(dist)
    learner._fit_prior(dist, pool, seed=0)
    head = learner.net._policy_head
    head.kernel.assign(tf.zeros_like(head.kernel))
    head.bias.assign(tf.zeros_like(head.bias))
    tasks = dist.sample(16, "test")
    baseline = GlobalRewardModelBaseline(**FIT)
    baseline.fit(dist, pool, seed=0)
    first = dist.make_env(tasks).reset()
    np.testing.assert_array_equal(np.sort(learner.adapt(tasks, 1).action(first, learner.net.initial_state(16))
                                          .action.numpy(), -1),
                                  np.sort(baseline.make_policy(dist, tasks).action(first).action.numpy(), -1))
    prior_vars = learner.net.prior.trainable_variables
    assert prior_vars == () and learner.net.prior_scale in learner.net.trainable_variables
    before = [v.numpy().copy() for v in learner.net.prior.variables]
    scale = float(learner.net.prior_scale)
    learner.meta_train(dist, pool, iterations=2, seed=0)
    for v, b in zip(learner.net.prior.variables, before, strict=True):
        np.testing.assert_array_equal(v.numpy(), b)
    assert float(learner.net.prior_scale) != scale  # learnt


def test_prior_is_checkpointed_and_exported_with_the_policy(dist, tmp_path, monkeypatch):
    pool = dist.sample(64, "train")
    learner = RL2(**TINY, prior="global_mlp", prior_config=FIT, slate=True, greedy_eval=True)
    learner.meta_train(dist, pool, iterations=2, seed=0, checkpoint_dir=str(tmp_path / "ckpt"))
    restored = RL2(**TINY, prior="global_mlp", prior_config=FIT, slate=True, greedy_eval=True)
    restored._restore(str(tmp_path / "ckpt"), dist)  # no refit: the weights come from the checkpoint
    for a, b in zip(learner.net.prior.variables, restored.net.prior.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.abs(restored.net.prior.kernels[0].numpy()).sum() > 0
    # --resume restores the fitted prior from the checkpoint instead of fitting the baseline again
    resumed = RL2(**TINY, prior="global_mlp", prior_config=FIT, slate=True, greedy_eval=True)
    monkeypatch.setattr(GlobalRewardModelBaseline, "fit", lambda *a, **k: pytest.fail("the prior was refitted"))
    resumed.meta_train(dist, pool, iterations=3, seed=0, checkpoint_dir=str(tmp_path / "ckpt"), resume=True)
    for a, b in zip(learner.net.prior.variables, resumed.net.prior.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    tasks = dist.sample(4, "test")
    policy = learner.adapt(tasks, 4)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    expected = play(policy, dist, tasks, steps=4)[0]
    np.testing.assert_array_equal(play(restored.adapt(tasks, 4), dist, tasks, steps=4)[0], expected)
    np.testing.assert_array_equal(play(loaded, dist, tasks, steps=4)[0], expected)


def test_prior_misuse_is_a_clear_error(dist):
    with pytest.raises(MetaRLInputError, match="prior 'global_mlp' needs a slate family"):
        RL2(**TINY, prior="global_mlp").meta_train(BernoulliBandits(arms=3, pulls=4), iterations=1)
    with pytest.raises(MetaRLInputError, match="prior='popularity': must be 'none' or 'global_mlp'"):
        RL2(prior="popularity")
    with pytest.raises(MetaRLInputError, match="prior_config=.*applies only with prior 'global_mlp'"):
        RL2(prior_config={"epochs": 3})
    with pytest.raises(MetaRLInputError, match="unknown config keys"):
        RL2(**TINY, prior="global_mlp", prior_config={"epoch": 3}).meta_train(dist, dist.sample(16, "train"),
                                                                              iterations=1)
