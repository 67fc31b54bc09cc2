"""A picture of an agent on one held-out level, episode by episode: before and after adaptation.

:func:`episode_paths` runs a policy for one trial on one task, step by step in eager mode (a picture, not a hot
path), and asks the task family where the agent is after every step; :func:`write_filmstrip` draws one panel per
inner episode — the level with the agent's path over it — side by side in a PNG. Families opt in by
implementing ``render_level(task) -> uint8 [H, W, 3]`` (a picture of the level),
``agent_position(env, after_step) -> (row, col)`` of row 0 of a batch-1 environment (now, or where the last
step left it before any reset), and ``cell_px`` (pixels per grid cell of ``render_level``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from tf_agents.policies import tf_policy

from metarl_apps.core.env import NEW_EPISODE
from metarl_apps.core.io import atomic_write_bytes
from metarl_apps.core.task import Task, TaskDistribution


def supports_filmstrip(dist: TaskDistribution) -> bool:
    return all(hasattr(dist, name) for name in ("render_level", "agent_position", "cell_px"))


def episode_paths(policy: tf_policy.TFPolicy, dist: TaskDistribution, task: Task, num_episodes: int,
                  env_seed: int = 0) -> tuple[list[list[tuple[int, int]]], list[float]]:
    """The agent's cells in each inner episode of one trial on ``task`` (start cell first) and each episode's
    return. ``policy`` must act for a batch of one task (``task``)."""
    env = dist.make_env([task], seed=env_seed)
    time_step = env.reset()
    state = policy.get_initial_state(1)
    paths: list[list[tuple[int, int]]] = []
    returns: list[float] = []
    for _ in range(dist.horizon * num_episodes):
        if float(time_step.observation[NEW_EPISODE][0]) > 0.5:
            if len(paths) == num_episodes:
                break
            paths.append([dist.agent_position(env)])
            returns.append(0.0)
        step = policy.action(time_step, state)
        time_step = env.step(step.action)
        state = step.state
        returns[-1] += float(time_step.reward[0])
        paths[-1].append(dist.agent_position(env, after_step=True))
    return paths, returns


def write_filmstrip(path: str | Path, level: np.ndarray, paths: list[list[tuple[int, int]]], returns: list[float],
                    cell_px: int, title: str) -> Path:
    """PNG with one panel per episode: ``level`` (uint8 ``[H, W, 3]``) and the agent's path (blue, darker with
    time; a circle at the start, a cross where the episode ended). Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(paths)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 3.0), dpi=110, squeeze=False)
    for k, (ax, cells, ret) in enumerate(zip(axes[0], paths, returns, strict=True)):
        ax.imshow(level)
        ys = [(r + 0.5) * cell_px - 0.5 for r, _ in cells]
        xs = [(c + 0.5) * cell_px - 0.5 for _, c in cells]
        jitter = np.linspace(-0.15, 0.15, len(xs)) * cell_px  # overlapping back-and-forth moves stay visible
        ax.plot(np.add(xs, jitter), np.add(ys, jitter), color="#1f4fd0", linewidth=1.5, alpha=0.8)
        ax.plot(xs[0], ys[0], "o", color="#1f4fd0", markersize=7)
        ax.plot(xs[-1], ys[-1], "x", color="black", markersize=8, markeredgewidth=2)
        moved = sum(1 for a, b in zip(cells, cells[1:], strict=False) if a != b)
        label = "before adaptation" if k == 0 else ("after adaptation" if k == n - 1 else "")
        ax.set_title(f"episode {k + 1} {label}\nreturn {ret:+.2f}, {moved} moves", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
