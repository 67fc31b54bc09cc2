"""The MAML learner: meta-trains and adapts on every family kind, checkpoints/resumes, exports with PolicySaver."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.navigation import PointNavigation
from metarl_apps.algorithms.maml.learner import MAML
from metarl_apps.algorithms.maml.policy import MAMLPolicy
from metarl_apps.core.registry import ALGORITHMS, make_task_distribution
from tests.unit.algorithms.helpers import check_resume_contract, play

SMALL = dict(hidden_sizes=(8,), meta_batch_size=4, outer_epochs=2)


def test_registered():
    assert ALGORITHMS.get("maml") is MAML


@pytest.mark.parametrize("family, params, config", [
    pytest.param("nav.point2d", {"horizon": 5, "episodes": 3}, {}, marks=pytest.mark.slow),
    ("bandits.bernoulli", {"arms": 3, "pulls": 4}, {"baseline": "zero", "normalize_advantages": False}),
    pytest.param("mdp.tabular", {"states": 3, "actions": 2, "horizon": 4, "episodes": 3}, {"first_order": True},
                 marks=pytest.mark.slow),
    pytest.param("recsys.interest_evolution", {"num_topics": 3, "num_docs": 6, "slate_size": 2, "interactions": 3,
                                               "corpus_seed": 0}, {"baseline": "zero", "normalize_advantages": False},
                 marks=pytest.mark.slow),
    pytest.param("games.rps", {}, {}, marks=pytest.mark.slow),  # discrete actions with obs["action_mask"]
])
def test_meta_train_and_adapt_on_each_family_kind(family, params, config):
    dist = make_task_distribution(family, **params)
    learner = MAML(**SMALL, **config)
    result = learner.meta_train(dist, dist.sample(8, "train"), iterations=2)
    assert result.iterations == 2 and np.isfinite(result.metrics["outer_loss"])
    curve = learner.evaluate(dist, dist.sample(6, "test"), [1, 2])
    assert curve.values.shape == (1, 6, 2) and np.all(np.isfinite(curve.values))


@pytest.mark.slow
def test_learned_rates_pretraining_and_init_only():
    dist = PointNavigation(horizon=5, episodes=2)
    sgd = MAML(**SMALL, learn_inner_lr=True)
    sgd.meta_train(dist, iterations=2)
    assert any(not np.allclose(lr.numpy(), 0.01) for lr in sgd.lrs)  # the rates are meta-trained
    pre = MAML(**SMALL, inner_steps=0)
    assert "pre_return" not in pre.meta_train(dist, iterations=2).metrics
    frozen = MAML(**SMALL, init_only=True)
    assert frozen.meta_train(dist, iterations=5).iterations == 0
    fresh = MAML(**SMALL)
    fresh._build(dist)
    for a, b in zip(frozen.params, fresh.params, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_checkpoint_resume_and_restore(tmp_path):
    """Resumed = uninterrupted for a fixed seed (meta-parameters, learned rates and outer optimizer state all
    checkpointed), refusal to overwrite, restore, clear errors for a missing or mismatched checkpoint."""
    dist = PointNavigation(horizon=5, episodes=2)
    check_resume_contract(lambda **kw: MAML(**{**SMALL, "learn_inner_lr": True, **kw}), "MAML", dist,
                          dist.sample(16, "train"), tmp_path, state=lambda learner: [*learner.params, *learner.lrs],
                          mismatch={"hidden_sizes": (5,)})


def test_policy_saver_round_trip_gives_the_same_actions(tmp_path):
    # categorical (a Gaussian's mode has zero score, so greedy acting would never move its mean)
    dist = BernoulliBandits(arms=3, pulls=3)
    learner = MAML(**SMALL, baseline="zero", normalize_advantages=False, init_only=True)
    learner.meta_train(dist, iterations=1)
    tasks = dist.sample(8, "test")
    policy = MAMLPolicy(learner.net, learner.params, 1.0, dist.time_step_spec(), dist.action_spec(),
                        horizon=dist.horizon, budget=2, estimator="reinforce", baseline="zero", discount=1.0,
                        normalize=False, greedy=True)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))

    ours, s1 = play(policy, dist, tasks)
    theirs, s2 = play(loaded, dist, tasks)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert int(s1["steps"][0]) == 2 and int(s2["steps"][0]) == 2  # two inner steps were taken, in both
    np.testing.assert_allclose(s1["offset"][1], s2["offset"][1], atol=1e-6)
    assert np.abs(s2["offset"][1]).max() > 0  # the exported policy carries adapted per-task weights


def test_budget_counts_inner_steps_one_per_episode():
    """Budget K: one inner step after each of the first K inner episodes, never more, never before the first
    episode ends; the policy keeps acting (with the last adapted weights) for the rest of the trial."""
    dist = BernoulliBandits(arms=3, pulls=6)
    learner = MAML(**SMALL, baseline="zero", normalize_advantages=False, init_only=True)
    learner.meta_train(dist, iterations=1)
    tasks = dist.sample(16, "test")
    for budget, expected in ((1, [0, 1, 1, 1, 1, 1]), (4, [0, 1, 2, 3, 4, 4])):
        policy = learner.adapt(tasks, budget)
        env = dist.make_env(tasks)
        time_step, state, steps = env.reset(), policy.get_initial_state(16), []
        for _ in range(6):
            step = policy.action(time_step, state)
            steps.append(int(step.state["steps"][0]))
            time_step, state = env.step(step.action), step.state
        assert steps == expected
