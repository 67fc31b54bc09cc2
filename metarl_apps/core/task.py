"""Tasks and task distributions: the contract between adapters (users, levels, bandits...) and learners."""

from __future__ import annotations

import abc
import dataclasses
import types
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np
from tf_agents.environments import tf_environment

from metarl_apps.core import rng
from metarl_apps.core.errors import MetaRLInputError

SPLITS = ("train", "test")
_SPLIT_CODE = {"train": 0, "test": 1}


def _freeze(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        value = value.copy()
        value.setflags(write=False)
        return value
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


@dataclasses.dataclass(frozen=True, eq=False)
class Task:
    """One task: a bandit, an MDP, a user, a level.

    Attributes:
      task_id: unique within its family and split (e.g. ``"test/0/17"``).
      family: registered family name (e.g. ``"bandits.bernoulli"``).
      params: the task's hidden parameters (arm means, user interests, level seed); read-only.
        Agents never see them, except oracles, which exist to be ceilings.
      split: ``"train"`` or ``"test"``.
      seed: the key of the task's own randomness.
    """

    task_id: str
    family: str
    params: Mapping[str, Any]
    split: str
    seed: int

    def __post_init__(self):
        if self.split not in SPLITS:
            raise MetaRLInputError(f"Task split {self.split!r} is not one of {SPLITS}")
        object.__setattr__(self, "params", _freeze(dict(self.params)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return (
            (self.task_id, self.family, self.split, self.seed) == (other.task_id, other.family, other.split, other.seed)
            and _same(self.params, other.params)
        )

    def __hash__(self) -> int:
        return hash((self.task_id, self.family, self.split, self.seed))

    def same_params(self, other: "Task") -> bool:
        return _same(self.params, other.params)


class TaskDistribution(abc.ABC):
    """A distribution over tasks with a batched tf-agents environment (batch dimension = tasks).

    Subclasses set ``family`` and implement ``_sample_params`` and ``_make_env`` plus the spec methods;
    the public methods check their arguments and delegate (tf-agents ``TFAgent.train -> _train`` rule).

    Splits: task ``i`` of split ``s`` drawn with seed ``seed`` comes from the random stream
    ``(seed, s, i)``; families whose parameter space is finite override :meth:`_sample_params` to partition
    it by split so train and test can never overlap.
    """

    family: ClassVar[str] = ""
    #: what an adaptation budget counts for this family ("episodes": for bandits one pull is one episode).
    budget_unit: ClassVar[str] = "episodes"

    def __init__(self, **params: Any):
        self._params = dict(params)

    # ----------------------------------------------------------- metadata
    @property
    def params(self) -> dict:
        """The family parameters this distribution was built with (JSON-friendly)."""
        return dict(self._params)

    @property
    @abc.abstractmethod
    def horizon(self) -> int:
        """Steps per inner episode."""

    @property
    @abc.abstractmethod
    def episodes_per_trial(self) -> int:
        """Inner episodes per trial (the largest adaptation budget the default trial covers)."""

    # -------------------------------------------------------------- tasks
    def sample(self, n: int, split: str = "train", seed: int = 0) -> list[Task]:
        """``n`` tasks of ``split``; the same ``(n, split, seed)`` always gives the same tasks."""
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise MetaRLInputError(f"sample(n={n!r}): n must be a positive integer number of tasks")
        if split not in SPLITS:
            raise MetaRLInputError(f"sample(split={split!r}): split must be one of {list(SPLITS)}")
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
            raise MetaRLInputError(f"sample(seed={seed!r}): seed must be a non-negative integer")
        tasks = []
        for i in range(int(n)):
            stream = np.random.default_rng([int(seed), _SPLIT_CODE[split], i])
            params = self._sample_params(stream, split)
            tasks.append(
                Task(
                    task_id=f"{split}/{seed}/{i}",
                    family=self.family,
                    params=params,
                    split=split,
                    seed=rng.task_key(self.family, split, seed, i),
                )
            )
        return tasks

    @abc.abstractmethod
    def _sample_params(self, stream: np.random.Generator, split: str) -> dict:
        """The hidden parameters of one task drawn from ``stream``."""

    # -------------------------------------------------------------- specs
    @abc.abstractmethod
    def time_step_spec(self):
        """The tf-agents ``TimeStep`` spec of :meth:`make_env` (no batch dimension)."""

    @abc.abstractmethod
    def action_spec(self):
        """The tf-agents action spec of :meth:`make_env`."""

    def observation_spec(self):
        return self.time_step_spec().observation

    def task_features(self, tasks: Sequence[Task]) -> np.ndarray:
        """``[len(tasks), F]`` float32: each task's real-valued hidden parameters, flattened (keys in sorted
        order). For training-time use only — e.g. a critic that sees the task (RL2's ``privileged_value``);
        a policy never does. Families whose parameters are not real-valued arrays (level seeds, ids) have
        none: a one-line error says so."""
        tasks = list(tasks)
        if not tasks:
            raise MetaRLInputError("task_features(tasks=[]): pass at least one Task")
        rows = []
        for t in tasks:
            parts = []
            for key in sorted(t.params):
                value = np.asarray(t.params[key])
                if not np.issubdtype(value.dtype, np.floating):
                    raise MetaRLInputError(
                        f"{self.family}: task parameter {key!r} ({value.dtype}) is not real-valued, so this family "
                        f"has no task features; use a learner option that does not need them (e.g. RL2 "
                        f"privileged_value: false)")
                parts.append(value.reshape(-1))
            rows.append(np.concatenate(parts) if parts else np.zeros([0]))
        if len({r.size for r in rows}) != 1 or rows[0].size == 0:
            raise MetaRLInputError(f"{self.family}: tasks have no fixed-size real-valued parameters, so no task "
                                   f"features; use a learner option that does not need them")
        return np.stack(rows).astype(np.float32)

    # ---------------------------------------------------------------- env
    def make_env(self, tasks: Sequence[Task], seed: int = 0) -> tf_environment.TFEnvironment:
        """A batched ``TFEnvironment``; row ``i`` is ``tasks[i]``. ``seed`` varies the env's randomness."""
        tasks = list(tasks)
        if not tasks:
            raise MetaRLInputError("make_env(tasks=[]): pass at least one Task (from dist.sample(n))")
        for t in tasks:
            if not isinstance(t, Task):
                raise MetaRLInputError(f"make_env: expected Task objects, got {type(t).__name__}")
            if t.family != self.family:
                raise MetaRLInputError(
                    f"make_env: task {t.task_id!r} belongs to family {t.family!r}, not {self.family!r}; "
                    f"sample tasks from the same distribution"
                )
        return self._make_env(tasks, int(seed))

    @abc.abstractmethod
    def _make_env(self, tasks: list[Task], seed: int) -> tf_environment.TFEnvironment:
        """Build the batched environment."""

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"


def positive_int(name: str, value: Any, family: str) -> int:
    """Validate a positive integer family parameter, raising a one-line error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise MetaRLInputError(f"{family}: parameter {name}={value!r} must be a positive integer")
    return int(value)
