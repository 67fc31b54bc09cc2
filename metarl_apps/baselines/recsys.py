"""Recommender baselines on slate environments: random, popularity, per-user LinUCB / linear Thompson sampling
and a global (population-level, non-adaptive) reward model.

**Observation contract** (``recsys.interest_evolution``, ``recsys.latent_factor`` and any family whose specs
follow it; :func:`slate_dims` checks it):

* ``observation["obs"]["doc_features"]`` float32 ``[num_docs, F]``: the candidate documents' features;
* ``observation["obs"]["choice"]`` int32 scalar: position in the previous slate of the chosen document, or
  ``slate_size`` for no click (and on the first step of a trial);
* ``observation["obs"]["consumed"]`` float32 scalar (not used here: the reward carries the same signal);
* action: int32 ``[slate_size]`` distinct document indices in ``[0, num_docs - 1]``; ``prev_action`` is the
  previous slate; ``time_step.reward`` is the previous slate's reward. One interaction = one inner episode.

Every policy fills its slate with the ``slate_size`` documents of highest score (``tf.math.top_k``, so the
documents are distinct and the slate is ordered by score, best first).

**Per-user linear bandits** (:class:`LinUCBBaseline`, :class:`LinTSBaseline`) keep, per user (batch row),
the statistics of a ridge regression of reward on document features, exactly as tf-agents' per-arm
``LinearBanditAgent`` does for its one model: ``A = sum x x^T`` and ``b = sum r x`` (the ridge ``lambda`` is
added when solving, ``theta = (A + lambda I)^-1 b``). They live in the policy state ``[B, F, F]`` / ``[B, F]``
and are updated in-graph from each observation's ``choice`` and ``reward``:

* the chosen document is an example with target ``reward``;
* with ``negatives="slate"`` (default) every *other* document of the served slate is an example with target
  0, and a no-click makes the whole slate 0-reward examples. The model then learns the expected reward of
  showing a document (click propensity x reward), which is what a slate ranks by; with ``slate_size=1`` it
  is exactly the classic bandit update with the observed reward (0 on no click).
* with ``negatives="chosen"`` only the chosen document is an example and a no-click teaches nothing (poor
  when the reward given a click does not depend on the user, as consumed time in interest evolution).

With ``bias=True`` (default) the model's features are ``[1, doc_features]`` (tf-agents' ``add_bias``; the
intercept helps on RecSim's features). Defaults (``alpha`` = ``scale`` = 0.3, ``ridge`` = 1) suit rewards of
order 1 per interaction; an exploration bonus much larger than the reward scale keeps LinUCB near random for
the first tens of interactions.

Statistics reset at trial starts (``step_type == FIRST``, whose reward/choice carry no information). The
features of the served slate are kept in the state (``"slate_features"``), so the update uses the features
the documents had when served, whether or not the corpus changes between steps.

The same math as tf-agents' ``LinearUCBAgent`` / ``LinearThompsonSamplingAgent`` with
``accepts_per_arm_features=True`` and ``add_bias=bias`` (a test checks it step by step): UCB scores
``x.theta + alpha sqrt(x^T (A + lambda I)^-1 x)``; TS draws ``theta~ ~ N(theta, scale^2 (A + lambda I)^-1)`` per
user and scores ``x.theta~`` (tf-agents draws each arm's score independently from the same marginal
``N(x.theta, scale^2 x^T (A + lambda I)^-1 x)``; a joint draw ranks a slate coherently). We solve by Cholesky,
tf-agents by float32 conjugate gradient (which drifts by ~1e-3 after a few tens of updates). tf-agents' own
``LinearBanditPolicy`` cannot be reused directly: it reads one model from variables (no batch dimension), while
here every batch row is a user with its own model in the policy state.

**Population baselines** (``needs_fit``): :class:`PopularityBaseline` and :class:`GlobalRewardModelBaseline`
are fitted on interactions logged by a uniformly random slate policy on training users (tf-agents
``DynamicStepDriver`` + ``TFUniformReplayBuffer``). Popularity = mean reward per impression of each document
index (needs a corpus shared by all users). The global model is an MLP ``q(x_doc, context)`` regressing the
same per-impression targets (chosen: reward, other slate documents: 0) pooled over users; with
``context="last_click"`` it also sees the features of the document chosen at the previous interaction (what
a memoryless DQN sees in the current observation). It has no memory and no per-user parameters: the same
observation gives the same slate for every user.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping

import numpy as np
import tensorflow as tf
from tf_agents.drivers import dynamic_step_driver
from tf_agents.policies import tf_policy
from tf_agents.replay_buffers import tf_uniform_replay_buffer
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from metarl_apps.baselines.bandits import ConfiguredBaseline, StatefulPolicy, check_number
from metarl_apps.core.agent import is_first
from metarl_apps.core.env import OBS, PREV_ACTION
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution

FAMILIES = ("recsys.interest_evolution", "recsys.latent_factor")
DOC_FEATURES, CHOICE, CONSUMED = "doc_features", "choice", "consumed"


# ================================================================== the slate contract
@dataclasses.dataclass(frozen=True)
class SlateDims:
    num_docs: int
    num_features: int
    slate_size: int


def slate_dims(dist: TaskDistribution) -> SlateDims | None:
    """The sizes of ``dist``'s slate contract (see the module docstring), or None if its specs break it."""
    try:
        obs = dist.observation_spec()[OBS]
        action = dist.action_spec()
    except (KeyError, TypeError, AttributeError, NotImplementedError):
        return None
    if not isinstance(obs, Mapping) or DOC_FEATURES not in obs or CHOICE not in obs:
        return None
    docs, choice = obs[DOC_FEATURES], obs[CHOICE]
    if docs.dtype != tf.float32 or docs.shape.rank != 2 or not docs.shape.is_fully_defined():
        return None
    if not choice.dtype.is_integer or choice.shape.rank != 0:
        return None
    if not action.dtype.is_integer or action.shape.rank != 1 or not action.shape.is_fully_defined():
        return None
    num_docs, num_features = docs.shape.as_list()
    slate_size = action.shape[0]
    if not 1 <= slate_size <= num_docs:
        return None
    return SlateDims(int(num_docs), int(num_features), int(slate_size))


