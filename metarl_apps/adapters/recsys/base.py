"""Shared machinery of the recsys families: a RecSim NG user population as a :class:`TaskDistribution`.

A family names a RecSim NG user entity; this module wires it into RecSim NG's ``simplified_recs_story`` (user
state, slate, user response) with the shared corpus (:func:`.entities.make_corpus`) and the served-slate
recommender, and steps that RecSim ``Network`` inside a batched :class:`TrialEnvironment` (batch = users):

* trial start (``_reset``): the next interaction uses ``Network.initial_step()``, in which RecSim's
  ``user.initial_state()`` draws the user's initial latent state; its random variables are *pinned* to the
  task's params (``_pins``), so the task params are exactly the user's latent preferences;
* every interaction (``_transition``): ``Network.initial_step()`` on the first one of a trial, else
  ``Network.step(previous)`` — RecSim's ``user.next_state`` (from the previous slate and response) and
  ``user.next_response`` to the slate in the action. The previous network value lives in ``tf.Variable`` s.

All random variables the RecSim entities create take keyed values (:func:`.sampling.keyed_values`,
per-user streams ``(task seed, env seed, trial, step, draw index)``), so a user's trajectory does not depend
on the batch it is stepped in. Everything is plain TF, traced once by the runner's ``tf.function``.
"""

from __future__ import annotations

import abc
import math
from typing import Any, ClassVar, Mapping

import numpy as np
import tensorflow as tf
from recsim_ng.core import network as network_lib
from recsim_ng.core import value as value_lib
from recsim_ng.stories import recommendation_simulation as stories
from tf_agents.specs import tensor_spec

from metarl_apps.adapters.recsys import entities, sampling
from metarl_apps.core.env import CHOICE, CLICKED, CONSUMED, DOC_FEATURES, TrialEnvironment, trial_time_step_spec
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution, positive_int

Value = value_lib.Value

__all__ = ["CHOICE", "CLICKED", "CONSUMED", "DOC_FEATURES"]  # re-exported: the slate observation keys


