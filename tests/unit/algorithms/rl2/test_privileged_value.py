"""RL² ``privileged_value``: a critic that reads the task's hidden parameters in training, a policy that never does.

Task features per family, the network's contract (logits blind to the task, value reading it, unroll = step),
that meta-training actually feeds each row its own task (the first-step value separates tasks that an
ordinary critic cannot tell apart), resume, export, and the errors for families without real-valued parameters.
"""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.games.tasks import GridLevelTasks
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.algorithms.rl2 import RL2
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.recurrent import RecurrentActorCritic
from tests.unit.algorithms.helpers import RL2_TINY as TINY
from tests.unit.algorithms.helpers import check_resume_contract, play

GRID = dict(size=6, view_size=3, num_hazards=0, permute_actions=True, episodes=2)


def test_task_features_flatten_each_tasks_real_valued_parameters_in_key_order():
    bandits = BernoulliBandits(arms=4, pulls=3)
    tasks = bandits.sample(5, "test")
    np.testing.assert_array_equal(bandits.task_features(tasks), np.stack([t.params["means"] for t in tasks]))
    mdps = TabularMDPs(states=3, actions=2, horizon=2, episodes=2)
    task = mdps.sample(1)[0]
    features = mdps.task_features([task])
    assert features.shape == (1, 3 * 2 + 3 * 2 * 3) and features.dtype == np.float32
    # "reward_means" sorts before "transitions"
    np.testing.assert_array_equal(features[0, :6], task.params["reward_means"].reshape(-1))
    np.testing.assert_array_equal(features[0, 6:], task.params["transitions"].reshape(-1))
    with pytest.raises(MetaRLInputError, match="at least one Task"):
        bandits.task_features([])
    games = GridLevelTasks(**GRID, max_steps=6)
    with pytest.raises(MetaRLInputError, match="'level_seed' .* is not real-valued.*privileged_value: false"):
        games.task_features(games.sample(2))


def _trial_observations(dist, n):
    env = dist.make_env(dist.sample(n, "test"))
    steps = [env.reset()]
    for _ in range(3):
        steps.append(env.step(tf.zeros([n], tf.int32)))
    return steps


@pytest.mark.parametrize("value_network, head_hidden", [("shared", 0), ("separate", 8)])
def test_value_reads_the_task_info_and_the_logits_never_do(value_network, head_hidden):
    dist = TabularMDPs(states=3, actions=2, horizon=2, episodes=2)
    net = RecurrentActorCritic(dist.observation_spec(), dist.action_spec(), hidden_size=16, embed_sizes=(8,),
                               separate_value=value_network == "separate", head_hidden=head_hidden,
                               task_info_size=5)
    steps = _trial_observations(dist, 3)
    seq = tf.nest.map_structure(lambda *x: tf.stack(x, axis=1), *[t.observation for t in steps])
    state = [tf.random.normal(s.shape) for s in net.initial_state(3)]
    info = tf.random.normal([3, 5])
    logits, value, final = net.unroll(seq, state, info)
    blind_logits, blind_value, blind_final = net.unroll(seq, state)  # acting: no task info (zeros)
    np.testing.assert_allclose(logits.numpy(), blind_logits.numpy())
    for a, b in zip(final, blind_final, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy())
    assert not np.allclose(value.numpy(), blind_value.numpy())
    # each row's value reads its own row of task info (rows swapped -> values swapped)
    _, swapped, _ = net.unroll(seq, state, tf.gather(info, [1, 0, 2]))
    _, value_other_rows, _ = net.unroll(tf.nest.map_structure(lambda x: tf.gather(x, [1, 0, 2]), seq),
                                        [tf.gather(s, [1, 0, 2]) for s in state], info)
    np.testing.assert_allclose(tf.gather(swapped, [1, 0, 2]).numpy(), value_other_rows.numpy(), rtol=1e-5,
                               atol=1e-6)
    s = state
    for t, time_step in enumerate(steps):
        step_logits, step_value, s = net.step(time_step.observation, s, info)
        np.testing.assert_allclose(step_logits.numpy(), logits[:, t].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(step_value.numpy(), value[:, t].numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(MetaRLInputError, match=r"task_info of shape \(3, 4\): expected \[batch, 5\]"):
        net.step(steps[0].observation, state, tf.zeros([3, 4]))


def _first_step_values(learner, dist, tasks, privileged):
    """The critic's value at the first step of a trial of each task (the empty history)."""
    env = dist.make_env(tasks)
    info = (dist.task_features(tasks),) if privileged else ()
    _, value, _ = learner.net.step(env.reset().observation, learner.net.initial_state(len(tasks)), *info)
    return value.numpy()


def test_meta_training_feeds_each_row_its_own_task():
    """At a trial's first step the history is empty, so an ordinary critic gives every bandit the same value.
    The privileged critic, trained on each row's own arm means, values a bandit by them (after 25 iterations
    the policy is still close to uniform, so by their average: correlation 0.94 when written). A wrong wiring
    (zeros, another row's task, a stale batch) would leave no such relation."""
    dist = BernoulliBandits(arms=5, pulls=10)
    pool = dist.sample(512, "train")
    tasks = dist.sample(256, "test")
    average = dist.task_features(tasks).mean(axis=1)
    for privileged in (False, True):
        learner = RL2(hidden_size=32, embed_sizes=(16,), tasks_per_iteration=64, minibatches=2, epochs=2,
                      gae_lambda=0.95, privileged_value=privileged)
        learner.meta_train(dist, pool, iterations=25, seed=0)
        values = _first_step_values(learner, dist, tasks, privileged)
        if privileged:
            assert np.corrcoef(values, average)[0, 1] > 0.8
        else:
            assert np.ptp(values) < 1e-4


def test_privileged_value_resumes_exports_and_refuses_what_it_cannot_serve(tmp_path):
    dist = BernoulliBandits(arms=3, pulls=5)
    settings = {**TINY, "privileged_value": True, "greedy_eval": True}
    restored = check_resume_contract(lambda **kw: RL2(**{**settings, **kw}), "RL2", dist, dist.sample(64, "train"),
                                     tmp_path, mismatch={"privileged_value": False})
    tasks = dist.sample(3, "test")
    policy = restored.adapt(tasks, 5)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    np.testing.assert_array_equal(play(policy, dist, tasks, steps=5)[0], play(loaded, dist, tasks, steps=5)[0])
    with pytest.raises(MetaRLInputError, match="'level_seed' .* is not real-valued"):
        RL2(**TINY, privileged_value=True).meta_train(GridLevelTasks(**GRID, max_steps=6),
                                                      iterations=1)
    team = GridLevelTasks(**GRID, max_steps=6, num_agents=2, control="all")
    with pytest.raises(MetaRLInputError, match="privileged_value=True are not built for"):
        RL2(**TINY, privileged_value=True).meta_train(team, iterations=1)
    with pytest.raises(MetaRLInputError, match="privileged_value"):
        RL2(privileged_value="yes")