def top_slate(scores: tf.Tensor, slate_size: int, dtype=tf.int32) -> tf.Tensor:
    """``[B, slate_size]``: the indices of the highest ``scores`` ``[B, num_docs]``, best first (distinct)."""
    return tf.cast(tf.math.top_k(scores, k=slate_size, sorted=True).indices, dtype)


def check_int(owner: str, name: str, value: Any, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise MetaRLInputError(f"{owner}: config {name}={value!r} must be an integer >= {low}")
    return int(value)


def check_choice(owner: str, name: str, value: Any, valid: tuple[str, ...]) -> str:
    if value not in valid:
        raise MetaRLInputError(f"{owner}: config {name}={value!r} must be one of {', '.join(map(repr, valid))}")
    return value


class SlateBaseline(ConfiguredBaseline):
    """A baseline for any family following the slate contract (:func:`slate_dims`)."""

    families: ClassVar[tuple[str, ...]] = FAMILIES

    def supports(self, dist: TaskDistribution) -> bool:
        return slate_dims(dist) is not None

    def _check_family(self, dist: TaskDistribution) -> None:
        if not self.supports(dist):
            raise MetaRLInputError(
                f"baseline {type(self).__name__} needs a slate recommender family (obs doc_features [docs, F], "
                f"choice, int action [slate_size], e.g. {', '.join(FAMILIES)}); {dist.family!r} is not one"
            )

    def _dims(self, dist: TaskDistribution) -> SlateDims:
        dims = slate_dims(dist)
        assert dims is not None, "checked by _check_family"
        return dims


# ================================================================== linear bandit math
def ridge_solve(cov: tf.Tensor, data: tf.Tensor, ridge: float) -> tuple[tf.Tensor, tf.Tensor]:
    """``(theta [B, F], L [B, F, F])``: ``theta = (A + ridge I)^-1 b`` and the Cholesky factor of ``A + ridge I``.

    ``cov`` = A ``[B, F, F]`` (sum of ``x x^T``), ``data`` = b ``[B, F]`` (sum of ``r x``).
    """
    f = cov.shape[-1]
    chol = tf.linalg.cholesky(cov + ridge * tf.eye(f, dtype=cov.dtype))
    theta = tf.linalg.cholesky_solve(chol, data[..., None])[..., 0]
    return theta, chol


def linear_mean_and_variance(cov, data, features, ridge: float):
    """Per-document ``(mean, var)`` ``[B, N]``: ``x.theta`` and ``x^T (A + ridge I)^-1 x`` for
    ``features`` ``[B, N, F]`` (tf-agents' ``_predict_mean_reward_and_variance`` for per-arm features)."""
    theta, chol = ridge_solve(cov, data, ridge)
    mean = tf.einsum("bnf,bf->bn", features, theta)
    z = tf.linalg.triangular_solve(chol, tf.linalg.matrix_transpose(features), lower=True)  # L^-1 x  [B, F, N]
    return mean, tf.reduce_sum(tf.square(z), axis=-2)


def linucb_scores(cov, data, features, alpha: float, ridge: float) -> tf.Tensor:
    """LinUCB scores ``[B, N]``: ``x.theta + alpha sqrt(x^T (A + ridge I)^-1 x)``."""
    mean, var = linear_mean_and_variance(cov, data, features, ridge)
    return mean + alpha * tf.sqrt(tf.maximum(var, 0.0))


def lints_scores(cov, data, features, scale: float, ridge: float, normal: tf.Tensor) -> tf.Tensor:
    """Linear TS scores ``[B, N]`` = ``x.theta~`` with ``theta~ = theta + scale L^-T normal`` (``normal``
    ``[B, F]`` standard normal), i.e. ``theta~ ~ N(theta, scale^2 (A + ridge I)^-1)``."""
    theta, chol = ridge_solve(cov, data, ridge)
    delta = tf.linalg.triangular_solve(chol, normal[..., None], lower=True, adjoint=True)[..., 0]
    return tf.einsum("bnf,bf->bn", features, theta + scale * delta)


def slate_update(cov, data, slate_features, choice, reward, learn, negatives: str):
    """Add one interaction per row to ``A`` ``[B, F, F]`` and ``b`` ``[B, F]``.

    ``slate_features`` ``[B, S, F]`` of the served slate; ``choice`` ``[B]`` chosen position (``S`` = no click);
    ``reward`` ``[B]``; ``learn`` ``[B]`` bool (False rows are unchanged). See the module docstring for
    ``negatives``.
    """
    s = slate_features.shape[1]
    chosen = tf.cast(tf.equal(tf.range(s)[None, :], tf.cast(choice, tf.int32)[:, None]), cov.dtype)  # [B, S]
    weight = tf.ones_like(chosen) if negatives == "slate" else chosen
    weight *= tf.cast(learn, cov.dtype)[:, None]
    target = chosen * tf.cast(reward, cov.dtype)[:, None]
    cov = cov + tf.einsum("bs,bsf,bsg->bfg", weight, slate_features, slate_features)
    data = data + tf.einsum("bs,bsf->bf", weight * target, slate_features)
    return cov, data


# ================================================================== policies
class RandomSlatePolicy(StatefulPolicy):
    """``slate_size`` distinct documents uniformly at random (the top-k of i.i.d. uniforms)."""

    def __init__(self, dist: TaskDistribution, seed: int, name: str = "random_slate"):
        super().__init__(dist, seed, {}, name)
        self._dims = slate_dims(dist)

    def _action(self, time_step, policy_state, seed):
        del seed  # keyed by the state's step (see StatefulPolicy)
        batch = tf.shape(time_step.step_type)[:1]
        u = self._uniform(policy_state, tf.concat([batch, [self._dims.num_docs]], 0), salt=0)
        slate = top_slate(u, self._dims.slate_size, self.action_spec.dtype)
        return policy_step.PolicyStep(slate, self._next_state(policy_state, {}), ())


class FixedScoresPolicy(tf_policy.TFPolicy):
    """The same slate for every user and step: the top documents of fixed per-document ``scores`` ``[N]``."""

    def __init__(self, dist: TaskDistribution, scores: np.ndarray, name: str = "popularity"):
        super().__init__(dist.time_step_spec(), dist.action_spec(), name=name)
        self._scores = tf.constant(np.asarray(scores, np.float32))
        self._slate_size = slate_dims(dist).slate_size

    def _action(self, time_step, policy_state, seed):
        batch = tf.shape(time_step.step_type)[0]
        slate = top_slate(self._scores[None], self._slate_size, self.action_spec.dtype)
        return policy_step.PolicyStep(tf.tile(slate, [batch, 1]), policy_state, ())


class LinearSlatePolicy(StatefulPolicy):
    """Per-user LinUCB (``strategy="ucb"``, ``exploration`` = alpha) or linear Thompson sampling
    (``strategy="ts"``, ``exploration`` = posterior scale), batched over users.

    State: ``"A"`` ``[B, F, F]``, ``"b"`` ``[B, F]``, ``"slate_features"`` ``[B, S, F]`` (features of the slate
    just served) and ``"step"``. Statistics reset where the step is FIRST.
    """

    def __init__(self, dist: TaskDistribution, seed: int, strategy: str, exploration: float, ridge: float,
                 negatives: str, bias: bool, name: str):
        dims = slate_dims(dist)
        self.bias = bool(bias)
        self.num_features = f = dims.num_features + int(self.bias)
        s = dims.slate_size
        stats = {"A": tensor_spec.TensorSpec((f, f), tf.float32, name="A"),
                 "b": tensor_spec.TensorSpec((f,), tf.float32, name="b"),
                 "slate_features": tensor_spec.TensorSpec((s, f), tf.float32, name="slate_features")}
        super().__init__(dist, seed, stats, name)
        self.dims = dims
        self.strategy, self.exploration, self.ridge, self.negatives = strategy, exploration, ridge, negatives

    def learn(self, time_step, policy_state) -> dict:
        """The statistics after learning from ``time_step`` (the response to the slate in the state)."""
        obs = time_step.observation[OBS]
        learn = tf.logical_not(is_first(time_step))
        cov, data = slate_update(policy_state["A"], policy_state["b"], policy_state["slate_features"],
                                 obs[CHOICE], time_step.reward, learn, self.negatives)
        stats = {"A": cov, "b": data, "slate_features": policy_state["slate_features"]}
        return self._reset_where_first(time_step, stats)

    def model_features(self, doc_features) -> tf.Tensor:
        """``[B, N, F']``: the documents' features as the linear model sees them (a leading 1 if ``bias``)."""
        x = tf.cast(doc_features, tf.float32)
        if self.bias:
            x = tf.concat([tf.ones_like(x[..., :1]), x], axis=-1)
        return x

    def scores(self, stats, features, policy_state) -> tf.Tensor:
        """``[B, N]`` scores of the documents ``features`` ``[B, N, F']`` (:meth:`model_features`)."""
        if self.strategy == "ucb":
            return linucb_scores(stats["A"], stats["b"], features, self.exploration, self.ridge)
        shape = tf.stack([tf.shape(features)[0], self.num_features])
        normal = tf.random.stateless_normal(shape, seed=self._seed(policy_state, 0))
        return lints_scores(stats["A"], stats["b"], features, self.exploration, self.ridge, normal)

    def _action(self, time_step, policy_state, seed):
        del seed  # keyed by the state's step (see StatefulPolicy)
        stats = self.learn(time_step, policy_state)
        features = self.model_features(time_step.observation[OBS][DOC_FEATURES])
        slate = top_slate(self.scores(stats, features, policy_state), self.dims.slate_size,
                          self.action_spec.dtype)
        stats["slate_features"] = tf.gather(features, slate, batch_dims=1)
        return policy_step.PolicyStep(slate, self._next_state(policy_state, stats), ())


def last_click_context(features, prev_action, choice, first) -> tf.Tensor:
    """``[B, F + 1]``: features (in the current ``features`` ``[B, N, F]``) of the document chosen from the
    previous slate ``prev_action`` ``[B, S]`` and a clicked flag; zeros after a no-click and on FIRST steps."""
    s = prev_action.shape[-1]
    choice = tf.cast(choice, tf.int32)
    clicked = tf.logical_and(choice < s, tf.logical_not(first))
    doc = tf.gather(tf.cast(prev_action, tf.int32), tf.clip_by_value(choice, 0, s - 1), batch_dims=1)
    doc = tf.clip_by_value(doc, 0, features.shape[1] - 1)
    clicked_f = tf.cast(clicked, features.dtype)[:, None]
    return tf.concat([tf.gather(features, doc, batch_dims=1) * clicked_f, clicked_f], axis=-1)


class RewardModelPolicy(tf_policy.TFPolicy):
    """Slate = top documents by a pooled reward model ``model([x_doc, context])`` (no state, no learning)."""

    def __init__(self, dist: TaskDistribution, model: tf.keras.Model, context: str, name: str = "global_mlp"):
        super().__init__(dist.time_step_spec(), dist.action_spec(), name=name)
        self._model = model
        self._context = context
        self._slate_size = slate_dims(dist).slate_size

    def model_inputs(self, features, prev_action, choice, first) -> tf.Tensor:
        """``[B, N, D]`` inputs of the reward model for every candidate document."""
        if self._context == "none":
            return features
        ctx = last_click_context(features, prev_action, choice, first)
        ctx = tf.repeat(ctx[:, None, :], tf.shape(features)[1], axis=1)
        return tf.concat([features, ctx], axis=-1)

    def predict(self, time_step) -> tf.Tensor:
        """``[B, N]`` predicted reward of showing each candidate document."""
        obs = time_step.observation
        features = tf.cast(obs[OBS][DOC_FEATURES], tf.float32)
        x = self.model_inputs(features, obs[PREV_ACTION], obs[OBS][CHOICE], is_first(time_step))
        return self._model(x)[..., 0]

    def _action(self, time_step, policy_state, seed):
        slate = top_slate(self.predict(time_step), self._slate_size, self.action_spec.dtype)
        return policy_step.PolicyStep(slate, policy_state, ())


# ================================================================== logged population data
@dataclasses.dataclass
class SlateLog:
    """Interactions of a uniformly random slate policy with training users (``[U, T, ...]`` numpy arrays).

    ``features[u, t]`` ``[N, F]`` documents when slate ``t`` was served; ``slate[u, t]`` ``[S]``;
    ``choice[u, t]`` the response (position, ``S`` = no click); ``reward[u, t]``; ``prev_action``,
    ``prev_choice`` and ``first`` describe the observation the slate was chosen in.
    """

    features: np.ndarray
    slate: np.ndarray
    choice: np.ndarray
    reward: np.ndarray
    prev_action: np.ndarray
    prev_choice: np.ndarray
    first: np.ndarray

    def targets(self) -> np.ndarray:
        """``[U, T, S]``: per slate position, the reward if it was chosen, else 0."""
        s = self.slate.shape[-1]
        return np.where(np.arange(s) == self.choice[..., None], self.reward[..., None], 0.0).astype(np.float32)


def log_random_slates(dist: TaskDistribution, tasks: list[Task], interactions: int, seed: int) -> SlateLog:
    """Run :class:`RandomSlatePolicy` on ``tasks`` for ``interactions`` slates each (capped to the trial)."""
    trial = dist.horizon * dist.episodes_per_trial
    steps = max(1, min(interactions, trial - 1))  # +1 observation (the last response) within one trial
    env = dist.make_env(tasks, seed=seed)
    policy = RandomSlatePolicy(dist, seed, name="random_slate_logger")
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(policy.trajectory_spec, batch_size=len(tasks),
                                                            max_length=steps + 1)
    driver = dynamic_step_driver.DynamicStepDriver(env, policy, observers=[buffer.add_batch],
                                                   num_steps=len(tasks) * (steps + 1))
    driver.run(policy_state=policy.get_initial_state(len(tasks)))
    data = buffer.as_dataset(sample_batch_size=len(tasks), num_steps=steps + 1, single_deterministic_pass=True)
    traj = tf.nest.map_structure(lambda x: x.numpy(), next(iter(data))[0])  # [U, steps + 1, ...], user order
    obs = traj.observation
    return SlateLog(
        features=obs[OBS][DOC_FEATURES][:, :steps],
        slate=traj.action[:, :steps],
        choice=obs[OBS][CHOICE][:, 1:steps + 1],
        reward=traj.reward[:, :steps],
        prev_action=obs[PREV_ACTION][:, :steps],
        prev_choice=obs[OBS][CHOICE][:, :steps],
        first=traj.step_type[:, :steps] == int(ts.StepType.FIRST),
    )


# ================================================================== baselines
class RandomSlateBaseline(SlateBaseline):
    """Uniformly random slates of distinct documents: the floor."""

    def _make_policy(self, dist, tasks, seed):
        return RandomSlatePolicy(dist, seed)


class _FittedSlateBaseline(SlateBaseline):
    """Fitted on logged random-slate interactions of (up to ``fit_users``) training users."""

    needs_fit = True
    defaults: ClassVar[Mapping[str, Any]] = {"fit_users": 500, "fit_interactions": 20}

    def _validate(self):
        name = type(self).__name__
        for key in ("fit_users", "fit_interactions"):
            self.config[key] = check_int(name, key, self.config[key])

    def _log(self, dist, train_tasks, seed) -> SlateLog:
        users = train_tasks[: self.config["fit_users"]]
        return log_random_slates(dist, users, self.config["fit_interactions"], seed)

    def _require_fit(self, dist):
        fitted = getattr(self, "_fitted_family", None)
        if fitted is None:
            raise MetaRLInputError(f"{type(self).__name__}: call fit(dist, train_tasks) before make_policy")
        if fitted != dist.family:
            raise MetaRLInputError(f"{type(self).__name__}: fitted on {fitted!r}, not {dist.family!r}; fit again")


class PopularityBaseline(_FittedSlateBaseline):
    """Serves, to everyone, the documents of highest mean reward per impression on the training population
    (logged random slates: reward when chosen, 0 when shown and not chosen). Needs a corpus shared by all users
    (document ``i`` is the same document for every user); refuses families whose logged features differ."""

    def _fit(self, dist, train_tasks, seed):
        log = self._log(dist, train_tasks, seed)
        ref = log.features[:1, :1]
        if not np.allclose(log.features, ref, atol=1e-6):
            raise MetaRLInputError(
                f"popularity: {dist.family!r} shows different documents to different users or steps, so a "
                f"document index has no population-wide popularity; use the global_mlp baseline instead"
            )
        num_docs = log.features.shape[-2]
        docs = log.slate.reshape(-1)
        impressions = np.bincount(docs, minlength=num_docs).astype(np.float64)
        rewards = np.bincount(docs, weights=log.targets().reshape(-1), minlength=num_docs)
        self.scores = (rewards / np.maximum(impressions, 1.0)).astype(np.float32)
        self._fitted_family = dist.family

    def _make_policy(self, dist, tasks, seed):
        self._require_fit(dist)
        return FixedScoresPolicy(dist, self.scores, name="popularity")


class GlobalRewardModelBaseline(_FittedSlateBaseline):
    """A population-level reward model, identical for every user, without memory or per-user learning: an
    MLP ``q(x_doc[, last-click context])`` fitted by least squares on training users' logged random slates
    (target: the reward if the document was chosen, else 0); serves the top-``slate_size`` documents.

    Config: ``hidden`` layer sizes, ``epochs``, ``learning_rate``, ``batch_size``, ``context``
    (``"last_click"``: also input the previously chosen document's features; ``"none"``: documents only),
    plus ``fit_users`` / ``fit_interactions``.
    """

    defaults = {**_FittedSlateBaseline.defaults, "hidden": (64, 64), "epochs": 10, "learning_rate": 3e-3,
                "batch_size": 256, "context": "last_click"}

    def _validate(self):
        super()._validate()
        name = type(self).__name__
        hidden = self.config["hidden"]
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if not isinstance(hidden, (list, tuple)) or not all(
                not isinstance(h, bool) and isinstance(h, (int, np.integer)) and h >= 1 for h in hidden):
            raise MetaRLInputError(f"{name}: config hidden={self.config['hidden']!r} must be a list of positive "
                                   f"layer sizes, e.g. [64, 64]")
        self.config["hidden"] = tuple(int(h) for h in hidden)
        self.config["epochs"] = check_int(name, "epochs", self.config["epochs"])
        self.config["batch_size"] = check_int(name, "batch_size", self.config["batch_size"])
        self.config["learning_rate"] = check_number(name, "learning_rate", self.config["learning_rate"], 0.0,
                                                    low_open=True)
        self.config["context"] = check_choice(name, "context", self.config["context"], ("last_click", "none"))

    def _build_model(self, input_dim: int, seed: int) -> tf.keras.Model:
        layers = [tf.keras.layers.Dense(h, activation="relu",
                                        kernel_initializer=tf.keras.initializers.GlorotUniform(seed + i))
                  for i, h in enumerate(self.config["hidden"])]
        layers.append(tf.keras.layers.Dense(1, kernel_initializer=tf.keras.initializers.GlorotUniform(seed + 99)))
        model = tf.keras.Sequential(layers, name="global_reward_model")
        model.build([None, None, input_dim])
        return model

    def _fit(self, dist, train_tasks, seed):
        log = self._log(dist, train_tasks, seed)
        dims = self._dims(dist)
        u, t = log.slate.shape[:2]
        f = dims.num_features
        model = self._build_model(f if self.config["context"] == "none" else 2 * f + 1, seed)
        policy = RewardModelPolicy(dist, model, self.config["context"])
        flat = lambda a: a.reshape((u * t,) + a.shape[2:])  # noqa: E731
        x_all = policy.model_inputs(tf.constant(flat(log.features)), tf.constant(flat(log.prev_action)),
                                    tf.constant(flat(log.prev_choice)), tf.constant(flat(log.first)))
        x = tf.gather(x_all, tf.constant(flat(log.slate)), batch_dims=1).numpy()  # [U*T, S, D]
        x = x.reshape(-1, x.shape[-1])
        y = log.targets().reshape(-1)
        self.train_loss = _regress(model, x, y, self.config, seed)
        self._model = model
        self._fitted_family = dist.family

    def _make_policy(self, dist, tasks, seed):
        self._require_fit(dist)
        return RewardModelPolicy(dist, self._model, self.config["context"])


def _regress(model: tf.keras.Model, x: np.ndarray, y: np.ndarray, config: Mapping[str, Any], seed: int) -> float:
    """Least-squares fit of ``model`` on ``(x [n, D], y [n])`` with Adam; returns the last epoch's mean loss."""
    optimizer = tf.keras.optimizers.Adam(config["learning_rate"])

    @tf.function(autograph=False, reduce_retracing=True)
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(xb[:, None, :])[:, 0, 0] - yb))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables,
                                      strict=True))
        return loss

    order = np.random.default_rng(seed)
    batch = config["batch_size"]
    loss = float("nan")
    for _ in range(config["epochs"]):
        perm = order.permutation(len(y))
        losses = []
        for start in range(0, len(y), batch):
            idx = perm[start:start + batch]
            losses.append(float(train_step(tf.constant(x[idx]), tf.constant(y[idx]))))
        loss = float(np.mean(losses))
    return loss


