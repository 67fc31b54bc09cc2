"""RL² configuration: one dataclass, documented fields, validated in ``__post_init__``."""

from __future__ import annotations

import dataclasses
import math

from metarl_apps.core.config_fields import KINDS, check_fields, config_error


@dataclasses.dataclass(frozen=True)
class RL2Config:
    """Hyper-parameters of RL² trained with PPO.

    Network:
      cell: ``"lstm"``, ``"gru"`` or ``"set"`` (the permutation-invariant transition-set memory of
        ``networks/set_context.py``: a running sum of an MLP of each transition; for tasks whose history
        is a bag of transitions, e.g. tabular MDPs).
      set_keys: ``"set"`` only: soft buckets of the keyed (linear-attention) read of the transition set
        (0 = none).
      set_normalize_keyed: ``"set"`` with ``set_keys`` only: also read the keyed memory divided by its own
        mass (the mean of the transition MLP over the current bucket; O(1) however often the bucket was
        visited, where the default read, divided by the trial length, is O(visits / trial length)).
      set_action_reads: ``"set"`` only, one discrete action per step: a second memory sums what each input
        brought (its encoding without the previous action: the reward, the observation reached) into the bucket
        of the action that brought it, and every action's logit gets a score from one scorer shared by the
        actions over ``[that action's read, the memory]`` (its read: its mean content, its count / T and
        1 / (1 + count); ``networks/set_context.ActionBuckets``) — e.g. a bandit arm is scored by its own
        success rate and pull count, by the same function for every arm.
      compute_dtype: ``"float32"`` (default) or ``"bfloat16"`` (``"set"`` only): the set memory's dense layers
        (transition MLP, readout, heads) compute in bfloat16 while the weights, the optimizer, the running sums,
        the keyed attention and the losses stay float32 (Keras' ``mixed_bfloat16``). 10-20 % faster PPO
        iterations on a CPU with native bfloat16 (AMX / AVX512-BF16; bench/README.md), slower on one without;
        results differ from float32 at bfloat16 rounding (learning check: bench/README.md). Checkpoints
        and exported policies hold float32 weights either way.
      hidden_size: recurrent units (``"set"``: output size of the transition MLP).
      embed_sizes: dense ReLU layers before the recurrent cell (``"set"``: the transition MLP's hidden layers).
      value_network: ``"shared"`` (default: the value head reads the policy's memory) or ``"separate"``
        (LSTM/GRU: the value head has its own embedding and recurrent cell of the same sizes, as the RL² paper's
        recurrent baseline; the value loss then cannot reshape the policy's memory; ~2x the network compute).
      privileged_value: the value head also reads the task's hidden parameters (``dist.task_features``: a
        bandit's arm means, an MDP's tables, a user's interests) through one dense ReLU layer — an asymmetric
        critic, in training only. The policy never sees them (its logits do not depend on them; acting and the
        exported policy work without them); the advantages it trains on are then measured against the return
        expected *for this task* from this history, not against an average over the tasks the history fits
        (meant to take the task-to-task spread of returns out of the advantages' noise; on k=5, n=100 bandits
        it left the result level: README). Families whose parameters are not real-valued (game levels)
        cannot use it.
      expected_rewards: the returns and advantages PPO trains on use each step's *expected* reward given the
        task and the current state and action (the environment's own mean, e.g. a bandit arm's success
        probability) in place of the drawn reward — a Rao-Blackwellised return, unbiased for the same objective
        with the reward draws' noise integrated out. The policy still observes the drawn rewards (acting, the
        memory, evaluation and the exported policy are unchanged); the training metric ``trial_return`` stays
        the drawn one. Training-time privileged information like ``privileged_value``; families whose
        environment does not define expected rewards (``TrialEnvironment._expected_reward``: bandits and tabular
        MDPs do) are refused.
      head_hidden: 0 (default: the policy and value heads are linear in the memory) or the width of one dense
        ReLU layer per head over ``[memory, encoded current observation]``: the heads can then read what the
        memory holds about the current observation (a tabular MDP's estimates for the current state) instead
        of the recurrent cell having to select it at every step.
      slate: treat ``[k]`` integer actions as slates of k distinct items (Plackett-Luce over one score per
        item) instead of k independent categoricals; ``None`` = ask the task family (``slate_actions``).
        Default False: on recsys.interest_evolution (1000 iterations, 128 users/iteration) Plackett-Luce
        collapsed to a near-fixed slate (37.7 at K=50) while independent slots reached 40.6-40.8.
      scoring: ``"per_item"`` (default; the policy head has one output per item id) or ``"item_features"``
        (families whose ``obs["doc_features"]`` gives every item's features, e.g. recommender slates: one
        shared scorer over the memory and each item's features; what is learnt about one item carries over
        to similar items).
      prior: ``"none"`` (default) or ``"global_mlp"`` (slate families): fit the ``global_mlp`` baseline
        (a population reward model, config ``prior_config``) on the training users before meta-training and
        add ``prior_scale * its score`` to every item's logit (``prior_scale`` is trainable; this value is its
        start). The policy starts as a softmax over the population model — its greedy slate is the baseline's
        — and learns only how to personalise away from it. The fitted model is frozen and saved with the policy.
    Meta-batch:
      tasks_per_iteration: tasks (one trial each) rolled out per training iteration.
    PPO:
      learning_rate, max_grad_norm: Adam step size and global-norm gradient clipping.
      discount, gae_lambda: return discount across the whole trial and the GAE λ.
      clip_ratio: PPO clipping ε of the probability ratio.
      entropy_coef, value_coef: weights of the entropy bonus and of the value loss.
      entropy_coef_final, entropy_anneal_iterations: when both are set, the entropy weight moves linearly
        from ``entropy_coef`` to ``entropy_coef_final`` over the first ``entropy_anneal_iterations``
        iterations and stays there (a high early bonus keeps the policy from collapsing before the memory
        learns anything; a low late one lets it exploit). A function of the iteration index, so resuming
        from a checkpoint continues the same schedule.
      learning_rate_final, learning_rate_anneal_iterations: the same linear schedule for the Adam step size
        (both or neither; default: constant ``learning_rate``).
      discount_final, discount_anneal_iterations: the same linear schedule for the discount (both or
        neither; default: constant ``discount``). A short credit horizon early lets the memory learn each
        action's own reward fast; a long one late values exploration that pays off episodes later.
      anneal_start: the iteration at which the schedules start (before it the start values hold). A run
        that anneals from ``anneal_start`` is, up to that iteration, the same run as one without annealing,
        so a fine-tuning phase can be added to a trained checkpoint with ``--resume`` and the scenario still
        reproduces from scratch.
      phases: later training phases, each a mapping ``{start: N, <setting>: value, ...}`` whose settings
        (any of ``learning_rate``, ``entropy_coef``, ``discount``, ``gae_lambda``) hold from iteration ``N``
        on, replacing the schedules above; a later phase changes only the settings it names. Starts strictly
        increase. Like ``anneal_start``, a phase leaves every iteration before its start unchanged, so it can be
        added to a trained checkpoint with ``--resume`` (e.g. an undiscounted, Monte-Carlo-advantage phase
        ``{start: 3000, discount: 1.0, gae_lambda: 1.0}`` after a discounted run).
      epochs, minibatches: passes over each batch, and sequence minibatches (split over tasks) per pass.
      reward_scale: rewards are multiplied by this for learning only (not for reporting).
      normalize_advantages: standardise advantages per minibatch.
      normalize_values: the value head predicts returns divided by a running RMS of the returns (kept in the
        checkpoint), so the value loss has the same scale on every family (bandit trials return ~6, MDP
        trials ~150) and does not drown the policy gradient in the shared trunk.
    Acting:
      greedy_eval: act by argmax after meta-training (default: sample, the exploration is learned). On slate
        families with independent slot heads each slot takes its best item not already in the slate.
    Model selection (off by default):
      select_every: every this many iterations (and after the last) score the policy on ``select_tasks``
        validation tasks — training-split tasks of their own sample, never the held-out test tasks — and keep
        the best-scoring weights; they are the trained policy when training ends (and are saved under
        ``<checkpoint_dir>/best`` with every score in ``selection.json``). 0 = off: the last weights.
      select_budgets: the score is the mean over these budgets K of (mean cumulative reward after K) / K, so
        early and late adaptation weigh alike; default: the whole trial.
    Bookkeeping:
      checkpoint_every: iterations between checkpoints (the last iteration is always saved).
      log_every: iterations between TensorBoard summaries.
    """

    cell: str = "lstm"
    set_keys: int = 0
    set_normalize_keyed: bool = False
    set_action_reads: bool = False
    compute_dtype: str = "float32"
    hidden_size: int = 128
    embed_sizes: tuple[int, ...] = (64,)
    value_network: str = "shared"
    privileged_value: bool = False
    expected_rewards: bool = False
    head_hidden: int = 0
    slate: bool | None = False
    scoring: str = "per_item"
    prior: str = "none"
    prior_scale: float = 4.0
    prior_config: dict = dataclasses.field(default_factory=dict)
    tasks_per_iteration: int = 256
    learning_rate: float = 1e-3
    max_grad_norm: float = 1.0
    discount: float = 0.99
    gae_lambda: float = 0.3
    clip_ratio: float = 0.2
    entropy_coef: float = 0.01
    entropy_coef_final: float | None = None
    entropy_anneal_iterations: int = 0
    learning_rate_final: float | None = None
    learning_rate_anneal_iterations: int = 0
    discount_final: float | None = None
    discount_anneal_iterations: int = 0
    anneal_start: int = 0
    phases: tuple[dict, ...] = ()
    value_coef: float = 0.5
    epochs: int = 4
    minibatches: int = 4
    reward_scale: float = 1.0
    normalize_advantages: bool = True
    normalize_values: bool = True
    greedy_eval: bool = False
    select_every: int = 0
    select_tasks: int = 500
    select_budgets: tuple[int, ...] | None = None
    checkpoint_every: int = 50
    log_every: int = 10

    def __post_init__(self):
        def fail(field: str, rule: str):
            raise config_error(self, field, rule)

        if self.cell not in ("lstm", "gru", "set"):
            fail("cell", "must be 'lstm', 'gru' or 'set'")
        if self.compute_dtype not in ("float32", "bfloat16"):
            fail("compute_dtype", "must be 'float32' or 'bfloat16'")
        if self.compute_dtype == "bfloat16" and self.cell != "set":
            fail("compute_dtype", "'bfloat16' needs cell 'set' (a Keras LSTM/GRU is no faster in bfloat16 on CPU)")
        if self.value_network not in ("shared", "separate"):
            fail("value_network", "must be 'shared' or 'separate'")
        if self.value_network == "separate" and self.cell == "set":
            fail("value_network", "'separate' needs cell 'lstm' or 'gru' (the set memory is shared)")
        check_fields(self, (
            (("hidden_size", "tasks_per_iteration", "epochs", "minibatches", "checkpoint_every", "log_every"),
             "pos_int"),
            ("head_hidden", "nonneg_int", "must be a non-negative integer (0 = linear heads)"),
            ("embed_sizes", "int_list"),
            ("set_keys", "nonneg_int"),
            (("set_normalize_keyed", "set_action_reads", "privileged_value", "expected_rewards"), "bool"),
            (("learning_rate", "max_grad_norm", "reward_scale"), "pos_num"),
            (("discount", "gae_lambda"), "unit"),
            (("clip_ratio", "entropy_coef", "value_coef"), "nonneg_num"),
            ("entropy_coef_final", "nonneg_num?",
             "must be a non-negative number (or null for a constant entropy_coef)"),
            ("learning_rate_final", "pos_num?",
             "must be a positive number (or null for a constant learning_rate)"),
            ("discount_final", "unit?", "must be in [0, 1] (or null for a constant discount)"),
            (("entropy_anneal_iterations", "learning_rate_anneal_iterations", "discount_anneal_iterations"),
             "nonneg_int", "must be a non-negative integer (0 = no annealing)"),
            ("anneal_start", "nonneg_int", "must be a non-negative integer (the iteration the schedules start at)"),
            ("select_every", "nonneg_int", "must be a non-negative integer (0 = no model selection)"),
            ("select_tasks", "pos_int"),
            ("select_budgets", "nonempty_int_list?",
             "must be a non-empty list of positive integers (or null: the whole trial)"),
        ))
        if self.set_action_reads and self.cell != "set":
            fail("set_action_reads", "needs cell 'set' (it reads the transition-set memory per action)")
        if self.set_normalize_keyed and (self.cell != "set" or not self.set_keys):
            fail("set_normalize_keyed", "needs cell 'set' with set_keys > 0 (it normalises the keyed read)")
        for final, its in (("entropy_coef_final", "entropy_anneal_iterations"),
                           ("learning_rate_final", "learning_rate_anneal_iterations"),
                           ("discount_final", "discount_anneal_iterations")):
            if (getattr(self, final) is None) != (getattr(self, its) == 0):
                fail(its, f"set it and {final} together (both or neither)")
        self._check_phases(fail)
        if self.prior not in ("none", "global_mlp"):
            fail("prior", "must be 'none' or 'global_mlp'")
        if not isinstance(self.prior_config, dict):
            fail("prior_config", "must be a mapping of global_mlp baseline config keys")
        if self.prior_config and self.prior == "none":
            fail("prior_config", "applies only with prior 'global_mlp'")
        if isinstance(self.prior_scale, bool) or not isinstance(self.prior_scale, (int, float)):
            fail("prior_scale", "must be a number")
        if self.scoring not in ("per_item", "item_features"):
            fail("scoring", "must be 'per_item' or 'item_features'")
        if self.select_budgets is not None:
            object.__setattr__(self, "select_budgets", tuple(sorted(set(self.select_budgets))))
        if self.minibatches > self.tasks_per_iteration:
            fail("minibatches", f"must be <= tasks_per_iteration ({self.tasks_per_iteration})")

    def _check_phases(self, fail) -> None:
        """Validate ``phases`` and store it as a tuple of plain dicts."""
        phases = self.phases
        if phases is None:
            phases = ()
        if isinstance(phases, dict) or not isinstance(phases, (list, tuple)):
            fail("phases", "must be a list of mappings like {start: 3000, discount: 1.0}")
        out, last = [], -1
        for i, phase in enumerate(phases):
            where = f"phase {i}"
            if not isinstance(phase, dict):
                fail("phases", f"{where} must be a mapping like {{start: 3000, discount: 1.0}}")
            unknown = sorted(set(phase) - {"start", *PHASE_SETTINGS})
            if unknown:
                fail("phases", f"{where}: unknown setting(s) {', '.join(map(repr, unknown))}; "
                               f"a phase sets start and any of {', '.join(PHASE_SETTINGS)}")
            start = phase.get("start")
            if isinstance(start, bool) or not isinstance(start, int) or start < 0:
                fail("phases", f"{where}: start must be a non-negative integer (the iteration it begins at)")
            if start <= last:
                fail("phases", f"{where}: start {start} must be greater than the previous phase's ({last})")
            if len(phase) == 1:
                fail("phases", f"{where}: sets nothing; give any of {', '.join(PHASE_SETTINGS)}")
            for key, kind in PHASE_SETTINGS.items():
                test, rule = KINDS[kind]  # the same rule as the top-level field of that name
                if key in phase and not (test(phase[key]) and math.isfinite(phase[key])):
                    fail("phases", f"{where}: {key}={phase[key]!r} {rule} (and finite)")
            out.append({k: (int(v) if k == "start" else float(v)) for k, v in phase.items()})
            last = start
        object.__setattr__(self, "phases", tuple(out))

    def phase_setting(self, name: str, iteration: int) -> float | None:
        """The value the phases give ``name`` at (0-based) ``iteration``, or None if no phase sets it yet."""
        value = None
        for phase in self.phases:
            if phase["start"] > iteration:
                break
            value = phase.get(name, value)
        return value


#: settings a phase may set, with their rule kind (``config_fields.KINDS``, as the top-level fields)
PHASE_SETTINGS = {"learning_rate": "pos_num", "entropy_coef": "nonneg_num", "discount": "unit", "gae_lambda": "unit"}
