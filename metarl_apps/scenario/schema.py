"""What a loaded scenario is: frozen dataclasses, built only by :func:`metarl_apps.scenario.load_scenario`.

A scenario file (YAML, data only) names a task family, how many training / held-out tasks to draw, the
adaptation budgets to measure at, the agents to compare (baselines and meta-learners) and expectations
about the results. The file format, field by field, is documented in ``loader.py``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Literal

from metarl_apps.core import registry
from metarl_apps.core.errors import UnknownNameError
from metarl_apps.scenario.expectations import Expectation

TIERS = ("smoke", "full")
METRICS = ("cumulative_reward", "regret")
AGENT_KINDS = ("baseline", "algorithm")
AGENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """A registered task family and the keyword arguments its class is built with."""

    name: str
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TaskSplitSpec:
    """How many tasks to draw: ``train`` for meta-training (may be 0), ``test`` held out; ``seed`` draws them."""

    train: int
    test: int
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """One agent of the comparison.

    Attributes:
      name: the agent's name in results and expectations (an identifier, unique within the scenario).
      kind: ``"baseline"`` (``target`` in ``registry.BASELINES``) or ``"algorithm"`` (in ``registry.ALGORITHMS``).
      target: the registered name of the baseline or algorithm.
      config: keyword arguments of the baseline / algorithm config.
      train: meta-training options (algorithm agents only), e.g. ``{"iterations": 500}``.
    """

    name: str
    kind: Literal["baseline", "algorithm"]
    target: str
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    train: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A validated scenario file.

    Attributes:
      name: the scenario's name (reports, output directories).
      description: one or two sentences for humans.
      tier: ``"smoke"`` (fast, run by default) or ``"full"`` (slow).
      path: the file it was loaded from.
      family: the task family and its parameters.
      tasks: sizes and seed of the training and held-out task sets.
      metric: ``"cumulative_reward"`` or ``"regret"`` (to the family's oracle).
      budgets: adaptation budgets to report at, strictly increasing, each within the family's trial length.
      seeds: training seeds per learner.
      env_seed: seed of the environments' own randomness during evaluation.
      agents: the agents compared, in file order.
      expectations: checks on the results, in file order.
    """

    name: str
    description: str
    tier: str
    path: Path
    family: FamilySpec
    tasks: TaskSplitSpec
    metric: str
    budgets: tuple[int, ...]
    seeds: int
    env_seed: int
    agents: tuple[AgentSpec, ...]
    expectations: tuple[Expectation, ...]

    def make_distribution(self) -> Any:
        """A fresh ``TaskDistribution`` of the scenario's family, built with its parameters."""
        return registry.make_task_distribution(self.family.name, **self.family.params)

    def agent(self, name: str) -> AgentSpec:
        """The agent called ``name``; an unknown name lists the scenario's agents."""
        for spec in self.agents:
            if spec.name == name:
                return spec
        raise UnknownNameError(
            f"scenario {self.name!r} has no agent {name!r}; agents: {', '.join(a.name for a in self.agents)}"
        )