class _LinearBanditBaseline(SlateBaseline):
    strategy: ClassVar[str] = "ucb"
    exploration_key: ClassVar[str] = "alpha"

    def _validate(self):
        name = type(self).__name__
        key = self.exploration_key
        self.config[key] = check_number(name, key, self.config[key], 0.0)
        self.config["ridge"] = check_number(name, "ridge", self.config["ridge"], 0.0, low_open=True)
        self.config["negatives"] = check_choice(name, "negatives", self.config["negatives"], ("slate", "chosen"))
        self.config["bias"] = check_choice(name, "bias", self.config["bias"], (True, False))

    def _make_policy(self, dist, tasks, seed):
        c = self.config
        return LinearSlatePolicy(dist, seed, self.strategy, c[self.exploration_key], c["ridge"], c["negatives"],
                                 c["bias"], name="linucb" if self.strategy == "ucb" else "lin_ts")


class LinUCBBaseline(_LinearBanditBaseline):
    """Per-user LinUCB on document features (tf-agents ``LinearUCBAgent`` math, batched over users).

    Config: ``alpha`` (>= 0, width of the confidence bonus = tf-agents ``alpha``), ``ridge`` (> 0, lambda =
    tf-agents ``tikhonov_weight``), ``negatives`` (``"slate"`` | ``"chosen"``, see the module docstring).
    """

    defaults = {"alpha": 0.3, "ridge": 1.0, "negatives": "slate", "bias": True}


class LinTSBaseline(_LinearBanditBaseline):
    """Per-user linear Thompson sampling (tf-agents ``LinearThompsonSamplingAgent`` math, batched over users).

    Config: ``scale`` (>= 0, posterior standard-deviation scale = tf-agents ``alpha``; sqrt of the reward noise
    variance in the Bayesian reading), ``ridge`` (> 0, lambda), ``negatives`` (as LinUCB).
    """

    strategy = "ts"
    exploration_key = "scale"
    defaults = {"scale": 0.3, "ridge": 1.0, "negatives": "slate", "bias": True}


__all__ = [
    "FAMILIES", "GlobalRewardModelBaseline", "LinTSBaseline", "LinUCBBaseline", "LinearSlatePolicy",
    "PopularityBaseline", "RandomSlateBaseline", "SlateDims", "lints_scores", "linucb_scores", "log_random_slates",
    "slate_dims", "slate_update",
]
