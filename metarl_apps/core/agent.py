"""Agents evaluated on held-out tasks: baselines and meta-learners.

Everything that acts in a trial environment (see :mod:`metarl_apps.core.env`) does so through a tf-agents
``TFPolicy`` whose state carries what it has learned about the task so far. The evaluator runs any of them
the same way, batched over tasks, inside one compiled loop.

* :class:`Baseline` — a non-meta reference (random, UCB1, Thompson sampling, PSRL, an oracle...).
  ``make_policy(dist, tasks, seed)`` returns a policy for a batch of tasks; ``fit`` optionally trains on the
  training population (e.g. a global non-adaptive policy).
* :class:`MetaLearner` — RL², MAML, MQL. Public ``meta_train`` / ``adapt`` / ``evaluate`` check arguments and
  delegate to ``_meta_train`` / ``_adapt``; subclasses override only the hooks.
* :class:`AdaptedPolicy` — the ``TFPolicy`` that ``adapt`` returns (exportable with ``PolicySaver``).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Mapping, Sequence

import tensorflow as tf
from tf_agents.environments import tf_environment
from tf_agents.policies import tf_policy
from tf_agents.trajectories import time_step as ts

from metarl_apps.core.errors import CheckpointError, MetaRLInputError, SpecMismatchError
from metarl_apps.core.task import Task, TaskDistribution


def check_budget(budget: Any, limit: int | None = None, what: str = "budget") -> int:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise MetaRLInputError(f"{what}={budget!r}: must be a positive integer")
    if limit is not None and budget > limit:
        raise MetaRLInputError(f"{what}={budget}: exceeds the trial length of {limit}; lower it or lengthen trials")
    return budget


def check_tasks(dist: TaskDistribution, tasks: Sequence[Task], what: str = "tasks") -> list[Task]:
    tasks = list(tasks)
    if not tasks:
        raise MetaRLInputError(f"{what}: empty; pass at least one Task from dist.sample(n)")
    for t in tasks:
        if not isinstance(t, Task) or t.family != dist.family:
            raise MetaRLInputError(
                f"{what}: {t!r} is not a Task of family {dist.family!r}; sample tasks from the same distribution"
            )
    return tasks


def is_first(time_step: ts.TimeStep) -> tf.Tensor:
    """``[B]`` bool: the step starts a trial (the reward and prev_action carry no information)."""
    return tf.equal(time_step.step_type, ts.StepType.FIRST)


class Baseline(abc.ABC):
    """A non-meta reference run on the same held-out tasks as the learners.

    Subclasses declare ``families`` (empty = any family) and implement ``_make_policy``. Configuration
    arrives as keyword arguments, validated in ``__init__`` with one-line ``MetaRLInputError``s.
    """

    families: ClassVar[tuple[str, ...]] = ()
    needs_fit: ClassVar[bool] = False

    def __init__(self, **config: Any):
        if config:
            raise MetaRLInputError(
                f"{type(self).__name__} takes no config, got {sorted(config)}; remove the agent's config keys"
            )
        self.config: dict = {}

    def supports(self, dist: TaskDistribution) -> bool:
        return not self.families or dist.family in self.families

    def fit(self, dist: TaskDistribution, train_tasks: Sequence[Task], seed: int = 0) -> None:
        """Train on the training population (only for baselines with ``needs_fit``)."""
        self._check_family(dist)
        if self.needs_fit:
            self._fit(dist, check_tasks(dist, train_tasks, "train_tasks"), seed)

    def _fit(self, dist: TaskDistribution, train_tasks: list[Task], seed: int) -> None:
        raise NotImplementedError

    def make_policy(self, dist: TaskDistribution, tasks: Sequence[Task], seed: int = 0) -> tf_policy.TFPolicy:
        """A policy acting in ``dist.make_env(tasks)``; it learns about each task from that task's own data."""
        self._check_family(dist)
        return self._make_policy(dist, check_tasks(dist, tasks), int(seed))

    def policy_for(self, dist: TaskDistribution, tasks: Sequence[Task], seed: int = 0,
                   budget: int = 1) -> tf_policy.TFPolicy:
        """The evaluator's entry point: baselines learn online, so the budget only bounds the rollout."""
        return self.make_policy(dist, tasks, seed)

    @abc.abstractmethod
    def _make_policy(self, dist: TaskDistribution, tasks: list[Task], seed: int) -> tf_policy.TFPolicy:
        """Build the policy for this batch of tasks."""

    def _check_family(self, dist: TaskDistribution) -> None:
        if not self.supports(dist):
            raise MetaRLInputError(
                f"baseline {type(self).__name__} does not support family {dist.family!r} "
                f"(supports: {', '.join(self.families)}); remove it from the scenario's agents"
            )


