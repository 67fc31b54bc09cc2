"""MQL configuration: one dataclass, documented fields, validated in ``__post_init__``."""

from __future__ import annotations

import dataclasses

from metarl_apps.core.config_fields import check_fields, config_error, is_int

SCORING = ("in_context", "offline")


@dataclasses.dataclass(frozen=True)
class MQLConfig:
    """Hyper-parameters of meta-Q-learning (Fakoor et al., ICLR 2020) for discrete actions and slates.

    Context network:
      cell: ``"gru"`` or ``"lstm"`` over the trial's ``(obs, prev_action, prev_reward, new_episode)`` inputs,
        or ``"set"``: a permutation-invariant transition-set context (deep sets, PEARL's encoder): an MLP of
        each transition ``(previous input, input)``, summed over the trial; the context is that sum divided
        by the number of transitions and by the trial length (see ``networks.py``).
      set_keys: ``"set"`` only: soft buckets of the keyed (linear-attention) read of the transition set
        (0 = none); see ``networks/set_context.py``.
      hidden_size: recurrent units (the context); for ``"set"``, the output size of the transition MLP.
      embed_sizes: dense ReLU layers before the recurrent cell (for ``"set"``: the transition MLP's hidden
        layers).
      trunk_sizes: dense ReLU layers between the context and the ``head_size`` layer (default none).
      head_size: one dense ReLU layer between the context and the linear Q head (0 = none). Its output is
        the feature vector on which the per-task Q head is adapted.
      context_length: H, the number of past transitions the context sees when training from replay (windows
        of H steps cut from stored trials, the recurrent state zero at the window start). ``None`` = whole
        trials (the acting policy always carries the context over the whole trial).
      slate: treat ``[k]`` integer actions as slates of k distinct items (one Q per item; the slate is the
        top-k items; Q(slate) = mean of its items' Q); ``None`` = ask the task family (``slate_actions``).
    Meta-training (DQN family):
      tasks_per_iteration: tasks rolled out (one trial each, epsilon-greedy) per iteration.
      max_train_tasks: the training population is capped at this many tasks (one replay buffer each).
      trials_per_task: capacity of each task's replay buffer, in trials (a ring: the oldest is overwritten).
      batch_size: replay sequences per gradient step; updates_per_iteration: gradient steps per iteration.
      learning_rate, max_grad_norm: Adam step and global-norm clipping.
      discount: gamma across the whole trial (inner-episode boundaries are not terminal).
      n_step: n of the n-step return target.
      double_q: select the bootstrap action with the online network, evaluate it with the target network.
      target_update_period: gradient steps between hard copies of the online network into the target.
      huber_delta: Huber loss threshold on the TD error (``None`` = squared error).
      reward_scale: rewards are multiplied by this for learning only.
      epsilon_start, epsilon_final, epsilon_decay_iterations: epsilon-greedy exploration, linear in the
        iteration index (so a resumed run continues the same schedule).
    Adaptation (propensity-weighted, proximal):
      adapt_steps, adapt_learning_rate: Adam steps on each new task's Q head.
      proximal_coef: lambda of ``lambda * ||theta - theta_meta||^2``.
      propensity_steps, propensity_learning_rate, propensity_l2: the logistic classifier separating a new
        task's contexts from meta-training contexts (full-batch Adam, L2 on the weights).
      max_weight: density-ratio weights are clipped to ``[0, max_weight]``.
      meta_trials: meta-training trials drawn from the replay for reweighting.
      adapt_env_seed: environment seed of the interactions ``adapt(tasks, budget)`` collects (distinct from
        evaluation seeds, so adaptation never sees the evaluation's draws).
    Scoring (what the scenario runner evaluates, ``policy_for``):
      scoring: ``"in_context"`` (default): the meta-trained greedy context policy adapts online inside the
        scored trial (every interaction counts). ``"offline"``: before the scored trial, ``logged_interactions``
        steps of each held-out task are logged by the baseline ``logging_policy`` (on environment seed
        ``adapt_env_seed``, never the evaluation's), the learner adapts on them with ``adapt_offline`` (no live
        interaction of its own), and the adapted policy plays the scored trial from its first step.
      logging_policy: a registered baseline that needs no fitting (e.g. ``random``, ``random_slate``).
      logged_interactions: logged steps per task (at most one trial).
    Bookkeeping:
      checkpoint_every, log_every: iterations between checkpoints / TensorBoard summaries.
    """

    cell: str = "gru"
    set_keys: int = 0
    hidden_size: int = 64
    embed_sizes: tuple[int, ...] = (64,)
    head_size: int = 64
    trunk_sizes: tuple[int, ...] = ()
    context_length: int | None = None
    slate: bool | None = None
    tasks_per_iteration: int = 64
    max_train_tasks: int = 1000
    trials_per_task: int = 4
    batch_size: int = 32
    updates_per_iteration: int = 4
    learning_rate: float = 1e-3
    max_grad_norm: float = 10.0
    discount: float = 0.99
    n_step: int = 1
    double_q: bool = True
    target_update_period: int = 100
    huber_delta: float | None = 1.0
    reward_scale: float = 1.0
    epsilon_start: float = 1.0
    epsilon_final: float = 0.05
    epsilon_decay_iterations: int = 200
    adapt_steps: int = 50
    adapt_learning_rate: float = 1e-2
    proximal_coef: float = 1.0
    propensity_steps: int = 200
    propensity_learning_rate: float = 0.05
    propensity_l2: float = 1e-3
    max_weight: float = 10.0
    meta_trials: int = 32
    adapt_env_seed: int = 7919
    scoring: str = "in_context"
    logging_policy: str = "random"
    logged_interactions: int = 50
    checkpoint_every: int = 50
    log_every: int = 10

    def __post_init__(self):
        def fail(field: str, rule: str):
            raise config_error(self, field, rule)

        if self.cell not in ("lstm", "gru", "set"):
            fail("cell", "must be 'gru', 'lstm' or 'set'")
        check_fields(self, (
            (("embed_sizes", "trunk_sizes"), "int_list"),
            (("hidden_size", "tasks_per_iteration", "max_train_tasks", "trials_per_task", "batch_size",
              "updates_per_iteration", "n_step", "target_update_period", "adapt_steps", "propensity_steps",
              "meta_trials", "checkpoint_every", "log_every", "logged_interactions"), "pos_int"),
            (("head_size", "set_keys", "epsilon_decay_iterations", "adapt_env_seed"), "nonneg_int"),
            (("learning_rate", "max_grad_norm", "reward_scale", "adapt_learning_rate", "propensity_learning_rate",
              "max_weight"), "pos_num"),
            (("discount", "epsilon_start", "epsilon_final"), "unit"),
            (("proximal_coef", "propensity_l2"), "nonneg_num"),
            ("huber_delta", "pos_num?", "must be a positive number, or null for the squared TD error"),
            ("double_q", "bool"),
        ))
        if self.context_length is not None and (not is_int(self.context_length) or self.context_length < 2):
            fail("context_length", "must be an integer >= 2 (transitions of context), or null for whole trials")
        if self.context_length is not None and self.context_length <= self.n_step:
            fail("context_length", f"must exceed n_step ({self.n_step}) so every window holds a full target")
        if self.scoring not in SCORING:
            fail("scoring", f"must be one of {', '.join(SCORING)}")
        if not isinstance(self.logging_policy, str) or not self.logging_policy:
            fail("logging_policy", "must be the name of a registered baseline (e.g. random, random_slate)")
        if self.slate is not None and not isinstance(self.slate, bool):
            fail("slate", "must be true, false or null (ask the task family)")

    def epsilon_at(self, iteration: int) -> float:
        """Exploration rate at (0-based) ``iteration``: linear from ``epsilon_start`` to ``epsilon_final``."""
        if self.epsilon_decay_iterations == 0:
            return float(self.epsilon_final)
        frac = min(1.0, iteration / self.epsilon_decay_iterations)
        return float(self.epsilon_start + frac * (self.epsilon_final - self.epsilon_start))
