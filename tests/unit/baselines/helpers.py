"""Hand-made time steps for driving baseline policies step by step."""

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import time_step as ts

from metarl_apps.evaluation.evaluator import cumulative_returns
from metarl_apps.evaluation.stats import mean_ci95

FIRST, MID = int(ts.StepType.FIRST), int(ts.StepType.MID)


def time_step(step_type, prev_action, reward, obs, new_episode=None):
    """A batched TimeStep; every argument is a per-row list (``obs``: a list of per-row vectors)."""
    step_type = tf.constant(step_type, tf.int32)
    n = int(step_type.shape[0])
    if new_episode is None:
        new_episode = [1.0] * n
    reward = tf.constant(reward, tf.float32)
    observation = {
        "obs": tf.constant(obs, tf.float32),
        "prev_action": tf.constant(prev_action, tf.int32),
        "prev_reward": reward,
        "new_episode": tf.constant(new_episode, tf.float32),
    }
    return ts.TimeStep(step_type, reward, tf.ones([n], tf.float32), observation)


def bandit_step(step_type, prev_action, reward):
    """A bandit TimeStep (obs is the family's constant zero ``[B, 1]``)."""
    return time_step(step_type, prev_action, reward, [[0.0]] * len(step_type))


def totals(baseline, dist, tasks, seed=0):
    """Per-task total reward over a whole trial, as the evaluator computes it."""
    values = cumulative_returns(lambda chunk, cseed: baseline.make_policy(dist, chunk, cseed), dist, tasks,
                                [dist.episodes_per_trial])
    return values[:, 0]


def mean_ci(values):
    return mean_ci95(np.asarray(values))