def finite_number(family: str, name: str, value: Any, low: float | None = None, low_open: bool = False) -> float:
    """Validate a real family parameter (optionally ``>= low`` / ``> low``) with a one-line error naming it."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    ok = ok and math.isfinite(float(value))
    if ok and low is not None:
        ok = float(value) > low if low_open else float(value) >= low
    if not ok:
        want = "a finite number" if low is None else f"a finite number {'>' if low_open else '>='} {low:g}"
        raise MetaRLInputError(f"{family}: parameter {name}={value!r} must be {want}")
    return float(value)


def non_negative_int(family: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise MetaRLInputError(f"{family}: parameter {name}={value!r} must be a non-negative integer")
    return int(value)


class RecSimPopulation(TaskDistribution):
    """Base of the recsys families: shared parameters, specs, corpus; subclasses name the user model.

    Subclasses implement ``_sample_params``, ``_user(config, choice_model_ctor)`` (a RecSim NG user entity),
    ``_pins(task_vars)``, ``_response(user_response)``, ``_task_arrays(tasks)`` and ``oracle_policy``.
    """

    budget_unit: ClassVar[str] = "interactions"
    #: actions are slates of distinct documents (learners may use a slate distribution)
    slate_actions: ClassVar[bool] = True

    def __init__(self, *, num_topics: int, num_docs: int, slate_size: int, interactions: int, corpus_seed: int,
                 **family_params: Any):
        fam = self.family
        self.num_topics = positive_int("num_topics", num_topics, fam)
        self.num_docs = positive_int("num_docs", num_docs, fam)
        self.slate_size = positive_int("slate_size", slate_size, fam)
        if self.slate_size > self.num_docs:
            raise MetaRLInputError(
                f"{fam}: parameter slate_size={slate_size!r} must be at most num_docs={num_docs!r}"
            )
        self.interactions = positive_int("interactions", interactions, fam)
        self.corpus_seed = non_negative_int(fam, "corpus_seed", corpus_seed)
        super().__init__(num_topics=self.num_topics, num_docs=self.num_docs, slate_size=self.slate_size,
                         interactions=self.interactions, corpus_seed=self.corpus_seed, **family_params)
        self._corpus: dict[str, np.ndarray] | None = None

    # ----------------------------------------------------------- metadata
    @property
    def horizon(self) -> int:
        return 1

    @property
    def episodes_per_trial(self) -> int:
        return self.interactions

    @property
    def corpus(self) -> Mapping[str, np.ndarray]:
        """The population's documents (RecSim NG corpus fields, numpy, read-only), drawn from ``corpus_seed``."""
        if self._corpus is None:
            docs = entities.make_corpus(self.num_topics, self.num_docs, self.corpus_seed)
            for v in docs.values():
                v.setflags(write=False)
            self._corpus = docs
        return self._corpus

    @property
    def doc_feature_matrix(self) -> np.ndarray:
        """``[num_docs, num_topics + 1]`` float32: what the recommender sees of each document
        (RecSim's document embedding ``doc_features``, then ``doc_quality``)."""
        c = self.corpus
        return np.concatenate([c["doc_features"], c["doc_quality"][:, None]], axis=1).astype(np.float32)

    # -------------------------------------------------------------- specs
    def task_observation_spec(self) -> dict:
        """Spec of ``observation["obs"]``: documents, previous choice (slate position and document), previous
        consumed time."""
        return {
            DOC_FEATURES: tensor_spec.TensorSpec((self.num_docs, self.num_topics + 1), tf.float32, name=DOC_FEATURES),
            CHOICE: tensor_spec.BoundedTensorSpec((), tf.int32, minimum=0, maximum=self.slate_size, name=CHOICE),
            CLICKED: tensor_spec.BoundedTensorSpec((), tf.int32, minimum=0, maximum=self.num_docs, name=CLICKED),
            CONSUMED: tensor_spec.TensorSpec((), tf.float32, name=CONSUMED),
        }

    def action_spec(self):
        return tensor_spec.BoundedTensorSpec(
            (self.slate_size,), tf.int32, minimum=0, maximum=self.num_docs - 1, name="action"
        )

    def time_step_spec(self):
        return trial_time_step_spec(self.task_observation_spec(), self.action_spec())

    def config(self, num_users: int) -> dict:
        """The RecSim NG config dict of a batch of ``num_users`` users."""
        return {"num_users": int(num_users), "num_topics": self.num_topics, "num_docs": self.num_docs,
                "slate_size": self.slate_size}

    # -------------------------------------------------------------- hooks
    @abc.abstractmethod
    def _user(self, config: dict, choice_model_ctor):
        """The RecSim NG user entity for ``config``; its choice model must come from ``choice_model_ctor``
        (``choice_model_ctor(batch_shape, nochoice_logits)``)."""

    @abc.abstractmethod
    def _pins(self, task_vars: Mapping[str, tf.Variable]) -> dict:
        """``{distribution class name: [B, ...] value}`` pinning ``user.initial_state()``'s draws to the tasks."""

    @abc.abstractmethod
    def _response(self, user_response: Value) -> tuple[tf.Tensor, tf.Tensor]:
        """``(reward [B], consumed [B])`` float32 of a RecSim user response."""

    @abc.abstractmethod
    def _task_arrays(self, tasks: list[Task]) -> dict:
        """``{name: [B, ...] array}`` of the tasks' params (bound to variables in the environment)."""

    def _make_env(self, tasks: list[Task], seed: int) -> "RecSimEnvironment":
        return RecSimEnvironment(self, tasks, seed=seed)


def _pack(network_value) -> dict:
    """A RecSim ``NetworkValue`` as ``{variable: {field: tensor}}`` (random variables reduced to values)."""
    return {name: {f: tf.convert_to_tensor(v) for f, v in val.as_dict.items()} for name, val in network_value.items()}


def _unpack(packed) -> dict:
    return {name: Value(**fields) for name, fields in packed.items()}


