"""Shared by the learner tests."""

import numpy as np


def play(policy, dist, tasks, steps: int = 3):
    """``(actions [steps, B, ...], final policy state)`` of ``policy`` on a fresh trial of ``tasks``."""
    env = dist.make_env(tasks)
    time_step, state, out = env.reset(), policy.get_initial_state(len(tasks)), []
    for _ in range(steps):
        step = policy.action(time_step, state)
        out.append(step.action.numpy())
        time_step, state = env.step(step.action), step.state
    return np.stack(out), state
