"""Recsys baselines (random slate, popularity, per-user LinUCB / LinTS, global reward model) on a fake slate
family with linear rewards, plus hand-worked numbers and equivalence with tf-agents' linear bandit agents."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.bandits.agents import lin_ucb_agent, linear_thompson_sampling_agent
from tf_agents.bandits.drivers import driver_utils
from tf_agents.bandits.specs import utils as bandit_spec_utils
from tf_agents.policies import policy_saver
from tf_agents.policies import utils as policy_utilities
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from metarl_apps.baselines import linear, recsys
from metarl_apps.core.env import TrialEnvironment, trial_time_step_spec
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import BASELINES, make_task_distribution
from metarl_apps.core.task import TaskDistribution
from metarl_apps.evaluation.evaluator import cumulative_returns
from metarl_apps.evaluation.stats import mean_ci95

FIRST, MID = int(ts.StepType.FIRST), int(ts.StepType.MID)


# ================================================================== a fake slate family with linear rewards
class LinearSlateUsers(TaskDistribution):
    """Users with hidden weights ``w ~ N(mean, I)``; a slate's chosen document is drawn from a softmax over
    ``beta * w.x`` of its documents plus a no-click option of logit ``no_click``; reward = ``w.x`` of the chosen
    document (0 on no click). The corpus is shared by all users unless ``per_user_corpus``."""

    family = "test.linear_slate"
    budget_unit = "interactions"

    def __init__(self, num_docs=20, num_features=5, slate_size=3, interactions=50, mean=(1.0, 0.5),
                 beta=1.0, no_click=0.0, docs=None, per_user_corpus=False, corpus_seed=0):
        super().__init__(num_docs=num_docs, num_features=num_features, slate_size=slate_size)
        self.num_docs, self.num_features, self.slate_size = num_docs, num_features, slate_size
        self.interactions, self.beta, self.no_click = interactions, beta, no_click
        self.mean = np.zeros(num_features, np.float32)
        self.mean[: len(mean)] = mean
        self.per_user_corpus = per_user_corpus
        if docs is None:
            docs = np.random.default_rng(corpus_seed).normal(0.0, 0.5, (num_docs, num_features))
        self.docs = np.asarray(docs, np.float32)

    @property
    def horizon(self):
        return 1

    @property
    def episodes_per_trial(self):
        return self.interactions

    def _sample_params(self, stream, split):
        params = {"w": (self.mean + stream.normal(size=self.num_features)).astype(np.float32)}
        if self.per_user_corpus:
            params["docs"] = stream.normal(0.0, 0.5, self.docs.shape).astype(np.float32)
        return params

    def action_spec(self):
        return tensor_spec.BoundedTensorSpec((self.slate_size,), tf.int32, 0, self.num_docs - 1, name="slate")

    def obs_spec(self):
        return {"doc_features": tensor_spec.TensorSpec(self.docs.shape, tf.float32, name="doc_features"),
                "choice": tensor_spec.TensorSpec((), tf.int32, name="choice"),
                "consumed": tensor_spec.TensorSpec((), tf.float32, name="consumed")}

    def time_step_spec(self):
        return trial_time_step_spec(self.obs_spec(), self.action_spec())

    def _make_env(self, tasks, seed):
        docs = np.stack([t.params["docs"] if self.per_user_corpus else self.docs for t in tasks])
        return LinearSlateEnv(self, np.stack([t.params["w"] for t in tasks]), docs, [t.seed for t in tasks], seed)


class LinearSlateEnv(TrialEnvironment):
    def __init__(self, dist, weights, docs, task_seeds, seed):
        self._dist = dist
        super().__init__(task_seeds, dist.action_spec(), horizon=1, episodes_per_trial=dist.interactions, seed=seed)
        b, s = len(task_seeds), dist.slate_size
        self._w, self._docs = tf.constant(weights), tf.constant(docs)
        self._choice = tf.Variable(tf.fill([b], s), trainable=False)
        self._consumed = tf.Variable(tf.zeros([b]), trainable=False)

    def _task_observation_spec(self):
        return self._dist.obs_spec()

    def _obs(self):
        return {"doc_features": tf.identity(self._docs), "choice": tf.identity(self._choice),
                "consumed": tf.identity(self._consumed)}

    def _begin_episode(self, counter):
        start = tf.equal(self._t, 0)  # a trial start; otherwise the last response stays visible
        self._choice.assign(tf.where(start, tf.fill([self.batch_size], self._dist.slate_size), self._choice))
        self._consumed.assign(tf.where(start, tf.zeros([self.batch_size]), self._consumed))
        return self._obs()

    def _transition(self, action, h, counter):
        s = self._dist.slate_size
        x = tf.gather(self._docs, action, batch_dims=1)  # [B, S, F]
        value = tf.einsum("bsf,bf->bs", x, self._w)
        logits = tf.concat([self._dist.beta * value, tf.fill([self.batch_size, 1], self._dist.no_click)], 1)
        u = tf.clip_by_value(self.uniform(counter, s + 1), 1e-7, 1.0 - 1e-7)
        choice = tf.argmax(logits - tf.math.log(-tf.math.log(u)), axis=-1, output_type=tf.int32)
        reward = tf.where(choice < s, tf.gather(value, tf.minimum(choice, s - 1), batch_dims=1), 0.0)
        self._choice.assign(choice)
        self._consumed.assign(tf.maximum(reward, 0.0))
        return reward, self._obs()


def slate_step(step_type, docs, choice, reward, prev_action):
    """A hand-made batched TimeStep of the slate contract (one entry per row)."""
    reward = tf.constant(reward, tf.float32)
    n = len(step_type)
    obs = {"doc_features": tf.constant(docs, tf.float32), "choice": tf.constant(choice, tf.int32),
           "consumed": tf.maximum(reward, 0.0)}
    observation = {"obs": obs, "prev_action": tf.constant(prev_action, tf.int32), "prev_reward": reward,
                   "new_episode": tf.ones([n])}
    return ts.TimeStep(tf.constant(step_type, tf.int32), reward, tf.ones([n]), observation)


def run_totals(baseline, dist, tasks, budget=50, seed=0):
    values = cumulative_returns(lambda chunk, *_: baseline.make_policy(dist, chunk, seed), dist, tasks, [budget])
    return values[:, 0]


def assert_better(a, b):
    """``a`` beats ``b`` on the same users (paired): the 95% CI of the difference excludes 0."""
    mean, ci = mean_ci95(np.asarray(a) - np.asarray(b))
    assert mean - ci > 0, (mean, ci)


@pytest.fixture(scope="module")
def dist():
    return LinearSlateUsers()


@pytest.fixture(scope="module")
def users(dist):
    return dist.sample(300, split="test", seed=1)


@pytest.fixture(scope="module")
def random_totals(dist, users):
    return run_totals(recsys.RandomSlateBaseline(), dist, users)


# ================================================================== hand-worked LinUCB numbers
D0, D1, D2 = [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]
DOCS = [D0, D1, D2]


def test_linucb_statistics_after_a_hand_made_sequence():
    dist = LinearSlateUsers(num_docs=3, num_features=2, slate_size=2, docs=DOCS)
    policy = linear.LinUCBBaseline(alpha=1.0, ridge=1.0, bias=False).make_policy(dist, dist.sample(1))
    state = policy.get_initial_state(1)

    # Trial start: A = 0, so UCB = sqrt(|x|^2): d2 (sqrt 2), then the d0/d1 tie -> lower index d0.
    step = policy.action(slate_step([FIRST], [DOCS], [2], [0.0], [[0, 0]]), state)
    np.testing.assert_array_equal(step.action, [[2, 0]])
    np.testing.assert_array_equal(step.state["A"], np.zeros([1, 2, 2]))

    # 1) slate [d2, d0], d0 (position 1) chosen with reward 1: A = d2 d2' + d0 d0', b = 1 * d0.
    #    theta = [[3,1],[1,2]]^-1 [1,0] = [0.4, -0.2]; UCB: d0 .4+sqrt(.4)=1.032, d1 -.2+sqrt(.6)=.575,
    #    d2 .2+sqrt(.6)=.975 -> slate [d0, d2].
    step = policy.action(slate_step([MID], [DOCS], [1], [1.0], [[2, 0]]), step.state)
    np.testing.assert_allclose(step.state["A"][0], [[2, 1], [1, 1]], atol=1e-6)
    np.testing.assert_allclose(step.state["b"][0], [1, 0], atol=1e-6)
    np.testing.assert_array_equal(step.action, [[0, 2]])
    np.testing.assert_allclose(step.state["slate_features"][0], [D0, D2])

    # 2) no click (choice = slate_size): both served documents are 0-reward examples.
    #    theta = [[5,2],[2,3]]^-1 [1,0] = [3/11, -2/11]; UCB: d0 .795, d1 .492, d2 .694 -> [d0, d2].
    step = policy.action(slate_step([MID], [DOCS], [2], [0.0], [[0, 2]]), step.state)
    np.testing.assert_allclose(step.state["A"][0], [[4, 2], [2, 2]], atol=1e-6)
    np.testing.assert_allclose(step.state["b"][0], [1, 0], atol=1e-6)
    np.testing.assert_array_equal(step.action, [[0, 2]])

    # 3) d2 (position 1) chosen with reward 2: A += d0 d0' + d2 d2', b += 2 * d2.
    step = policy.action(slate_step([MID], [DOCS], [1], [2.0], [[0, 2]]), step.state)
    cov, data = step.state["A"][0].numpy(), step.state["b"][0].numpy()
    np.testing.assert_allclose(cov, [[6, 3], [3, 3]], atol=1e-6)
    np.testing.assert_allclose(data, [3, 2], atol=1e-6)

    # UCB scores equal the formula: (A + I)^-1 = [[4,-3],[-3,7]] / 19, theta = [6, 5] / 19,
    # x^T (A + I)^-1 x = 4/19, 7/19, 5/19 for d0, d1, d2.
    scores = linear.linucb_scores(cov[None], data[None], tf.constant([DOCS]), alpha=1.0, ridge=1.0)[0]
    np.testing.assert_allclose(scores, [6 / 19 + np.sqrt(4 / 19), 5 / 19 + np.sqrt(7 / 19),
                                        11 / 19 + np.sqrt(5 / 19)], rtol=1e-5)
    np.testing.assert_array_equal(step.action, [[2, 1]])  # d2 1.092 > d1 .870 > d0 .775


def test_negatives_chosen_learns_only_from_clicks():
    dist = LinearSlateUsers(num_docs=3, num_features=2, slate_size=2, docs=DOCS)
    policy = linear.LinUCBBaseline(negatives="chosen", bias=False).make_policy(dist, dist.sample(1))
    step = policy.action(slate_step([FIRST], [DOCS], [2], [0.0], [[0, 0]]), policy.get_initial_state(1))
    step = policy.action(slate_step([MID], [DOCS], [2], [0.0], [[2, 0]]), step.state)  # no click: nothing
    np.testing.assert_array_equal(step.state["A"][0], np.zeros([2, 2]))
    np.testing.assert_array_equal(step.action, [[2, 0]])  # A still 0: the same slate [d2, d0]
    step = policy.action(slate_step([MID], [DOCS], [0], [3.0], [[2, 0]]), step.state)  # top slot d2 chosen
    np.testing.assert_allclose(step.state["A"][0], np.outer(D2, D2), atol=1e-6)  # d0 (not chosen) unused
    np.testing.assert_allclose(step.state["b"][0], np.multiply(3.0, D2), atol=1e-6)


def test_statistics_reset_at_trial_start():
    dist = LinearSlateUsers(num_docs=3, num_features=2, slate_size=2, docs=DOCS)
    policy = linear.LinUCBBaseline(bias=False).make_policy(dist, dist.sample(2))
    step = policy.action(slate_step([FIRST] * 2, [DOCS] * 2, [2] * 2, [0.0] * 2, [[0, 0]] * 2),
                         policy.get_initial_state(2))
    step = policy.action(slate_step([MID] * 2, [DOCS] * 2, [0, 1], [1.0, 1.0], [[2, 0]] * 2), step.state)
    # row 0 starts a new trial (its reward and choice must not be learned); row 1 learns
    step = policy.action(slate_step([FIRST, MID], [DOCS] * 2, [0, 0], [5.0, 5.0], step.action), step.state)
    np.testing.assert_array_equal(step.state["A"][0], np.zeros([2, 2]))
    assert np.abs(step.state["A"][1].numpy()).sum() > 0


def test_ucb_and_ts_scores_match_the_formulas():
    rng = np.random.default_rng(3)
    b, n, f, alpha, ridge, scale = 4, 6, 3, 0.7, 0.5, 1.3
    xs = rng.normal(size=(b, 10, f))
    cov = np.einsum("bnf,bng->bfg", xs, xs).astype(np.float32)
    data = rng.normal(size=(b, f)).astype(np.float32)
    features = rng.normal(size=(b, n, f)).astype(np.float32)
    z = rng.normal(size=(b, f)).astype(np.float32)
    ucb = linear.linucb_scores(cov, data, features, alpha, ridge).numpy()
    ts_scores = linear.lints_scores(cov, data, features, scale, ridge, z).numpy()
    for i in range(b):
        m_inv = np.linalg.inv(cov[i] + ridge * np.eye(f))
        theta = m_inv @ data[i]
        var = np.einsum("nf,fg,ng->n", features[i], m_inv, features[i])
        np.testing.assert_allclose(ucb[i], features[i] @ theta + alpha * np.sqrt(var), rtol=1e-4, atol=1e-5)
        chol = np.linalg.cholesky(cov[i] + ridge * np.eye(f))
        sample = theta + scale * np.linalg.solve(chol.T, z[i])  # covariance scale^2 (A + ridge I)^-1
        np.testing.assert_allclose(ts_scores[i], features[i] @ sample, rtol=1e-4, atol=1e-5)


# ================================================================== equivalence with tf-agents
#: float32 agreement: tf-agents solves (A + lambda I) x = . by conjugate gradient, we by Cholesky.
TOL = 2e-4


def _tf_agents_setup(num_docs, num_features):
    spec = ts.time_step_spec(bandit_spec_utils.create_per_arm_observation_spec(0, num_features, num_docs))
    action_spec = tensor_spec.BoundedTensorSpec((), tf.int32, 0, num_docs - 1)
    return spec, action_spec


def _agent_obs(docs):
    return {"global": tf.zeros([1, 0]), "per_arm": tf.constant(docs[None], tf.float32)}


def _train(agent, docs, action_step, reward):
    first = ts.restart(_agent_obs(docs), batch_size=1)
    last = ts.termination(_agent_obs(docs), tf.constant([reward], tf.float32))
    traj = driver_utils.trajectory_for_bandit(first, action_step, last)
    agent.train(tf.nest.map_structure(lambda x: tf.expand_dims(tf.convert_to_tensor(x), 1), traj))


def _equivalence_run(make_agent, strategy, steps=12):
    """Drive our policy (slate 1, one user) and a tf-agents per-arm agent on the same (features, reward)."""
    num_docs, f = 8, 3
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(num_docs, f)).astype(np.float32)
    w = np.array([1.0, -0.5, 0.3], np.float32)
    dist = LinearSlateUsers(num_docs=num_docs, num_features=f, slate_size=1, docs=docs)
    if strategy == "ucb":
        policy = linear.LinUCBBaseline(alpha=0.8, ridge=0.5, bias=True).make_policy(dist, dist.sample(1))
    else:
        policy = linear.LinTSBaseline(scale=0.8, ridge=0.5, bias=True).make_policy(dist, dist.sample(1))
    agent = make_agent(*_tf_agents_setup(num_docs, f))
    state = policy.get_initial_state(1)
    step = policy.action(slate_step([FIRST], [docs], [1], [0.0], [[0]]), state)
    records = []
    for _ in range(steps):
        doc = int(step.action[0, 0])
        clicked = rng.uniform() < 0.7
        reward = float(docs[doc] @ w + 0.1 * rng.normal()) if clicked else 0.0
        agent_step = agent.policy.action(ts.restart(_agent_obs(docs), batch_size=1))
        records.append((step, agent_step, doc))
        info = agent_step.info._replace(chosen_arm_features=tf.constant(docs[doc][None]))  # our arm's features
        _train(agent, docs, policy_step.PolicyStep(tf.constant([doc]), (), info), reward)
        step = policy.action(slate_step([MID], [docs], [0 if clicked else 1], [reward], step.action), step.state)
        np.testing.assert_allclose(step.state["A"][0], agent.cov_matrix[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(step.state["b"][0], agent.data_vector[0], rtol=1e-5, atol=1e-5)
    return policy, agent, step, docs, records


def test_linucb_equals_tf_agents_lin_ucb_agent():
    def make_agent(spec, action_spec):
        return lin_ucb_agent.LinearUCBAgent(
            spec, action_spec, alpha=0.8, tikhonov_weight=0.5, add_bias=True, accepts_per_arm_features=True,
            emit_policy_info=(policy_utilities.InfoFields.PREDICTED_REWARDS_OPTIMISTIC,))

    policy, agent, step, docs, records = _equivalence_run(make_agent, "ucb")
    features = policy.model_features(docs[None])  # [1, x]: tf-agents' add_bias puts the 1 first too
    for ours, theirs, doc in records:  # at every step: the same UCB scores and the same arm
        scores = linear.linucb_scores(ours.state["A"], ours.state["b"], features, 0.8, 0.5)
        np.testing.assert_allclose(scores, theirs.info.predicted_rewards_optimistic, rtol=1e-4, atol=TOL)
        assert doc == int(theirs.action[0])
    cov, data = step.state["A"], step.state["b"]
    ours = linear.linucb_scores(cov, data, features, 0.8, 0.5)
    theirs = agent.policy.action(ts.restart(_agent_obs(docs), batch_size=1)).info.predicted_rewards_optimistic
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=TOL)
    theta, _ = linear.ridge_solve(cov, data, 0.5)
    np.testing.assert_allclose(theta, agent.theta, rtol=1e-4, atol=TOL)


def test_lints_equals_tf_agents_linear_thompson_sampling_agent():
    def make_agent(spec, action_spec):
        return linear_thompson_sampling_agent.LinearThompsonSamplingAgent(
            spec, action_spec, alpha=0.8, tikhonov_weight=0.5, add_bias=True, accepts_per_arm_features=True)

    policy, agent, step, docs, _ = _equivalence_run(make_agent, "ts")
    cov, data = step.state["A"], step.state["b"]
    features = policy.model_features(docs[None])  # [1, x]: tf-agents' add_bias puts the 1 first too
    mean, var = linear.linear_mean_and_variance(cov, data, features, 0.5)
    their_mean, their_var = agent.policy._predict_mean_reward_and_variance(tf.ones([1, 1]), tf.constant(docs[None]))
    np.testing.assert_allclose(mean, their_mean, rtol=1e-4, atol=TOL)
    np.testing.assert_allclose(var, their_var, rtol=1e-4, atol=TOL)
    # Our joint posterior draw has tf-agents' per-arm marginal N(mean, (alpha sd)^2): 4000 draws at once.
    n = 4000
    tiled = {k: tf.repeat(v, n, axis=0) for k, v in step.state.items()}
    tiled["step"] = tf.fill([n], tf.constant(7, tf.int64))
    draws = policy.scores(tiled, tf.repeat(features, n, axis=0), tiled).numpy()
    sd = 0.8 * np.sqrt(var.numpy()[0])
    np.testing.assert_allclose(draws.mean(0), mean[0], atol=4 * sd.max() / np.sqrt(n))
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.08)


# ================================================================== learning on the fake family
def test_linucb_and_lints_beat_random_after_50_interactions(dist, users, random_totals):
    linucb = run_totals(linear.LinUCBBaseline(), dist, users)
    lints = run_totals(linear.LinTSBaseline(), dist, users)
    assert_better(linucb, random_totals)
    assert_better(lints, random_totals)


def test_random_slates_are_distinct_documents(dist, users):
    policy = recsys.RandomSlateBaseline().make_policy(dist, users[:50])
    env = dist.make_env(users[:50])
    slate = policy.action(env.reset(), policy.get_initial_state(50)).action.numpy()
    assert all(len(set(row)) == dist.slate_size for row in slate)
    assert len({tuple(row) for row in slate}) > 1


def test_global_model_beats_random_and_is_the_same_for_every_user(dist, users, random_totals):
    baseline = recsys.GlobalRewardModelBaseline(epochs=5)
    with pytest.raises(MetaRLInputError, match="call fit"):
        _ = baseline.model
    baseline.fit(dist, dist.sample(400, split="train", seed=1), seed=0)
    assert baseline.model.name == "global_reward_model" and baseline.model.trainable_variables
    assert_better(run_totals(baseline, dist, users), random_totals)
    # No state, and the slate is a function of the observation only: any two users, same observation.
    policy_a = baseline.make_policy(dist, users[:3])
    policy_b = baseline.make_policy(dist, users[100:101])
    assert policy_a.policy_state_spec == ()
    docs = dist.docs
    obs = dict(step_type=[MID] * 3, docs=[docs] * 3, choice=[0, 3, 1], reward=[0.5, 0.0, 1.0],
               prev_action=[[4, 5, 6], [4, 5, 6], [7, 0, 1]])
    slates = policy_a.action(slate_step(**obs)).action.numpy()
    for i in range(3):
        one = {k: v[i:i + 1] for k, v in obs.items()}
        np.testing.assert_array_equal(policy_b.action(slate_step(**one)).action[0], slates[i])


def test_popularity_beats_random_and_needs_a_shared_corpus(dist, users, random_totals):
    baseline = recsys.PopularityBaseline(fit_users=300)
    with pytest.raises(MetaRLInputError, match="call fit"):
        baseline.make_policy(dist, users)
    baseline.fit(dist, dist.sample(300, split="train", seed=1), seed=0)
    assert baseline.scores.shape == (dist.num_docs,)
    assert_better(run_totals(baseline, dist, users), random_totals)

    per_user = LinearSlateUsers(per_user_corpus=True)
    with pytest.raises(MetaRLInputError, match="global_mlp"):
        recsys.PopularityBaseline(fit_users=4).fit(per_user, per_user.sample(4), seed=0)


# ================================================================== config, families, registry, export
@pytest.mark.parametrize("cls, config, field", [
    (linear.LinUCBBaseline, {"alpha": -1.0}, "alpha"),
    (linear.LinUCBBaseline, {"ridge": 0.0}, "ridge"),
    (linear.LinUCBBaseline, {"negatives": "all"}, "negatives"),
    (linear.LinTSBaseline, {"scale": "big"}, "scale"),
    (linear.LinTSBaseline, {"alpha": 1.0}, "alpha"),
    (linear.LinTSBaseline, {"bias": "yes"}, "bias"),
    (recsys.PopularityBaseline, {"fit_users": 0}, "fit_users"),
    (recsys.GlobalRewardModelBaseline, {"hidden": [64, 0]}, "hidden"),
    (recsys.GlobalRewardModelBaseline, {"learning_rate": 0}, "learning_rate"),
    (recsys.GlobalRewardModelBaseline, {"context": "history"}, "context"),
    (recsys.RandomSlateBaseline, {"seed": 3}, "seed"),
])
def test_bad_config_is_a_one_line_error_naming_the_field(cls, config, field):
    with pytest.raises(MetaRLInputError, match=field) as err:
        cls(**config)
    assert "\n" not in str(err.value)


def test_refuses_families_without_the_slate_contract():
    bandits = make_task_distribution("bandits.bernoulli", arms=3, pulls=5)
    assert not linear.LinUCBBaseline().supports(bandits)
    with pytest.raises(MetaRLInputError, match="slate recommender family"):
        linear.LinUCBBaseline().make_policy(bandits, bandits.sample(2))
    assert recsys.slate_dims(LinearSlateUsers()) == recsys.SlateDims(20, 5, 3)


def test_registered():
    for name, cls in [("random_slate", recsys.RandomSlateBaseline), ("popularity", recsys.PopularityBaseline),
                      ("linucb", linear.LinUCBBaseline), ("lin_ts", linear.LinTSBaseline),
                      ("global_mlp", recsys.GlobalRewardModelBaseline)]:
        assert BASELINES.get(name) is cls


def test_policy_saver_round_trip_gives_the_same_slates(tmp_path, dist, users):
    tasks = users[:5]
    policy = linear.LinUCBBaseline(alpha=0.5).make_policy(dist, tasks)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "linucb"))
    loaded = tf.saved_model.load(str(tmp_path / "linucb"))
    env = dist.make_env(tasks)
    time_step, state, loaded_state = env.reset(), policy.get_initial_state(5), loaded.get_initial_state(5)
    for _ in range(6):
        ours, theirs = policy.action(time_step, state), loaded.action(time_step, loaded_state)
        np.testing.assert_array_equal(ours.action, theirs.action)
        tf.nest.map_structure(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), ours.state, theirs.state)
        time_step, state, loaded_state = env.step(ours.action), ours.state, theirs.state
    assert np.abs(state["A"].numpy()).sum() > 0
