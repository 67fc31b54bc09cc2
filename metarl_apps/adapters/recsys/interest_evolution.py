"""``recsys.interest_evolution``: RecSim NG's interest-evolution users (``recsys_partially_observable_rl``).

Each task is one user, whose hidden params are the initial topic interests ``params["interests"]`` ``[T]``
drawn from RecSim's prior ``N(0, I)``. The user model is RecSim NG's ``InterestEvolutionUser`` unchanged:

* choice: multinomial logit over the slate with logits ``-‖interests - doc_features‖ + 2`` and a no-click
  option of logit ``no_click_mass``;
* response: consumed time ``sigmoid(-doc_quality) · doc_length`` of the chosen document (reward; 0 on no-click);
* state: after a click the interests move towards the consumed document, ``interest += interest_step_size ·
  doc_quality · (doc_features - interest)`` (+ ``N(0, interest_noise²)`` if set), then every step softly
  saturates them at ±20 (``4·10·(sigmoid(x/10) - 0.5)``). Low-quality documents are consumed longer but push
  interests away: engagement now versus later.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from recsim_ng.applications.recsys_partially_observable_rl import user as ie_user
from recsim_ng.core import value as value_lib
from recsim_ng.entities.choice_models import affinities
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step
from tf_agents.trajectories import time_step as ts

from metarl_apps.adapters.recsys import base, entities, sampling
from metarl_apps.core.env import OBS, PREV_ACTION
from metarl_apps.core.task import Task

FAMILY = "recsys.interest_evolution"
Value = value_lib.Value

#: RecSim NG's ``InterestEvolutionUser`` adds this to every document's affinity before the choice.
AFFINITY_OFFSET = 2.0


class InterestEvolutionUsers(base.RecSimPopulation):
    """Users of RecSim NG's interest-evolution model; each new user is a task.

    Args:
      num_topics: topics T (document embeddings and user interests are T-dimensional).
      num_docs: candidate documents D (one static corpus per population).
      slate_size: documents per slate K (<= num_docs).
      interactions: slates served per trial (the largest adaptation budget).
      interest_step_size: how far a click moves the interests towards the consumed document (RecSim: 0.1).
      interest_noise: standard deviation of the Gaussian noise added to each interest update (0: none).
      no_click_mass: logit of the no-click option (RecSim's ``no_click_mass``; higher -> fewer clicks).
      corpus_seed: seed of the corpus (RecSim's ``CorpusWithTopicAndQuality``).
    """

    family = FAMILY

    def __init__(self, num_topics: int = 5, num_docs: int = 30, slate_size: int = 3, interactions: int = 50,
                 interest_step_size: float = 0.02, interest_noise: float = 0.0, no_click_mass: float = 0.0,
                 corpus_seed: int = 0):
        self.interest_step_size = base.finite_number(FAMILY, "interest_step_size", interest_step_size, low=0.0)
        self.interest_noise = base.finite_number(FAMILY, "interest_noise", interest_noise, low=0.0)
        self.no_click_mass = base.finite_number(FAMILY, "no_click_mass", no_click_mass)
        super().__init__(num_topics=num_topics, num_docs=num_docs, slate_size=slate_size, interactions=interactions,
                         corpus_seed=corpus_seed, interest_step_size=self.interest_step_size,
                         interest_noise=self.interest_noise, no_click_mass=self.no_click_mass)

    # -------------------------------------------------------------- tasks
    def _sample_params(self, stream: np.random.Generator, split: str) -> dict:
        # RecSim's initial interest distribution: N(0, I) (ControlledLinearScaledGaussianStateModel, scale 1).
        return {"interests": stream.standard_normal(self.num_topics).astype(np.float32)}

    def _task_arrays(self, tasks: list[Task]) -> dict:
        return {"interests": np.stack([t.params["interests"] for t in tasks]).astype(np.float32)}

    # -------------------------------------------------------------- model
    def _user(self, config: dict, choice_model_ctor):
        return ie_user.InterestEvolutionUser(
            config,
            choice_model_ctor=choice_model_ctor,
            no_click_mass=self.no_click_mass,
            interest_step_size=self.interest_step_size,
            interest_update_noise_scale=self.interest_noise or None,
        )

    def _pins(self, task_vars: Mapping[str, tf.Variable]) -> dict:
        return {"MultivariateNormalLinearOperator": tf.convert_to_tensor(task_vars["interests"])}

    def _response(self, user_response) -> tuple[tf.Tensor, tf.Tensor]:
        # RecSim's ConsumedTimeAsRewardMetrics: consumed_time is -1 on no-click; the reward clips it at 0.
        consumed = tf.maximum(tf.cast(user_response.get("consumed_time"), tf.float32), 0.0)
        return consumed, consumed

    # -------------------------------------------------------------- oracle
    def oracle_policy(self, tasks: list[Task]) -> "InterestEvolutionOracle":
        """The oracle: knows each user's current interests; serves the slate of maximal expected immediate
        consumed time (greedy, myopic — not the long-run optimum). See :class:`InterestEvolutionOracle`."""
        return InterestEvolutionOracle(self, tasks)


def best_assortment(weights: tf.Tensor, revenue: tf.Tensor, no_click_weight: tf.Tensor, k: int,
                    iterations: int = 40) -> tf.Tensor:
    """The set of at most ``k`` documents maximising multinomial-logit expected revenue, per row.

    ``E(S) = Σ_S w·r / (w0 + Σ_S w)``. ``E(S) >= λ`` iff ``Σ_S w (r - λ) >= λ w0``, so the optimum ``λ*`` is the
    root of ``g(λ) = top-k sum of (w (r - λ))⁺ - λ w0`` (decreasing); bisection finds it and the top-k
    documents by ``w (r - λ)`` (positive terms only) at the lower bracket achieve at least it.

    Args:
      weights: ``[B, D]`` positive ``exp(logit)`` of every document.
      revenue: ``[B, D]`` or ``[D]`` non-negative reward if chosen.
      no_click_weight: ``[B]`` ``exp(no-click logit)``.
      k: slate size.

    Returns:
      ``[B, k]`` int32 document indices; when fewer than ``k`` documents help, the slate repeats its best
      document in the remaining slots (repeats are empty slots, see :func:`.entities.valid_slots`).
    """
    revenue = tf.broadcast_to(revenue, tf.shape(weights))
    w0 = no_click_weight[:, None]

    def g(lam):
        terms = tf.nn.relu(weights * (revenue - lam[:, None]))
        return tf.reduce_sum(tf.math.top_k(terms, k).values, axis=-1) - lam * w0[:, 0]

    lo = tf.zeros_like(w0[:, 0])
    hi = tf.reduce_max(revenue, axis=-1)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        up = g(mid) >= 0.0
        lo, hi = tf.where(up, mid, lo), tf.where(up, hi, mid)
    terms = weights * (revenue - lo[:, None])
    top = tf.math.top_k(terms, k)
    idx = top.indices
    useful = top.values > 0.0
    useful = tf.logical_or(useful, tf.range(k)[None, :] == 0)  # always serve the best document
    return tf.where(useful, idx, idx[:, :1])


class InterestEvolutionOracle(tf_policy.TFPolicy):
    """Knows each user's latent interests; serves the greedy-optimal slate (max expected consumed time now).

    It tracks the interests through the trial with RecSim NG's own ``InterestEvolutionUser.next_state`` applied
    to the observed previous slate (``prev_action``) and response (``choice``, ``consumed``) — exact when
    ``interest_noise == 0`` (the default); with noise it tracks the noise-free update. Its policy state is the
    current interests ``[B, T]``, reset to the task's on the first step of every trial. Greedy and myopic:
    long-run better policies (that avoid low-quality documents to keep interests healthy) can beat it.
    """

    def __init__(self, dist: InterestEvolutionUsers, tasks: list[Task], name: str = "oracle"):
        self._dist = dist
        self._num_users = len(tasks)
        interests = np.stack([t.params["interests"] for t in tasks]).astype(np.float32)
        self._interests = tf.constant(interests)
        corpus = dist.corpus
        config = dist.config(self._num_users)
        self._recommender = entities.ServedSlateRecommender(config, corpus)

        def choice_model_ctor(batch_shape, nochoice_logits):
            return entities.SlateMaskedChoiceModel(batch_shape, nochoice_logits, self._recommender)

        self._user = dist._user(config, choice_model_ctor)
        # Affinity of each user to every document: RecSim's own affinity model with all D docs as one "slate".
        self._affinity = affinities.TargetPointSimilarity((self._num_users,), dist.num_docs, "negative_euclidean")
        self._doc_features = tf.constant(corpus["doc_features"])
        revenue = corpus["doc_length"] / (1.0 + np.exp(corpus["doc_quality"]))  # sigmoid(-quality) * length
        self._doc_revenue = tf.constant(revenue.astype(np.float32))
        state_spec = {"interests": tensor_spec.TensorSpec((dist.num_topics,), tf.float32, name="interests")}
        super().__init__(dist.time_step_spec(), dist.action_spec(), policy_state_spec=state_spec,
                         automatic_state_reset=False, name=name)

    def _get_initial_state(self, batch_size):
        static = tf.get_static_value(batch_size)
        if static is not None and int(static) != self._num_users:
            raise ValueError(f"oracle built for {self._num_users} users, asked for a batch of {int(static)}")
        return {"interests": tf.identity(self._interests)}

    def _current_interests(self, time_step, policy_state):
        obs = time_step.observation
        previous = policy_state["interests"]
        choice = tf.cast(obs[OBS][base.CHOICE], tf.int32)
        clicked = choice < self._dist.slate_size
        # RecSim's consumed_time is -1 on no-click (that is what freezes the interests).
        consumed = tf.where(clicked, obs[OBS][base.CONSUMED], -1.0)
        state = Value(**{"interest.state": previous})
        response = Value(choice=choice, consumed_time=consumed)
        with self._recommender.serving(obs[PREV_ACTION]):
            with sampling.keyed_values(None, mode="mean"):
                slate = self._recommender.slate_docs()
                updated = tf.convert_to_tensor(self._user.next_state(state, response, slate).get("interest.state"))
        first = tf.equal(time_step.step_type, ts.StepType.FIRST)
        return tf.where(first[:, None], self._interests, updated)

    def _action(self, time_step, policy_state, seed):
        interests = self._current_interests(time_step, policy_state)
        docs = tf.broadcast_to(self._doc_features[None], [self._num_users] + self._doc_features.shape.as_list())
        logits = self._affinity.affinities(interests, docs).get("affinities") + AFFINITY_OFFSET
        w0 = tf.fill([self._num_users], float(np.exp(self._dist.no_click_mass)))
        slate = best_assortment(tf.exp(logits), self._doc_revenue, w0, self._dist.slate_size)
        return policy_step.PolicyStep(slate, {"interests": interests}, ())

    def _distribution(self, time_step, policy_state):
        step = self._action(time_step, policy_state, seed=None)
        return policy_step.PolicyStep(tfp.distributions.Deterministic(step.action), step.state, ())
