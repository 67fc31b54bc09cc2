"""``recsys.latent_factor``: static latent-preference users (RecSim NG ``latent_variable_model_learning``).

Each task is one user whose hidden params are a static intent vector ``params["intent"]`` ``[T]`` drawn from
RecSim's Gaussian-mixture prior: a uniformly chosen topic ``k``, then ``intent ~ N(e_k, intent_variance · I)``.
The user model is RecSim NG's ``ModelLearningDemoUser`` unchanged, configured through its constructor:

* affinity ``a(d) = intent · doc_features(d)`` (``affinity="dot"``, a latent-factor model) or
  ``-‖intent - doc_features(d)‖`` (``"negative_euclidean"``, RecSim's default);
* choice: multinomial logit over the slate with logits ``a(d) + 2 + satisfaction`` and a no-click option of
  logit ``no_click_logit``; the reward is the click (1 if a document is chosen, else 0);
* state: the intent never changes; the satisfaction starts at ``initial_satisfaction`` and evolves as
  ``s ← satisfaction_sensitivity · s + (best affinity in this slate - best in the previous one) + N(0, 0.01²)``
  (the first slate's improvement is measured from 0, RecSim's convention) — users warm to a recommender that
  improves and cool off when it gets worse.
"""

from __future__ import annotations

import functools
from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from recsim_ng.applications.latent_variable_model_learning import user as lv_user
from recsim_ng.entities.choice_models import affinities
from tf_agents.policies import tf_policy
from tf_agents.trajectories import policy_step

from metarl_apps.adapters.recsys import base
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task

FAMILY = "recsys.latent_factor"
AFFINITIES = ("dot", "negative_euclidean")


