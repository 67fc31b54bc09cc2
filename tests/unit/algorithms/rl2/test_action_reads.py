"""RL² ``set_action_reads``: every action's logit also gets a score, from one scorer shared by the actions, of
that action's own read of the set memory (the transitions that took it).

The scores follow the actions, not their labels (relabel the arms of a bandit history and the scores are
relabelled the same way), the learner trains, resumes, adapts and exports with the larger state, and the
settings it cannot serve are refused.
"""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver
from tf_agents.specs import tensor_spec

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.games.tasks import GridLevelTasks
from metarl_apps.algorithms.rl2 import RL2
from metarl_apps.core.env import PREV_ACTION, PREV_REWARD
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.recurrent import RecurrentActorCritic
from tests.unit.algorithms.helpers import RL2_TINY as TINY
from tests.unit.algorithms.helpers import check_resume_contract, play

SETTINGS = {**TINY, "cell": "set", "set_action_reads": True}


def _history(dist, actions, rewards):
    """Bandit observations ``[B, T]`` of a trial that pulled ``actions`` and saw ``rewards`` ``[B, T - 1]``."""
    b = actions.shape[0]
    env = dist.make_env(dist.sample(b, "test"))
    obs = env.reset().observation
    steps = actions.shape[1] + 1
    seq = {k: tf.stack([v] * steps, 1) for k, v in obs.items()}
    seq[PREV_ACTION] = tf.concat([tf.zeros([b, 1], tf.int32), tf.constant(actions, tf.int32)], 1)
    seq[PREV_REWARD] = tf.concat([tf.zeros([b, 1]), tf.constant(rewards, tf.float32)], 1)
    return seq


def test_scores_follow_the_actions_not_their_labels():
    """With the per-action head and the memory's share of the scorer switched off, the logits are the shared
    scorer of each arm's own read: relabelling the arms in the history relabels the logits. With them on, the
    logits are not equivariant (the plain head reads all arms' sums by position)."""
    dist = BernoulliBandits(arms=4, pulls=8)
    tf.keras.utils.set_random_seed(1)
    net = RecurrentActorCritic(dist.observation_spec(), dist.action_spec(), cell="set", hidden_size=16,
                               embed_sizes=(8,), trial_length=8, set_action_reads=True)
    rng = np.random.default_rng(0)
    actions, rewards = rng.integers(0, 4, size=(3, 7)), rng.integers(0, 2, size=(3, 7)).astype(np.float32)
    perm = np.array([2, 0, 3, 1])  # arm a is called perm[a]
    seq, relabelled = _history(dist, actions, rewards), _history(dist, perm[actions], rewards)
    for kernel in (net._action_memory.kernel, net._policy_head.kernel, net._policy_head.bias):
        kernel.assign(tf.zeros_like(kernel))
    logits, _, _ = net.unroll(seq, net.initial_state(3))
    moved, _, _ = net.unroll(relabelled, net.initial_state(3))
    assert np.ptp(logits.numpy()[:, 1:], axis=-1).min() > 1e-5  # the scores do tell the arms apart
    np.testing.assert_allclose(moved.numpy()[..., perm], logits.numpy(), rtol=1e-5, atol=1e-6)
    net._policy_head.kernel.assign(tf.random.normal(net._policy_head.kernel.shape))
    logits, _, _ = net.unroll(seq, net.initial_state(3))
    moved, _, _ = net.unroll(relabelled, net.initial_state(3))
    assert not np.allclose(moved.numpy()[..., perm], logits.numpy(), atol=1e-4)


def test_action_reads_train_resume_adapt_and_export(tmp_path):
    dist = BernoulliBandits(arms=3, pulls=5)
    make = lambda **kw: RL2(**{**SETTINGS, "greedy_eval": True, **kw})  # noqa: E731 (greedy: replayable)
    restored = check_resume_contract(make, "RL2", dist, dist.sample(64, "train"), tmp_path,
                                     mismatch={"set_action_reads": False})
    assert len(restored.net.state_spec) == 3 + 3  # sum, count, previous input + per-arm sums, counts, inputs seen
    tasks = dist.sample(3, "test")
    policy = restored.adapt(tasks, 5)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    played, state = play(policy, dist, tasks, steps=5)
    reloaded, _ = play(loaded, dist, tasks, steps=5)
    np.testing.assert_array_equal(played, reloaded)
    np.testing.assert_array_equal(state[-2].numpy().sum(axis=1), [4, 4, 4])  # 5 inputs: 4 pulls reported


def test_settings_it_cannot_serve_are_refused():
    with pytest.raises(MetaRLInputError, match="set_action_reads.*needs cell 'set'"):
        RL2(set_action_reads=True)
    with pytest.raises(MetaRLInputError, match="set_action_reads"):
        RL2(cell="set", set_action_reads="yes")
    dist = BernoulliBandits(arms=3, pulls=5)
    two_slots = tensor_spec.BoundedTensorSpec([2], tf.int32, 0, 2)
    with pytest.raises(MetaRLInputError, match=r"set_action_reads needs cell 'set', one discrete action per step.*"
                                               r"action shape \[2\]"):
        RecurrentActorCritic(dist.observation_spec(), two_slots, cell="set", set_action_reads=True)
    team = GridLevelTasks(size=6, view_size=3, num_hazards=0, episodes=2, max_steps=6, num_agents=2, control="all")
    with pytest.raises(MetaRLInputError, match="set_action_reads=True is not built for"):
        RL2(**SETTINGS).meta_train(team, iterations=1)
