"""``recsys.latent_factor``: RecSim NG static-intent users with satisfaction, checked by hand."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import random_tf_policy

from metarl_apps.adapters.recsys import LatentFactorUsers
from metarl_apps.adapters.recsys.latent_factor import FAMILY
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import make_task_distribution
from metarl_apps.evaluation.runner import rollout

from .helpers import mnl_probs, step, users

N = 3000


def _dist(**kw):
    return LatentFactorUsers(**{**dict(num_topics=3, num_docs=10, slate_size=3, interactions=5), **kw})


def test_specs_and_params():
    dist = LatentFactorUsers()
    assert (dist.horizon, dist.episodes_per_trial, dist.budget_unit) == (1, 50, "interactions")
    obs = dist.time_step_spec().observation["obs"]
    assert set(obs) == {"doc_features", "choice", "clicked", "consumed"}  # never the latent intent
    assert obs["doc_features"].shape == (30, 6) and obs["choice"].dtype == tf.int32
    assert dist.action_spec().shape == (3,) and int(dist.action_spec().maximum) == 29
    tasks = dist.sample(200, seed=1)
    assert set(tasks[0].params) == {"intent"}
    # RecSim's GMM prior: one topic's one-hot plus N(0, 0.1 I): the largest coordinate is near 1.
    intents = np.stack([t.params["intent"] for t in tasks])
    assert abs(intents.max(1).mean() - 1.0) < 0.15 and np.bincount(intents.argmax(1), minlength=5).min() > 20


def test_intent_is_static_and_is_the_task_param():
    dist = _dist()
    tasks = dist.sample(4, seed=2)
    env = dist.make_env(tasks)
    env.reset()
    for slate in ([0, 1, 2], [3, 4, 5], [6, 7, 8]):
        step(env, slate)
        np.testing.assert_allclose(env.user_state["intent"].numpy(), np.stack([t.params["intent"] for t in tasks]))


def test_click_probability_by_hand_and_reward_is_the_click():
    dist = _dist()
    docs = dist.corpus["doc_features"]
    intent = np.array([1.0, 0.0, 0.0], np.float32)
    env = dist.make_env(users(FAMILY, "intent", intent, N))
    env.reset()
    slate = [0, 4, 7]
    t = step(env, slate)
    choice, reward = t.observation["obs"]["choice"].numpy(), t.reward.numpy()
    np.testing.assert_array_equal(reward, (choice < 3).astype(np.float32))
    np.testing.assert_array_equal(t.observation["obs"]["consumed"].numpy(), reward)
    # first slate: satisfaction 0, logits intent . features + 2, no-click logit 4
    probs = mnl_probs(docs[slate] @ intent + 2.0, 4.0)
    np.testing.assert_allclose(np.bincount(choice, minlength=4) / N, probs, atol=0.03)


def test_satisfaction_follows_recsims_update():
    dist = _dist()
    docs = dist.corpus["doc_features"]
    intent = np.array([0.0, 1.0, 0.0], np.float32)
    env = dist.make_env(users(FAMILY, "intent", intent, 500))
    env.reset()
    slate1, slate2 = [0, 1, 2], [3, 4, 5]
    step(env, slate1)
    step(env, slate2)  # state of step 2 = next_state(state 1, slate 1)
    best1 = (docs[slate1] @ intent).max() + 2.0
    state = env.user_state
    np.testing.assert_allclose(state["max_slate_utility"].numpy(), best1, rtol=1e-5)
    sat = state["satisfaction"].numpy()  # 0.8 * 0 + (best1 - 0) + N(0, 0.01^2)
    assert abs(sat.mean() - best1) < 0.003 and abs(sat.std() - 0.01) < 0.003
    step(env, slate1)
    best2 = (docs[slate2] @ intent).max() + 2.0
    np.testing.assert_allclose(env.user_state["satisfaction"].numpy(), 0.8 * sat + (best2 - best1), atol=0.05)


def test_oracle_serves_the_click_maximising_slate():
    dist = _dist(num_docs=8)
    docs = dist.corpus["doc_features"]
    tasks = dist.sample(20, seed=3)
    oracle = dist.oracle_policy(tasks)
    env = dist.make_env(tasks)
    slates = oracle.action(env.reset()).action.numpy()
    for task, slate in zip(tasks, slates, strict=True):
        a = np.exp(docs @ task.params["intent"])
        best = max(a[list(s)].sum() for s in itertools.combinations(range(8), 3))
        assert len(set(slate.tolist())) == 3 and a[slate].sum() == pytest.approx(best, rel=1e-5)


def test_random_policy_runs_and_oracle_beats_it():
    dist = LatentFactorUsers(interactions=10)
    tasks = dist.sample(300, split="test")
    random = random_tf_policy.RandomTFPolicy(dist.time_step_spec(), dist.action_spec())
    r_random, _ = rollout(random, dist.make_env(tasks), 10)
    r_oracle, _ = rollout(dist.oracle_policy(tasks), dist.make_env(tasks), 10)
    assert set(np.unique(r_random).tolist()) <= {0.0, 1.0}
    assert r_oracle.sum(1).mean() > 1.2 * r_random.sum(1).mean()


def test_thousands_of_users_in_one_compiled_rollout():
    dist = LatentFactorUsers(interactions=5, affinity="negative_euclidean", no_click_logit=2.0)
    env = dist.make_env(dist.sample(2000))
    rewards, _ = rollout(random_tf_policy.RandomTFPolicy(dist.time_step_spec(), dist.action_spec()), env, 5)
    assert rewards.shape == (2000, 5) and 0.1 < rewards.mean() < 0.9


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(affinity="cosine"), r"parameter affinity='cosine' must be one of \['dot', 'negative_euclidean'\]"),
        (dict(intent_variance=0.0), "parameter intent_variance=0.0 must be a finite number > 0"),
        (dict(satisfaction_sensitivity=-1), "parameter satisfaction_sensitivity=-1 must be a finite number >= 0"),
        (dict(no_click_logit=float("nan")), "parameter no_click_logit=nan must be a finite number"),
        (dict(initial_satisfaction=None), "parameter initial_satisfaction=None must be a finite number"),
        (dict(num_docs=2), "parameter slate_size=3 must be at most num_docs=2"),
    ],
)
def test_bad_parameters_are_one_line_errors_naming_the_field(params, match):
    with pytest.raises(MetaRLInputError, match=f"^recsys.latent_factor: {match}") as err:
        make_task_distribution(FAMILY, **params)
    assert "\n" not in str(err.value)
