"""MAML configuration: one dataclass, documented fields, validated in ``__post_init__``."""

from __future__ import annotations

import dataclasses

from metarl_apps.core.config_fields import check_fields, config_error


@dataclasses.dataclass(frozen=True)
class MAMLConfig:
    """Hyper-parameters of MAML (Finn et al. 2017), first or second order, optionally with Meta-SGD rates.

    Inner loop (adaptation):
      inner_lr: step size of the inner gradient steps (the initial value of the learned rates with
        ``learn_inner_lr``).
      inner_steps: inner gradient steps per task during meta-training. ``0`` (allowed only with the plain
        second-order objective) makes the meta-objective the loss at the initial parameters, i.e. multi-task
        pretraining — the non-adaptive baseline.
      first_order: first-order MAML: the inner gradients are treated as constants (``tf.stop_gradient``), so
        the outer gradient drops the Hessian term. Same code path as second order.
      learn_inner_lr: Meta-SGD (Li et al. 2017): one learned inner rate per parameter entry, initialised to
        ``inner_lr`` and meta-trained with the initial parameters.
    Outer loop:
      outer_lr: Adam step size of the meta-update.
      meta_batch_size: tasks per meta-update (adapted together, as one batched computation).
    Network:
      hidden_sizes: hidden layers of the functional MLP.
      activation: hidden activation of the RL policy MLP (the sinusoid network is always ReLU).
    Objective (``algorithm: maml``):
      objective: ``"policy_gradient"`` (default; MAML for RL as in the paper: a stochastic policy adapted by
        policy-gradient steps) or ``"reward_model"`` (MeLU-style, Lee et al. 2019, for discrete actions and
        recommender slates): the network outputs one predicted reward per action / item, the agent serves the
        argmax action or the top-``k`` items, and both the inner and the outer loss are the squared error
        between the observed reward and the prediction for what was served (the mean of the slate items'
        predictions for a slate). The outer loss is exact second-order MAML on that regression.
      post_episodes: ``reward_model`` only: inner episodes played with the adapted parameters whose squared
        errors form the outer loss (MeLU's query set; default 1). On horizon-1 families (a recommender slate,
        a bandit pull) one episode is one interaction, so 1 gives the outer loss a single sample per task.
      explore_epsilon: ``reward_model`` only: during meta-training a row serves a uniformly random action /
        slate with this probability (the adapted policy always serves its argmax / top-k).
      scoring: ``reward_model`` only: ``"per_item"`` (default; one MLP over the whole encoded observation, one
        output per action value / item id) or ``"item_features"`` (one shared MLP scores each item from its own
        features ``obs["doc_features"]`` and the context — the last chosen item's features and the other
        observation leaves; recommender families). With ``item_features`` an inner step on one user's clicks
        generalises across similar items.
    Reinforcement learning (``algorithm: maml``; ignored by the supervised sinusoid code):
      estimator: inner policy-gradient loss: ``"reinforce"`` (log-prob times a constant advantage; the
        outer gradient misses the term from the sampling distribution's dependence on θ), ``"lvc"`` (ProMP's
        low-variance curvature: per-step score terms, the default) or ``"dice"`` (DiCE, Foerster et al. 2018,
        with a baseline: unbiased second-order terms, whose variance grows with the horizon squared — on
        100-step navigation episodes its meta-gradient norm exploded and training diverged).
      baseline: ``"linear"`` (garage/ProMP ``LinearFeatureBaseline``: ridge regression of the returns on
        ``[obs, obs², t, t², t³, 1]``, fitted per task on the episode it is used for) or ``"zero"`` (needed on
        horizon-1 families: a per-task fit on one step is exact and leaves no advantage).
      discount: γ of the reward-to-go within an inner episode.
      normalize_advantages: standardise advantages per task (inner) and per batch (outer).
      outer_epochs: PPO-clip passes over each meta-batch (ProMP-style outer step; each recomputes the
        adaptation, so second-order terms are exact at every pass).
      clip_ratio: PPO clipping ε of the post-adaptation likelihood ratio.
      max_grad_norm: global-norm clipping of the meta-gradient.
      init_only: never update θ: ``meta_train`` only builds the random initialisation (the
        "random init + K inner steps" baseline, trained 0 iterations).
      checkpoint_every, log_every: iterations between checkpoints / TensorBoard summaries.
    Bookkeeping:
      seed: seeds parameter initialisation and the training task stream.
    """

    inner_lr: float = 0.01
    inner_steps: int = 1
    first_order: bool = False
    learn_inner_lr: bool = False
    outer_lr: float = 1e-3
    meta_batch_size: int = 25
    hidden_sizes: tuple[int, ...] = (40, 40)
    seed: int = 0
    activation: str = "tanh"
    objective: str = "policy_gradient"
    post_episodes: int = 1
    explore_epsilon: float = 0.1
    scoring: str = "per_item"
    estimator: str = "lvc"
    baseline: str = "linear"
    discount: float = 0.99
    normalize_advantages: bool = True
    outer_epochs: int = 5
    clip_ratio: float = 0.2
    max_grad_norm: float = 1.0
    init_only: bool = False
    checkpoint_every: int = 50
    log_every: int = 10

    def __post_init__(self):
        def fail(field: str, rule: str):
            raise config_error(self, field, rule)

        check_fields(self, (
            (("inner_lr", "outer_lr", "clip_ratio", "max_grad_norm"), "pos_num"),
            (("first_order", "learn_inner_lr", "normalize_advantages", "init_only"), "bool"),
            ("inner_steps", "nonneg_int"),
            (("meta_batch_size", "post_episodes", "outer_epochs", "checkpoint_every", "log_every"), "pos_int"),
            ("hidden_sizes", "int_list"),
            ("seed", "nonneg_int"),
            (("explore_epsilon", "discount"), "unit"),
        ))
        if self.inner_steps == 0 and self.first_order:
            fail("inner_steps", "must be >= 1 with first_order=True (zero inner steps leaves no inner gradient)")
        if self.inner_steps == 0 and self.learn_inner_lr:
            fail("inner_steps", "must be >= 1 with learn_inner_lr=True (zero inner steps leaves no rate to learn)")
        if self.activation not in ("tanh", "relu", "elu", "sigmoid"):
            fail("activation", "must be one of 'tanh', 'relu', 'elu', 'sigmoid'")
        if self.objective not in ("policy_gradient", "reward_model"):
            fail("objective", "must be 'policy_gradient' or 'reward_model'")
        if self.post_episodes > 1 and self.objective != "reward_model":
            fail("post_episodes", "must be 1 unless objective is 'reward_model' (the PPO outer loss takes one episode)")
        if self.scoring not in ("per_item", "item_features"):
            fail("scoring", "must be 'per_item' or 'item_features'")
        if self.scoring == "item_features" and self.objective != "reward_model":
            fail("scoring", "'item_features' scores items for a reward model: set objective 'reward_model' too")
        if self.estimator not in ("reinforce", "lvc", "dice"):
            fail("estimator", "must be 'reinforce', 'lvc' or 'dice'")
        if self.baseline not in ("linear", "zero"):
            fail("baseline", "must be 'linear' or 'zero'")