class RecSimEnvironment(TrialEnvironment):
    """Batched RecSim NG users as a trial environment; row ``i`` is ``tasks[i]``. See the module docstring."""

    def __init__(self, dist: RecSimPopulation, tasks: list[Task], seed: int = 0):
        self._dist = dist
        self._num_users = len(tasks)
        self._slate_size = dist.slate_size
        self._num_docs = dist.num_docs
        self._obs_spec = dist.task_observation_spec()
        self._doc_matrix = tf.constant(dist.doc_feature_matrix)
        super().__init__([t.seed for t in tasks], dist.action_spec(), horizon=1,
                         episodes_per_trial=dist.interactions, seed=seed)
        self._task_vars = self._bind_task_arrays(dist._task_arrays(tasks))
        config = dist.config(self._num_users)
        self._recommender = entities.ServedSlateRecommender(config, dist.corpus)

        def choice_model_ctor(batch_shape, nochoice_logits):
            return entities.SlateMaskedChoiceModel(batch_shape, nochoice_logits, self._recommender)

        self._user = dist._user(config, choice_model_ctor)
        self._network = network_lib.Network(
            stories.simplified_recs_story(config, lambda _: self._user, lambda _: self._recommender)
        )
        b = self._num_users
        self._first = tf.Variable(True, trainable=False, name="first_interaction")
        self._choice = tf.Variable(tf.fill([b], self._slate_size), trainable=False, name="choice")
        self._consumed = tf.Variable(tf.zeros([b]), trainable=False, name="consumed")
        self._clicked = tf.Variable(tf.fill([b], self._num_docs), trainable=False, name="clicked")
        # The previous RecSim network value, shaped by one eager initial step.
        template = self._initial(tf.zeros([b, self._slate_size], tf.int32), tf.constant(0, tf.int64))
        self._net_vars = tf.nest.map_structure(
            lambda x: tf.Variable(tf.zeros_like(x), trainable=False), template
        )

    # ------------------------------------------------------------- RecSim
    @property
    def network(self) -> network_lib.Network:
        """The RecSim NG ``Network`` this environment steps."""
        return self._network

    @property
    def user_state(self) -> dict:
        """The users' current RecSim state fields ``{field: [B, ...]}`` (tests and diagnostics only)."""
        return {k: tf.identity(v) for k, v in self._net_vars["user state"].items()}

    def _initial(self, slate, counter):
        pins = self._dist._pins(self._task_vars)
        with self._recommender.serving(slate):
            with sampling.keyed_values(sampling.row_uniforms(self._keys, counter), pins=pins):
                return _pack(self._network.initial_step())

    def _next(self, slate, counter):
        previous = _unpack(tf.nest.map_structure(tf.identity, self._net_vars))
        with self._recommender.serving(slate):
            with sampling.keyed_values(sampling.row_uniforms(self._keys, counter)):
                return _pack(self._network.step(previous))

    # -------------------------------------------------------------- hooks
    def _task_observation_spec(self):
        return self._obs_spec

    def _task_arrays(self, tasks) -> dict:
        return self._dist._task_arrays(list(tasks))

    def _reset(self):
        self._first.assign(True)
        self._choice.assign(tf.fill([self._num_users], self._slate_size))
        self._consumed.assign(tf.zeros([self._num_users]))
        self._clicked.assign(tf.fill([self._num_users], self._num_docs))
        return super()._reset()

    def _observation(self):
        b = self._num_users
        docs = tf.broadcast_to(self._doc_matrix[None], [b] + self._doc_matrix.shape.as_list())
        return {DOC_FEATURES: docs, CHOICE: tf.identity(self._choice), CLICKED: tf.identity(self._clicked),
                CONSUMED: tf.identity(self._consumed)}

    def _begin_episode(self, counter):
        return self._observation()

    def _transition(self, action, h, counter):
        slate = tf.convert_to_tensor(action, tf.int32)
        value = tf.cond(self._first, lambda: self._initial(slate, counter), lambda: self._next(slate, counter))
        tf.nest.map_structure(lambda v, x: v.assign(x), self._net_vars, value)
        response = Value(**value["user response"])
        reward, consumed = self._dist._response(response)
        choice = tf.cast(response.get("choice"), tf.int32)
        doc = tf.gather(slate, tf.minimum(choice, self._slate_size - 1), batch_dims=1)
        self._choice.assign(choice)
        self._clicked.assign(tf.where(choice < self._slate_size, doc, self._num_docs))
        self._consumed.assign(consumed)
        self._first.assign(False)
        return reward, self._observation()