class AdaptedPolicy(tf_policy.TFPolicy):
    """The policy returned by ``MetaLearner.adapt``: a tf-agents ``TFPolicy`` (``PolicySaver`` exports it).

    ``adaptation`` records what it was adapted on (task ids, budget, algorithm), for reports and model cards.
    """

    def __init__(self, *args, adaptation: Mapping[str, Any] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.adaptation = dict(adaptation or {})


@dataclasses.dataclass
class TrainResult:
    """What ``meta_train`` reports: iterations done, wall time, the last logged metrics."""

    iterations: int
    wall_time_s: float
    metrics: dict = dataclasses.field(default_factory=dict)
    checkpoint: str | None = None


class MetaLearner(abc.ABC):
    """Base class of the meta-learners. Subclasses implement ``_meta_train`` and ``_adapt`` only.

    ``config_cls`` is the algorithm's config dataclass (validated in its ``__post_init__``). The constructor
    takes a config instance or a mapping of its fields.
    """

    config_cls: ClassVar[type]
    name: ClassVar[str] = ""

    def __init__(self, config: Any = None, **overrides: Any):
        if config is None:
            config = self.config_cls(**overrides)
        elif isinstance(config, Mapping):
            config = self.config_cls(**{**dict(config), **overrides})
        elif not isinstance(config, self.config_cls):
            raise MetaRLInputError(
                f"{type(self).__name__}: config must be a {self.config_cls.__name__} or a mapping, "
                f"got {type(config).__name__}"
            )
        self.config = config
        self._dist: TaskDistribution | None = None

    # ------------------------------------------------------------- public
    def meta_train(
        self,
        dist: TaskDistribution,
        train_tasks: Sequence[Task] | None = None,
        *,
        iterations: int,
        seed: int = 0,
        checkpoint_dir: str | None = None,
        resume: bool = False,
        summary_dir: str | None = None,
        progress: bool = False,
    ) -> TrainResult:
        """Meta-train on ``train_tasks`` (or fresh training tasks of ``dist`` if None)."""
        if not isinstance(dist, TaskDistribution):
            raise MetaRLInputError(f"meta_train: dist must be a TaskDistribution, got {type(dist).__name__}")
        check_budget(iterations, what="iterations")
        if train_tasks is not None:
            train_tasks = check_tasks(dist, train_tasks, "train_tasks")
            if any(t.split != "train" for t in train_tasks):
                raise MetaRLInputError("meta_train: train_tasks contains held-out (split='test') tasks; "
                                       "meta-train only on dist.sample(n, split='train')")
        if resume and not checkpoint_dir:
            raise MetaRLInputError("meta_train: resume=True needs checkpoint_dir")
        self._dist = dist
        return self._meta_train(dist, train_tasks, iterations=iterations, seed=seed,
                                checkpoint_dir=checkpoint_dir, resume=resume, summary_dir=summary_dir,
                                progress=progress)

    def adapt(self, env_or_tasks: tf_environment.TFEnvironment | Sequence[Task], budget: int) -> AdaptedPolicy:
        """Adapt to new tasks within ``budget`` (episodes, interactions or gradient steps)."""
        dist = self._require_trained()
        check_budget(budget)
        if isinstance(env_or_tasks, tf_environment.TFEnvironment):
            env = env_or_tasks
            if env.time_step_spec() != dist.time_step_spec() or env.action_spec() != dist.action_spec():
                raise SpecMismatchError(
                    f"adapt: the environment's specs do not match the {dist.family!r} distribution this learner "
                    f"was meta-trained on; build it with dist.make_env(tasks)"
                )
            tasks = None
        else:
            tasks = check_tasks(dist, env_or_tasks)
            env = dist.make_env(tasks)
        return self._adapt(env, tasks, budget)

    def policy_for(self, dist: TaskDistribution, tasks: Sequence[Task], seed: int = 0, budget: int = 1):
        """The evaluator's entry point (same as a baseline's ``make_policy``)."""
        return self.adapt(list(tasks), budget)

    def evaluate(self, dist: TaskDistribution, tasks: Sequence[Task], budgets: Sequence[int], *,
                 env_seed: int = 0, seed: int = 0, name: str | None = None):
        """Adaptation curve on held-out ``tasks``: cumulative reward after each budget (a ``Curve``)."""
        from metarl_apps.evaluation.evaluator import Curve, cumulative_returns

        trained = self._require_trained()
        if dist.family != trained.family:
            raise MetaRLInputError(f"evaluate: learner was meta-trained on {trained.family!r}, not {dist.family!r}")
        tasks = check_tasks(dist, tasks)
        if any(t.split != "test" for t in tasks):
            raise MetaRLInputError("evaluate: pass held-out tasks (dist.sample(n, split='test')); "
                                   "evaluating on training tasks overstates adaptation")
        budgets = [check_budget(b, dist.episodes_per_trial) for b in budgets]
        if not budgets or budgets != sorted(set(budgets)):
            raise MetaRLInputError(f"evaluate: budgets {budgets} must be a non-empty increasing list")
        values = cumulative_returns(lambda chunk, _seed: self.adapt(chunk, max(budgets)), dist, tasks, budgets,
                                    env_seed=env_seed, seed=seed)
        return Curve(name or self.name or type(self).__name__, tuple(budgets), values[None])

    def restore(self, checkpoint_dir: str, dist: TaskDistribution) -> None:
        """Load meta-trained weights from ``checkpoint_dir`` (written by ``meta_train``)."""
        import os

        if not os.path.isdir(checkpoint_dir):
            raise CheckpointError(f"no checkpoint directory {checkpoint_dir!r}; train first with meta_train/"
                                  f"`metarl train`, or pass the directory it wrote")
        self._restore(checkpoint_dir, dist)
        self._dist = dist

    # -------------------------------------------------------------- hooks
    @abc.abstractmethod
    def _meta_train(self, dist, train_tasks, **kwargs) -> TrainResult:
        """Meta-train; see :meth:`meta_train`."""

    @abc.abstractmethod
    def _adapt(self, env, tasks, budget: int) -> AdaptedPolicy:
        """Return the adapted policy for the env's tasks."""

    def _restore(self, checkpoint_dir: str, dist: TaskDistribution) -> None:
        raise CheckpointError(f"{type(self).__name__} cannot restore checkpoints")

    def _require_trained(self) -> TaskDistribution:
        if self._dist is None:
            raise MetaRLInputError(
                f"{type(self).__name__}: call meta_train(...) or load a trained model before adapt/evaluate"
            )
        return self._dist

