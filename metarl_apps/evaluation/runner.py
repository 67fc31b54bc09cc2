"""The one place rollouts are compiled: run a policy for whole trials in a batched trial environment.

``rollout`` builds a single ``tf.function`` around a ``tf.while_loop`` of ``policy.action`` / ``env.step``,
batched over tasks; nothing in the hot path leaves the graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.environments import tf_environment
from tf_agents.policies import tf_policy

from metarl_apps.core.env import NEW_EPISODE


def compile_rollout(policy: tf_policy.TFPolicy, env: tf_environment.TFEnvironment, num_steps: int,
                    with_actions: bool = False):
    """The compiled rollout: a ``tf.function`` that resets ``env`` and runs ``policy`` for ``num_steps`` steps,
    returning tensors ``rewards [B, T]`` and ``episode [B, T]`` (see :func:`rollout`), and with
    ``with_actions`` also ``actions [B, T, *action shape]``. Call it repeatedly to avoid retracing (benchmarks
    do)."""
    batch = env.batch_size
    action_dtype = tf.nest.flatten(env.action_spec())[0].dtype

    @tf.function(autograph=False)
    def run():
        time_step = env.reset()
        state = policy.get_initial_state(batch)
        episode = tf.fill([batch], tf.constant(-1, tf.int32))
        rewards = tf.TensorArray(tf.float32, size=num_steps)
        episodes = tf.TensorArray(tf.int32, size=num_steps)
        actions = tf.TensorArray(action_dtype, size=num_steps if with_actions else 0, dynamic_size=not with_actions)

        def body(t, time_step, state, episode, rewards, episodes, actions):
            new_ep = tf.cast(time_step.observation[NEW_EPISODE] > 0.5, tf.int32)
            episode = episode + new_ep
            step = policy.action(time_step, state, seed=None)
            next_step = env.step(step.action)
            rewards = rewards.write(t, next_step.reward)
            episodes = episodes.write(t, episode)
            if with_actions:
                actions = actions.write(t, tf.nest.flatten(step.action)[0])
            return t + 1, next_step, step.state, episode, rewards, episodes, actions

        _, _, _, _, rewards, episodes, actions = tf.while_loop(
            lambda t, *_: t < num_steps,
            body,
            (tf.constant(0), time_step, state, episode, rewards, episodes, actions),
            parallel_iterations=1,
        )
        out = tf.transpose(rewards.stack()), tf.transpose(episodes.stack())
        if with_actions:
            stacked = actions.stack()  # [T, B, *action shape]
            perm = tf.concat([[1, 0], tf.range(2, tf.rank(stacked))], 0)
            out += (tf.transpose(stacked, perm),)
        return out

    return run


def rollout(policy: tf_policy.TFPolicy, env: tf_environment.TFEnvironment, num_steps: int):
    """Reset ``env`` and run ``policy`` for ``num_steps`` steps.

    Returns numpy arrays ``rewards [B, T]`` (reward of the action taken at step t) and ``episode [B, T]``
    (index of the inner episode in which that action was taken, 0-based).

    No ``tf.random.set_seed`` here: it clears TF's kernel cache, so every compiled function in the process
    would pay a rebuild on its next call. Policies draw from their own seeded streams; the scenario runner
    sets the global seed once per run.
    """
    rewards, episodes = compile_rollout(policy, env, num_steps)()
    return rewards.numpy(), episodes.numpy()


def episode_returns(rewards: np.ndarray, episode: np.ndarray, num_episodes: int) -> np.ndarray:
    """Sum rewards per inner episode: ``[B, T]`` x2 -> ``[B, num_episodes]``."""
    out = np.zeros((rewards.shape[0], num_episodes), dtype=np.float64)
    rows = np.broadcast_to(np.arange(rewards.shape[0])[:, None], rewards.shape)
    valid = (episode >= 0) & (episode < num_episodes)
    np.add.at(out, (rows[valid], episode[valid]), rewards[valid])
    return out
