"""RecSim NG user populations as task distributions: each new user is a task (cold-start personalisation).

Two families, both registered in :data:`metarl_apps.core.registry.TASK_FAMILIES`:

``recsys.interest_evolution`` (:class:`InterestEvolutionUsers`)
    RecSim NG's ``InterestEvolutionUser`` (``recsys_partially_observable_rl``): topic interests that drift
    towards (high-quality) or away from (low-quality) what the user consumes; multinomial-logit choice over the
    slate with a no-click option; **reward = consumed time** ``sigmoid(-quality) · length`` of the chosen
    document (0 on no-click). Task params: ``{"interests": float32 [num_topics]}``, the user's initial
    interests, drawn from RecSim's prior ``N(0, I)``.

    ============================  =======  ====================================================================
    parameter                     default  meaning
    ============================  =======  ====================================================================
    ``num_topics``                5        T: dimension of interests and document embeddings
    ``num_docs``                  30       D: candidate documents (one static corpus per population)
    ``slate_size``                3        K: documents per slate, ``1 <= K <= D``
    ``interactions``              50       slates per trial (= inner episodes per trial, the max budget)
    ``interest_step_size``        0.02     interest drift per click (RecSim's default 0.1 makes the greedy
                                           oracle fall below random within ~30 interactions)
    ``interest_noise``            0.0      std of Gaussian noise on each interest update (0 = none)
    ``no_click_mass``             0.0      logit of the no-click option (RecSim's ``no_click_mass``)
    ``corpus_seed``               0        seed of RecSim's ``CorpusWithTopicAndQuality``
    ============================  =======  ====================================================================

``recsys.latent_factor`` (:class:`LatentFactorUsers`)
    RecSim NG's ``ModelLearningDemoUser`` (``latent_variable_model_learning``): a **static** latent intent,
    affinity ``intent · doc_features`` (or negative Euclidean distance), multinomial-logit choice with logits
    ``affinity + 2 + satisfaction`` against a no-click logit, a satisfaction that rises when slates improve and
    decays otherwise; **reward = click** (1/0). Task params: ``{"intent": float32 [num_topics]}`` drawn from
    RecSim's Gaussian mixture prior (a random topic's one-hot plus ``N(0, intent_variance · I)``).

    ============================  ==========  =================================================================
    parameter                     default     meaning
    ============================  ==========  =================================================================
    ``num_topics``                5           T
    ``num_docs``                  30          D (same corpus model and seed semantics as above)
    ``slate_size``                3           K, ``1 <= K <= D``
    ``interactions``              50          slates per trial
    ``intent_variance``           0.1         spread of intents around their topic (RecSim's default)
    ``affinity``                  ``"dot"``   ``"dot"`` (latent factor) or ``"negative_euclidean"``
    ``no_click_logit``            4.0         logit of the no-click option
    ``initial_satisfaction``      0.0         satisfaction at trial start (RecSim: 5.0, which makes every
                                              first slate a near-certain click whatever it holds)
    ``satisfaction_sensitivity``  0.8         per-step decay of the satisfaction (RecSim's default)
    ``corpus_seed``               0           seed of the corpus
    ============================  ==========  =================================================================

Bad parameters raise a one-line :class:`~metarl_apps.core.errors.MetaRLInputError` naming the field
(e.g. ``recsys.interest_evolution: parameter slate_size=40 must be at most num_docs=30``).

**Trial structure.** One interaction (slate served, response observed) is one inner episode of horizon 1;
``episodes_per_trial = interactions``; ``budget_unit = "interactions"``. The user's latent state (interests,
satisfaction) persists across the inner episodes of a trial and is reset to the task's at each trial start.

**Observation** (what a real recommender sees — never the latent interests/intent): the trial observation of
:mod:`metarl_apps.core.env` with ``observation["obs"]`` a dict

* ``"doc_features"``: float32 ``[num_docs, num_topics + 1]``, row ``d`` = document ``d``'s RecSim embedding
  ``doc_features`` (a noisy topic one-hot, what the user's affinity model compares with) followed by its
  ``doc_quality``; constant (static corpus; same for every user of the population);
* ``"choice"``: int32 scalar in ``[0, slate_size]``: position in the previous slate of the document the user
  chose, ``slate_size`` for no-click (and on the first step of a trial);
* ``"clicked"``: int32 scalar in ``[0, num_docs]``: the index of that chosen document, ``num_docs`` for no-click
  (and on the first step) — the same response as ``choice``, as a document id, so a learner that encodes the
  observation sees *which* document was clicked without having to learn ``prev_action[choice]``;
* ``"consumed"``: float32 scalar: the previous response's consumed time (interest evolution; 0 on no-click)
  or click indicator (latent factor; 1.0 on a click, 0 on no-click); 0 on the first step of a trial.

``observation["prev_action"]`` is the previous slate, ``observation["prev_reward"]`` its reward.

**Action**: ``BoundedTensorSpec([slate_size], int32, 0, num_docs - 1)``: the document indices of the slate,
in position order. Duplicates are deduplicated deterministically: a position whose document already appears at
an earlier position is an empty slot (never chosen; the user sees each document once), so a slate with
repeats is a smaller slate. ``choice`` still refers to positions.

**Reward** (``time_step.reward``): the previous slate's consumed time (interest evolution) or click (latent
factor).

**Oracles** (``dist.oracle_policy(tasks)``): know each user's latent state and serve the slate of maximal
expected *immediate* reward (greedy, myopic): see :class:`InterestEvolutionOracle`, :class:`LatentFactorOracle`.

**Simulation.** ``make_env(users)`` steps RecSim NG's own entities through its ``simplified_recs_story``
``Network`` inside the graph, batched over users (see :mod:`.base`); RecSim's edward2 random variables take
per-user keyed values (see :mod:`.sampling`), so a user's trajectory is the same alone or in any batch and for
any policy that serves the same slates.
"""

from metarl_apps.adapters.recsys.base import RecSimEnvironment, RecSimPopulation
from metarl_apps.adapters.recsys.interest_evolution import InterestEvolutionOracle, InterestEvolutionUsers
from metarl_apps.adapters.recsys.latent_factor import LatentFactorOracle, LatentFactorUsers

__all__ = [
    "InterestEvolutionOracle",
    "InterestEvolutionUsers",
    "LatentFactorOracle",
    "LatentFactorUsers",
    "RecSimEnvironment",
    "RecSimPopulation",
]