class LatentFactorUsers(base.RecSimPopulation):
    """Users with static latent preferences (RecSim NG's ``ModelLearningDemoUser``); each new user is a task.

    Args:
      num_topics: topics T (intent and document embeddings are T-dimensional).
      num_docs: candidate documents D (the same corpus model as ``recsys.interest_evolution``).
      slate_size: documents per slate K (<= num_docs).
      interactions: slates served per trial (the largest adaptation budget).
      intent_variance: variance of a user's intent around its topic's one-hot (RecSim: 0.1).
      affinity: ``"dot"`` (latent factor) or ``"negative_euclidean"``.
      no_click_logit: logit of the no-click option (higher -> fewer clicks).
      initial_satisfaction: satisfaction at the start of a trial (RecSim: 5.0).
      satisfaction_sensitivity: decay of the satisfaction per step (RecSim: 0.8).
      corpus_seed: seed of the corpus.
    """

    family = FAMILY

    def __init__(self, num_topics: int = 5, num_docs: int = 30, slate_size: int = 3, interactions: int = 50,
                 intent_variance: float = 0.1, affinity: str = "dot", no_click_logit: float = 4.0,
                 initial_satisfaction: float = 0.0, satisfaction_sensitivity: float = 0.8, corpus_seed: int = 0):
        self.intent_variance = base.finite_number(FAMILY, "intent_variance", intent_variance, low=0.0, low_open=True)
        if affinity not in AFFINITIES:
            raise MetaRLInputError(f"{FAMILY}: parameter affinity={affinity!r} must be one of {list(AFFINITIES)}")
        self.affinity = affinity
        self.no_click_logit = base.finite_number(FAMILY, "no_click_logit", no_click_logit)
        self.initial_satisfaction = base.finite_number(FAMILY, "initial_satisfaction", initial_satisfaction)
        self.satisfaction_sensitivity = base.finite_number(
            FAMILY, "satisfaction_sensitivity", satisfaction_sensitivity, low=0.0
        )
        super().__init__(num_topics=num_topics, num_docs=num_docs, slate_size=slate_size, interactions=interactions,
                         corpus_seed=corpus_seed, intent_variance=self.intent_variance, affinity=self.affinity,
                         no_click_logit=self.no_click_logit, initial_satisfaction=self.initial_satisfaction,
                         satisfaction_sensitivity=self.satisfaction_sensitivity)

    # -------------------------------------------------------------- tasks
    def _sample_params(self, stream: np.random.Generator, split: str) -> dict:
        # RecSim's GMMVector prior: uniform mixture over the topics' one-hots, scale sqrt(intent_variance).
        topic = stream.integers(self.num_topics)
        noise = np.sqrt(self.intent_variance) * stream.standard_normal(self.num_topics)
        intent = np.eye(self.num_topics)[topic] + noise
        return {"intent": intent.astype(np.float32)}

    def _task_arrays(self, tasks: list[Task]) -> dict:
        return {"intent": np.stack([t.params["intent"] for t in tasks]).astype(np.float32)}

    # -------------------------------------------------------------- model
    def affinity_model(self, num_users: int) -> affinities.TargetPointSimilarity:
        """RecSim's affinity entity of this population for a batch of ``num_users``."""
        return affinities.TargetPointSimilarity((num_users,), self.num_topics, self.affinity)

    def _user(self, config: dict, choice_model_ctor):
        num_users = config["num_users"]
        no_click = tf.fill([num_users], self.no_click_logit)
        return lv_user.ModelLearningDemoUser(
            config,
            affinity_model_ctor=functools.partial(affinities.TargetPointSimilarity, similarity_type=self.affinity),
            choice_model_ctor=lambda batch_shape, _logits: choice_model_ctor(batch_shape, no_click),
            user_intent_variance=self.intent_variance,
            satisfaction_sensitivity=tf.fill([num_users], self.satisfaction_sensitivity),
            initial_satisfication=self.initial_satisfaction,
        )

    def _pins(self, task_vars: Mapping[str, tf.Variable]) -> dict:
        return {"MixtureSameFamily": tf.convert_to_tensor(task_vars["intent"])}

    def _response(self, user_response) -> tuple[tf.Tensor, tf.Tensor]:
        click = tf.cast(tf.cast(user_response.get("choice"), tf.int32) < self.slate_size, tf.float32)
        return click, click

    # -------------------------------------------------------------- oracle
    def oracle_policy(self, tasks: list[Task]) -> "LatentFactorOracle":
        """The oracle: knows each user's intent; serves the ``slate_size`` documents of highest affinity, which
        maximises the click probability of every slate (greedy). See :class:`LatentFactorOracle`."""
        return LatentFactorOracle(self, tasks)


class LatentFactorOracle(tf_policy.TFPolicy):
    """Knows each user's intent; serves the top-``slate_size`` documents by affinity, every step (stateless).

    The click probability ``Σ e^{a_i + 2 + s} / (Σ e^{a_i + 2 + s} + e^{no_click})`` increases in every slot's
    affinity whatever the satisfaction ``s``, so this slate is greedy-optimal; it also keeps the best slate
    utility at its maximum, so it never lowers the satisfaction.
    """

    def __init__(self, dist: LatentFactorUsers, tasks: list[Task], name: str = "oracle"):
        self._num_users = len(tasks)
        self._slate_size = dist.slate_size
        intent = tf.constant(np.stack([t.params["intent"] for t in tasks]).astype(np.float32))
        docs = tf.broadcast_to(tf.constant(dist.corpus["doc_features"])[None],
                               [self._num_users, dist.num_docs, dist.num_topics])
        scores = dist.affinity_model(self._num_users).affinities(intent, docs).get("affinities")  # [B, D]
        self._slates = tf.math.top_k(scores, dist.slate_size).indices
        super().__init__(dist.time_step_spec(), dist.action_spec(), name=name)

    def _action(self, time_step, policy_state, seed):
        return policy_step.PolicyStep(tf.identity(self._slates), policy_state, ())

    def _distribution(self, time_step, policy_state):
        return policy_step.PolicyStep(tfp.distributions.Deterministic(tf.identity(self._slates)), policy_state, ())
