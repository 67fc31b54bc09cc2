"""How agents explore Bernoulli bandits: which arms they try and when, and where their regret comes from.

A total reward says *how much* an agent loses to the best arm; this says *how*: when each arm is first tried,
how often the best arm is never pulled or is pulled and then left, and the regret on easy and hard bandits
(the gap between the best and the second-best arm). On k=5, n=100 it showed that RL² under-explores compared
with the Gittins index (README). ``metarl explore SCENARIO -o DIR`` runs it for a scenario's agents.

Regret here is *expected*: the best arm's mean times the pulls minus the means of the arms pulled, so the
Bernoulli draws of the rewards add no noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.io import atomic_write_json

#: gap (best arm's mean minus the second best's) buckets: [low, high)
GAP_BUCKETS = ((0.0, 0.02), (0.02, 0.05), (0.05, 0.1), (0.1, 1.01))
FAMILY = "bandits.bernoulli"


def _summary(actions: np.ndarray, means: np.ndarray) -> dict:
    b, t = actions.shape
    rows = np.arange(b)[:, None]
    best = means.argmax(1)
    pulled = means[rows, actions]  # [B, T] mean of the arm pulled at each step
    regret = means.max(1) * t - pulled.sum(1)
    tried_best = (actions == best[:, None]).any(1)
    last = actions[:, t - max(1, t // 4):]  # the last quarter of the trial
    counts = np.stack([(last == k).sum(1) for k in range(means.shape[1])], 1)
    ends_on_other = tried_best & (counts.argmax(1) != best)
    return {"n": int(b), "regret": float(regret.mean()), "never_pulled_best": float(np.mean(~tried_best)),
            "ends_on_other": float(np.mean(ends_on_other))}


def bandit_exploration(actions: np.ndarray, means: np.ndarray) -> dict:
    """Exploration statistics of ``actions [B, T]`` (arm pulled at each step) on bandits of arm means
    ``means [B, K]``.

    Returns ``total`` (mean expected total reward), ``by_quarter`` (its split over the trial's quarters),
    ``first_try`` (mean pull, 1-based, at which the 2nd, 3rd, ... K-th distinct arm is first tried; an arm
    never tried counts as T + 1), ``arms_tried`` (mean distinct arms), ``regret`` (mean expected regret),
    ``never_pulled_best`` (fraction of bandits whose best arm is never pulled), ``ends_on_other`` (fraction
    whose best arm is pulled but is not the most pulled arm of the last quarter of the trial) and
    ``by_gap``: the last three per bucket of the gap between the best and the second-best arm.
    """
    actions = np.asarray(actions)
    means = np.asarray(means, dtype=np.float64)
    if actions.ndim != 2 or means.ndim != 2 or actions.shape[0] != means.shape[0]:
        raise MetaRLInputError(f"bandit_exploration: actions {actions.shape} and means {means.shape} must be "
                               f"[B, T] and [B, K] for the same B")
    if actions.size and (actions.min() < 0 or actions.max() >= means.shape[1]):
        raise MetaRLInputError(f"bandit_exploration: actions must be arm indices in [0, {means.shape[1]})")
    b, t = actions.shape
    k = means.shape[1]
    pulled = means[np.arange(b)[:, None], actions]
    quarters = np.array_split(np.arange(t), 4)
    first = np.full((b, k), t + 1, dtype=np.int64)
    for arm in range(k):
        hit = actions == arm
        first[:, arm] = np.where(hit.any(1), hit.argmax(1) + 1, t + 1)
    first.sort(1)
    sorted_means = np.sort(means, 1)
    gap = sorted_means[:, -1] - (sorted_means[:, -2] if k > 1 else 0.0)
    by_gap = []
    for low, high in GAP_BUCKETS:
        mask = (gap >= low) & (gap < high)
        row = {"gap": [low, min(high, 1.0)], **(_summary(actions[mask], means[mask]) if mask.any() else
                                                  {"n": 0, "regret": None, "never_pulled_best": None,
                                                   "ends_on_other": None})}
        by_gap.append(row)
    return {"total": float(pulled.sum(1).mean()),
            "by_quarter": [float(pulled[:, q].sum(1).mean()) for q in quarters],
            "first_try": [float(x) for x in first[:, 1:].mean(0)],
            "arms_tried": float((first <= t).sum(1).mean()),
            **{key: value for key, value in _summary(actions, means).items() if key != "n"},
            "by_gap": by_gap}


def explore_scenario(scenario, out_dir: str | Path, *, agents: Sequence[str] | None = None, seed: int | None = None,
                     num_tasks: int | None = None, log: Callable[[str], None] = print) -> dict:
    """Run the scenario's agents (learners restored from ``out_dir``'s checkpoints) on its held-out bandits,
    record every pull and write ``out_dir/exploration.json`` with :func:`bandit_exploration` per agent."""
    from metarl_apps.core.agent import check_budget
    from metarl_apps.evaluation.runner import compile_rollout
    from metarl_apps.scenario.training import checkpoint_dir, make_agent, select_agents

    dist = scenario.make_distribution()
    if dist.family != FAMILY:
        raise MetaRLInputError(f"explore: scenario {scenario.name!r} is {dist.family!r}; the exploration "
                               f"profile is for {FAMILY!r} scenarios")
    n = check_budget(num_tasks if num_tasks is not None else scenario.tasks.test, what="--tasks")
    task_seed = scenario.tasks.seed if seed is None else seed
    tasks = dist.sample(n, split="test", seed=task_seed)
    means = np.stack([np.asarray(task.params["means"], np.float64) for task in tasks])
    pulls = int(dist.episodes_per_trial)
    out = Path(out_dir)
    results = {}
    for spec in select_agents(scenario, list(agents) if agents else None):
        agent = make_agent(spec)
        if spec.kind == "algorithm":
            agent.restore(str(checkpoint_dir(out, spec.name, 0)), dist)
        else:
            agent.fit(dist, [], seed=0)
        policy = agent.policy_for(dist, tasks, seed=0, budget=pulls)
        env = dist.make_env(tasks, seed=scenario.env_seed)
        _, _, actions = compile_rollout(policy, env, pulls, with_actions=True)()
        stats = bandit_exploration(np.asarray(actions).reshape(n, pulls), means)
        results[spec.name] = stats
        log(describe(spec.name, stats))
    record = {"scenario": scenario.name, "task_seed": task_seed, "tasks": n, "pulls": pulls, "agents": results}
    atomic_write_json(out / "exploration.json", record)
    log(f"wrote {out / 'exploration.json'}")
    return record


def describe(name: str, stats: dict) -> str:
    """One line per agent: total, first tries, never-pulled-best and ends-on-other, regret on easy bandits."""
    easy = stats["by_gap"][-1]
    easy_text = "" if not easy["n"] else f"; gap >= 0.1 ({easy['n']}): regret {easy['regret']:.2f}, ends on " \
                                         f"another arm {easy['ends_on_other']:.1%}"
    return (f"{name:>20}: total {stats['total']:.2f}, first tries at pulls "
            f"{' / '.join(f'{x:.1f}' for x in stats['first_try'])}, arms tried {stats['arms_tried']:.2f}, "
            f"best never pulled {stats['never_pulled_best']:.1%}, ends on another arm "
            f"{stats['ends_on_other']:.1%}{easy_text}")
