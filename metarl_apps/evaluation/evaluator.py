"""Meta-test evaluator: cumulative reward (or regret) after K units of experience on held-out tasks.

Every agent is run the same way: for each chunk of held-out tasks, build ``dist.make_env(chunk, env_seed)``
(the same per-task randomness for every agent: common random numbers, so comparisons are paired), ask the
agent for a policy on those tasks and roll it out for ``max(budgets)`` inner episodes.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
from tf_agents.policies import tf_policy

from metarl_apps.core.task import Task, TaskDistribution
from metarl_apps.evaluation.runner import episode_returns, rollout
from metarl_apps.evaluation.stats import mean_ci95

#: ``make_policy(tasks_of_the_chunk, seed_of_the_chunk) -> TFPolicy``
PolicyFactory = Callable[[list[Task], int], tf_policy.TFPolicy]


def cumulative_returns(
    make_policy: PolicyFactory,
    dist: TaskDistribution,
    tasks: Sequence[Task],
    budgets: Sequence[int],
    *,
    env_seed: int = 0,
    seed: int = 0,
    chunk_size: int = 8192,
    on_chunk: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Per-task cumulative reward after each budget: ``[len(tasks), len(budgets)]``."""
    budgets = list(budgets)
    num_episodes = max(budgets)
    steps = dist.horizon * num_episodes
    out = []
    tasks = list(tasks)
    for start in range(0, len(tasks), chunk_size):
        chunk = tasks[start : start + chunk_size]
        env = dist.make_env(chunk, seed=env_seed)
        policy = make_policy(chunk, seed + start)
        rewards, episode = rollout(policy, env, steps)
        cum = np.cumsum(episode_returns(rewards, episode, num_episodes), axis=1)
        out.append(cum[:, [b - 1 for b in budgets]])
        if on_chunk is not None:
            on_chunk(len(chunk))
    return np.concatenate(out, axis=0)


@dataclasses.dataclass
class Curve:
    """An agent's adaptation curve on held-out tasks: ``values [seeds, tasks, budgets]``."""

    agent: str
    budgets: tuple[int, ...]
    values: np.ndarray

    def per_task(self) -> np.ndarray:
        """``[tasks, budgets]``: each task's value averaged over training seeds."""
        return self.values.mean(axis=0)

    def rows(self) -> list[dict]:
        """Rows of results.json: mean and 95% CI over held-out tasks (seed-averaged per task)."""
        per_task = self.per_task()
        rows = []
        for j, budget in enumerate(self.budgets):
            mean, ci = mean_ci95(per_task[:, j])
            rows.append({"agent": self.agent, "budget": int(budget), "mean": mean, "ci95": ci,
                         "n_tasks": int(per_task.shape[0]), "seeds": int(self.values.shape[0])})
        return rows

    def at(self, budget: int) -> float:
        return float(self.per_task()[:, self.budgets.index(budget)].mean())


def regret_curve(curve: Curve, oracle: Curve) -> Curve:
    """Regret to the oracle on the same tasks: ``oracle - agent`` per task (paired)."""
    return Curve(curve.agent, curve.budgets, oracle.per_task()[None] - curve.values)
