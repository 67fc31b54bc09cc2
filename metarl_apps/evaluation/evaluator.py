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


def trial_returns(
    make_policy: PolicyFactory,
    dist: TaskDistribution,
    tasks: Sequence[Task],
    num_episodes: int,
    *,
    env_seed: int = 0,
    seed: int = 0,
    chunk_size: int = 8192,
    on_chunk: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Per-task return of each inner episode of one trial: ``[len(tasks), num_episodes]``."""
    steps = dist.horizon * num_episodes
    out = []
    tasks = list(tasks)
    for start in range(0, len(tasks), chunk_size):
        chunk = tasks[start : start + chunk_size]
        env = dist.make_env(chunk, seed=env_seed)
        policy = make_policy(chunk, seed + start)
        rewards, episode = rollout(policy, env, steps)
        out.append(episode_returns(rewards, episode, num_episodes))
        if on_chunk is not None:
            on_chunk(len(chunk))
    return np.concatenate(out, axis=0)


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
    episodes = trial_returns(make_policy, dist, tasks, max(budgets), env_seed=env_seed, seed=seed,
                             chunk_size=chunk_size, on_chunk=on_chunk)
    return np.cumsum(episodes, axis=1)[:, [b - 1 for b in budgets]]


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
        """Rows of results.json: mean and 95% CI over held-out tasks (seed-averaged per task).

        With several training seeds a row also has ``seed_means`` (each seed's mean over the tasks) and
        ``ci95_seeds`` (half-width of the 95% t-interval over those seed means).
        """
        per_task = self.per_task()
        seeds = int(self.values.shape[0])
        rows = []
        for j, budget in enumerate(self.budgets):
            mean, ci = mean_ci95(per_task[:, j])
            row = {"agent": self.agent, "budget": int(budget), "mean": mean, "ci95": ci,
                   "n_tasks": int(per_task.shape[0]), "seeds": seeds}
            if seeds > 1:
                # Between-seed variability: each training seed's mean over the same held-out tasks, and the
                # 95% t-interval of those means (what a re-training with a new seed may land on).
                seed_means = self.values[:, :, j].mean(axis=1)
                row["seed_means"] = [float(m) for m in seed_means]
                row["ci95_seeds"] = mean_ci95(seed_means)[1]
            rows.append(row)
        return rows

    def at(self, budget: int) -> float:
        return float(self.per_task()[:, self.budgets.index(budget)].mean())


def regret_curve(curve: Curve, oracle: Curve) -> Curve:
    """Regret to the oracle on the same tasks: ``oracle - agent`` per task (paired)."""
    return Curve(curve.agent, curve.budgets, oracle.per_task()[None] - curve.values)
