"""``recsys.interest_evolution``: RecSim NG interest-evolution users, checked against hand-worked numbers."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import random_tf_policy
from tf_agents.trajectories import time_step as ts

from metarl_apps.adapters.recsys import InterestEvolutionUsers
from metarl_apps.adapters.recsys.interest_evolution import FAMILY, best_assortment
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import make_task_distribution
from metarl_apps.evaluation.runner import rollout

from .helpers import mnl_probs, squash, step, users

N = 3000  # identical users with independent draws, for frequencies


def _dist(**kw):
    base = dict(num_topics=3, num_docs=12, slate_size=3, interactions=4, interest_step_size=0.0)
    return InterestEvolutionUsers(**{**base, **kw})


def _logits(interests, features):
    return 2.0 - np.linalg.norm(np.asarray(interests)[None] - features, axis=1)  # RecSim: -||u - f|| + 2


def test_specs_and_trial_structure():
    dist = InterestEvolutionUsers()
    assert (dist.horizon, dist.episodes_per_trial, dist.budget_unit) == (1, 50, "interactions")
    obs = dist.time_step_spec().observation["obs"]
    assert set(obs) == {"doc_features", "choice", "clicked", "consumed"}  # never the latent interests
    assert obs["doc_features"].shape == (30, 6) and obs["doc_features"].dtype == tf.float32
    assert obs["choice"].shape == () and obs["choice"].dtype == tf.int32 and obs["choice"].maximum == 3
    assert obs["clicked"].shape == () and obs["clicked"].dtype == tf.int32 and obs["clicked"].maximum == 30
    assert obs["consumed"].shape == () and obs["consumed"].dtype == tf.float32
    a = dist.action_spec()
    assert (a.shape, a.dtype, int(a.minimum), int(a.maximum)) == ((3,), tf.int32, 0, 29)
    assert set(dist.sample(2)[0].params) == {"interests"}


def test_observation_reveals_documents_not_interests():
    dist = _dist()
    env = dist.make_env(users(FAMILY, "interests", [3.0, 0.0, 0.0], 1) + users(FAMILY, "interests", [0, 0, -3.0], 1, 9))
    first = env.reset().observation["obs"]
    for leaf in first.values():
        leaf = leaf.numpy()
        np.testing.assert_array_equal(leaf[0], leaf[1])  # two very different users look the same before acting
    expected = np.concatenate([dist.corpus["doc_features"], dist.corpus["doc_quality"][:, None]], axis=1)
    np.testing.assert_array_equal(first["doc_features"].numpy()[0], expected)
    assert first["choice"].numpy().tolist() == [3, 3] and first["consumed"].numpy().tolist() == [0.0, 0.0]
    assert first["clicked"].numpy().tolist() == [dist.num_docs] * 2  # no document chosen yet


def test_clicked_is_the_chosen_documents_index():
    dist = _dist()
    env = dist.make_env(dist.sample(64, split="test", seed=3))
    env.reset()
    rng = np.random.default_rng(0)
    seen_click = seen_none = False
    n = dist.num_docs
    for _ in range(10):
        slate = np.stack([rng.choice(n, 3, replace=False) for _ in range(64)]).astype(np.int32)
        obs = env.step(tf.constant(slate)).observation["obs"]
        choice, clicked = obs["choice"].numpy(), obs["clicked"].numpy()
        for row in range(64):
            if choice[row] < 3:
                assert clicked[row] == slate[row, choice[row]]
                seen_click = True
            else:
                assert clicked[row] == n
                seen_none = True
    assert seen_click and seen_none


def test_task_interests_are_recsims_initial_user_state():
    dist = _dist()
    tasks = dist.sample(3, split="test", seed=1)
    env = dist.make_env(tasks)
    env.reset()
    step(env, [0, 1, 2])
    initial = np.stack([t.params["interests"] for t in tasks])
    np.testing.assert_allclose(env.user_state["interest.state"].numpy(), initial)


def test_user_favouring_topic_0_chooses_it_with_the_mnl_probabilities():
    dist = _dist()
    docs, topics = dist.corpus["doc_features"], dist.corpus["doc_topic"]
    # per topic, its most typical document (features nearest the topic's one-hot; RecSim's are noisy)
    slate = [int(min(np.flatnonzero(topics == k), key=lambda d: np.linalg.norm(docs[d] - np.eye(3)[k])))
             for k in (0, 1, 2)]
    env = dist.make_env(users(FAMILY, "interests", [1.0, 0.0, 0.0], N))
    env.reset()
    choice = step(env, slate).observation["obs"]["choice"].numpy()
    freq = np.bincount(choice, minlength=4) / N
    probs = mnl_probs(_logits([1.0, 0.0, 0.0], docs[slate]), no_click_logit=0.0)
    np.testing.assert_allclose(freq, probs, atol=0.03)
    assert probs[0] > 1.5 * max(probs[1], probs[2]) and freq[0] > 1.5 * max(freq[1], freq[2])


def test_reward_is_consumed_time_of_the_chosen_document():
    dist = _dist()
    env = dist.make_env(dist.sample(200, seed=4))
    env.reset()
    slate = [0, 5, 7]
    t = step(env, slate)
    choice, reward = t.observation["obs"]["choice"].numpy(), t.reward.numpy()
    consumed = 2.0 / (1.0 + np.exp(dist.corpus["doc_quality"][slate]))  # sigmoid(-quality) * length 2
    expected = np.where(choice < 3, np.append(consumed, 0.0)[choice], 0.0)
    np.testing.assert_allclose(reward, expected, rtol=1e-6)
    np.testing.assert_array_equal(t.observation["obs"]["consumed"].numpy(), reward)
    assert 0 < (choice == 3).sum() < 200  # some no-clicks, some clicks


def test_no_click_is_likelier_when_the_slate_is_poor():
    dist = _dist(num_docs=30)
    docs = dist.corpus["doc_features"]
    u = docs[0]
    order = np.argsort(np.linalg.norm(docs - u, axis=1))
    good, poor = order[:3].tolist(), order[-3:].tolist()
    rates = {}
    for name, slate in (("good", good), ("poor", poor)):
        env = dist.make_env(users(FAMILY, "interests", u, N))
        env.reset()
        rates[name] = (step(env, slate).observation["obs"]["choice"].numpy() == 3).mean()
        assert abs(rates[name] - mnl_probs(_logits(u, docs[slate]), 0.0)[-1]) < 0.03
    assert rates["poor"] > rates["good"] + 0.3


@pytest.mark.parametrize("which", ["nutritious", "trashy"])
def test_interests_drift_towards_nutritious_and_away_from_trashy_consumption(which):
    dist = _dist(interest_step_size=0.5)
    q, docs = dist.corpus["doc_quality"], dist.corpus["doc_features"]
    d = int(np.argmax(q) if which == "nutritious" else np.argmin(q))
    u0 = np.array([0.5, -0.5, 0.2], np.float32)
    env = dist.make_env(users(FAMILY, "interests", u0, 300))
    env.reset()
    clicked = step(env, [d, d, d]).observation["obs"]["choice"].numpy() == 0
    step(env, [d, d, d])  # the state of this step is updated from the previous response
    after = env.user_state["interest.state"].numpy()
    # RecSim: after a click u <- squash(u + step * quality * (features - u)); every step squashes.
    moved = squash(u0 + 0.5 * q[d] * (docs[d] - u0))
    np.testing.assert_allclose(after[clicked], np.broadcast_to(moved, after[clicked].shape), rtol=1e-5)
    np.testing.assert_allclose(after[~clicked], np.broadcast_to(squash(u0), after[~clicked].shape), rtol=1e-5)
    closer = np.linalg.norm(moved - docs[d]) < np.linalg.norm(u0 - docs[d])
    assert closer == (which == "nutritious") and clicked.any() and (~clicked).any()


def test_user_state_resets_at_each_trial():
    dist = _dist(interest_step_size=0.5, interactions=3)
    tasks = dist.sample(5, seed=2)
    env = dist.make_env(tasks)
    env.reset()
    for _ in range(4):  # 3 interactions, then the auto-reset
        t = step(env, [1, 2, 3])
    assert t.step_type.numpy().tolist() == [int(ts.StepType.FIRST)] * 5
    step(env, [1, 2, 3])
    initial = np.stack([t.params["interests"] for t in tasks])
    np.testing.assert_allclose(env.user_state["interest.state"].numpy(), initial)


def test_same_seed_same_trajectory_and_env_seed_matters():
    dist = _dist(interest_step_size=0.2, interest_noise=0.1)
    tasks = dist.sample(20, seed=5)
    slates = np.random.default_rng(0).integers(0, 12, size=(6, 20, 3))

    def run(seed):
        env = dist.make_env(tasks, seed=seed)
        env.reset()
        return np.stack([env.step(tf.constant(s, tf.int32)).reward.numpy() for s in slates])

    np.testing.assert_array_equal(run(0), run(0))
    assert not np.array_equal(run(0), run(1))


def test_set_tasks_swaps_users_without_rebuilding():
    dist = _dist(interest_step_size=0.2)
    a, b = dist.sample(8, seed=0), dist.sample(8, seed=1)
    env = dist.make_env(a)
    assert env.supports_set_tasks
    fresh = dist.make_env(b)
    env.set_tasks(b)
    env.reset(), fresh.reset()
    for slate in ([0, 1, 2], [3, 4, 5], [0, 0, 9]):
        np.testing.assert_array_equal(step(env, slate).reward.numpy(), step(fresh, slate).reward.numpy())


def test_best_assortment_matches_brute_force():
    rng = np.random.default_rng(0)
    d, k = 7, 3
    w = np.exp(rng.normal(size=(50, d))).astype(np.float32)
    r = rng.uniform(0.2, 2.0, size=(50, d)).astype(np.float32)
    w0 = np.exp(rng.normal(size=50)).astype(np.float32)
    slates = best_assortment(tf.constant(w), tf.constant(r), tf.constant(w0), k).numpy()

    def value(i, s):
        s = sorted(set(s))
        return (w[i, s] * r[i, s]).sum() / (w0[i] + w[i, s].sum())

    for i in range(50):
        best = max(value(i, s) for m in range(1, k + 1) for s in itertools.combinations(range(d), m))
        assert value(i, slates[i]) >= best - 1e-5


def test_oracle_tracks_the_drifting_interests_exactly():
    dist = _dist(interest_step_size=0.5, interactions=6)
    tasks = dist.sample(50, seed=3)
    env, oracle = dist.make_env(tasks), dist.oracle_policy(tasks)
    t, state = env.reset(), oracle.get_initial_state(50)
    for _ in range(6):
        act = oracle.action(t, state)
        t, state = env.step(act.action), act.state
        np.testing.assert_allclose(state["interests"].numpy(), env.user_state["interest.state"].numpy(), atol=1e-5)


def test_random_policy_runs_and_oracle_beats_it():
    dist = InterestEvolutionUsers(interactions=10)
    tasks = dist.sample(300, split="test")
    random = random_tf_policy.RandomTFPolicy(dist.time_step_spec(), dist.action_spec())
    r_random, _ = rollout(random, dist.make_env(tasks), 10)
    r_oracle, _ = rollout(dist.oracle_policy(tasks), dist.make_env(tasks), 10)
    assert r_random.shape == (300, 10) and np.isfinite(r_random).all() and r_random.min() >= 0.0
    assert r_oracle.sum(1).mean() > 1.2 * r_random.sum(1).mean()


def test_thousands_of_users_in_one_compiled_rollout():
    dist = InterestEvolutionUsers(interactions=5)
    env = dist.make_env(dist.sample(2000))
    rewards, episode = rollout(random_tf_policy.RandomTFPolicy(dist.time_step_spec(), dist.action_spec()), env, 5)
    assert rewards.shape == (2000, 5) and episode[:, -1].tolist() == [4] * 2000
    assert 0.3 < rewards.mean() < 1.2


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(slate_size=31), "parameter slate_size=31 must be at most num_docs=30"),
        (dict(num_topics=0), "parameter num_topics=0 must be a positive integer"),
        (dict(num_docs=2.5), "parameter num_docs=2.5 must be a positive integer"),
        (dict(interactions=0), "parameter interactions=0 must be a positive integer"),
        (dict(interest_step_size=-0.1), "parameter interest_step_size=-0.1 must be a finite number >= 0"),
        (dict(interest_noise=float("inf")), "parameter interest_noise=inf must be a finite number >= 0"),
        (dict(no_click_mass="high"), "parameter no_click_mass='high' must be a finite number"),
        (dict(corpus_seed=-1), "parameter corpus_seed=-1 must be a non-negative integer"),
    ],
)
def test_bad_parameters_are_one_line_errors_naming_the_field(params, match):
    with pytest.raises(MetaRLInputError, match=f"^recsys.interest_evolution: {match}") as err:
        make_task_distribution(FAMILY, **params)
    assert "\n" not in str(err.value)


def test_unknown_parameter_is_refused():
    with pytest.raises(MetaRLInputError, match="bad parameters.*horizon"):
        make_task_distribution(FAMILY, horizon=5)
