"""Recommender baselines on slate environments: the slate contract, random, popularity and a global
(population-level, non-adaptive) reward model. The per-user linear bandits (LinUCB, linear Thompson
sampling) are in :mod:`metarl_apps.baselines.linear`.

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
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from metarl_apps.baselines.base import ConfiguredBaseline, StatefulPolicy, check_choice, check_int, check_number
from metarl_apps.core.agent import is_first
from metarl_apps.core.env import CHOICE, DOC_FEATURES, OBS, PREV_ACTION
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution

FAMILIES = ("recsys.interest_evolution", "recsys.latent_factor")


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


def reward_model_inputs(features, prev_action, choice, first, context: str) -> tf.Tensor:
    """``[B, N, D]`` inputs of a global reward model for every candidate document: the documents' features
    ``[B, N, F]``, with ``context="last_click"`` followed by :func:`last_click_context` (``D = 2F + 1``)."""
    if context == "none":
        return features
    ctx = last_click_context(features, prev_action, choice, first)
    ctx = tf.repeat(ctx[:, None, :], tf.shape(features)[1], axis=1)
    return tf.concat([features, ctx], axis=-1)


def reward_model_input_size(num_features: int, context: str) -> int:
    return num_features if context == "none" else 2 * num_features + 1


class RewardModelPolicy(tf_policy.TFPolicy):
    """Slate = top documents by a pooled reward model ``model([x_doc, context])`` (no state, no learning)."""

    def __init__(self, dist: TaskDistribution, model: tf.keras.Model, context: str, name: str = "global_mlp"):
        super().__init__(dist.time_step_spec(), dist.action_spec(), name=name)
        self._model = model
        self._context = context
        self._slate_size = slate_dims(dist).slate_size

    def model_inputs(self, features, prev_action, choice, first) -> tf.Tensor:
        """``[B, N, D]`` inputs of the reward model for every candidate document."""
        return reward_model_inputs(features, prev_action, choice, first, self._context)

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

    def _require_fit(self, dist=None, before: str = "make_policy"):
        fitted = getattr(self, "_fitted_family", None)
        if fitted is None:
            raise MetaRLInputError(f"{type(self).__name__}: call fit(dist, train_tasks) before {before}")
        if dist is not None and fitted != dist.family:
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
        model = self._build_model(reward_model_input_size(f, self.config["context"]), seed)
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

    @property
    def model(self) -> tf.keras.Model:
        """The fitted reward model (inputs: :func:`reward_model_inputs`; output: one score per item)."""
        self._require_fit(before="reading model")
        return self._model

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


__all__ = [
    "FAMILIES", "GlobalRewardModelBaseline", "PopularityBaseline", "RandomSlateBaseline", "SlateBaseline",
    "SlateDims", "log_random_slates", "reward_model_input_size", "reward_model_inputs", "slate_dims", "top_slate",
]
