"""RL² ``compute_dtype: bfloat16`` (set memory): bfloat16 dense layers over float32 weights, sums and losses.

The network's contract in bfloat16 (float32 outputs and variables, step = unroll, close to the float32 network
with the same weights), training with resume and export, and the refusals (unknown dtype, LSTM/GRU, agents).
"""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.games.tasks import GridLevelTasks
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.algorithms.rl2 import RL2, RL2Config
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.networks.recurrent import RecurrentActorCritic
from tests.unit.algorithms.helpers import RL2_TINY as TINY
from tests.unit.algorithms.helpers import check_resume_contract, play

SET = {**TINY, "cell": "set", "set_keys": 3, "set_normalize_keyed": True}


def _nets(dist, **kwargs):
    """A bfloat16 and a float32 network over the same float32 weights."""
    made = []
    for dtype in ("bfloat16", "float32"):
        tf.keras.utils.set_random_seed(0)
        made.append(RecurrentActorCritic(dist.observation_spec(), dist.action_spec(), cell="set", hidden_size=16,
                                         embed_sizes=(8,), trial_length=dist.horizon * dist.episodes_per_trial,
                                         compute_dtype=dtype, **kwargs))
    low, full = made
    for a, b in zip(low.trainable_variables, full.trainable_variables, strict=True):
        assert a.dtype == b.dtype == tf.float32 and a.name == b.name
        b.assign(a)
    return low, full


@pytest.mark.parametrize("kwargs", [{}, {"set_keys": 3, "set_normalize_keyed": True, "head_hidden": 8}])
def test_bfloat16_network_outputs_float32_steps_like_its_unroll_and_stays_near_float32(kwargs):
    dist = TabularMDPs(states=3, actions=2, horizon=3, episodes=2)
    low, full = _nets(dist, **kwargs)
    env = dist.make_env(dist.sample(4, "test"))
    steps, time_step = [], env.reset()
    for t in range(6):
        steps.append(time_step.observation)
        time_step = env.step(tf.constant([t % 2] * 4, tf.int32))
    seq = tf.nest.map_structure(lambda *x: tf.stack(x, axis=1), *steps)
    logits, value, final = low.unroll(seq, low.initial_state(4))
    assert logits.dtype == value.dtype == tf.float32 and all(s.dtype == tf.float32 for s in final)
    state = low.initial_state(4)
    for t, obs in enumerate(steps):
        step_logits, step_value, state = low.step(obs, state)
        # bfloat16 keeps ~3 significant digits; step and unroll may round differently
        np.testing.assert_allclose(step_logits.numpy(), logits[:, t].numpy(), rtol=0.05, atol=0.02)
        np.testing.assert_allclose(step_value.numpy(), value[:, t].numpy(), rtol=0.05, atol=0.02)
    full_logits, full_value, _ = full.unroll(seq, full.initial_state(4))
    np.testing.assert_allclose(logits.numpy(), full_logits.numpy(), rtol=0.05, atol=0.02)
    np.testing.assert_allclose(value.numpy(), full_value.numpy(), rtol=0.05, atol=0.02)
    assert not np.array_equal(logits.numpy(), full_logits.numpy())  # it did compute in bfloat16


def test_bfloat16_training_resumes_exports_and_acts_the_same_after_reloading(tmp_path):
    dist = BernoulliBandits(arms=3, pulls=5)
    settings = {**SET, "compute_dtype": "bfloat16", "greedy_eval": True}
    restored = check_resume_contract(lambda **kw: RL2(**{**settings, **kw}), "RL2", dist, dist.sample(64, "train"),
                                     tmp_path)
    assert all(v.dtype == tf.float32 for v in restored.net.trainable_variables)
    tasks = dist.sample(3, "test")
    policy = restored.adapt(tasks, 5)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    np.testing.assert_array_equal(play(policy, dist, tasks, steps=5)[0], play(loaded, dist, tasks, steps=5)[0])
    # the float32 network restores the bfloat16 run's checkpoint: the weights are float32 either way
    as_float32 = RL2(**{**settings, "compute_dtype": "float32"})
    as_float32.restore(str(tmp_path / "a"), dist)
    for a, b in zip(restored.net.trainable_variables, as_float32.net.trainable_variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_compute_dtype_refusals_name_the_fix():
    with pytest.raises(MetaRLInputError, match="compute_dtype.*must be 'float32' or 'bfloat16'"):
        RL2Config(cell="set", compute_dtype="float16")
    with pytest.raises(MetaRLInputError, match="compute_dtype.*'bfloat16' needs cell 'set'"):
        RL2Config(compute_dtype="bfloat16")
    dist = BernoulliBandits(arms=3, pulls=5)
    with pytest.raises(MetaRLInputError, match="compute_dtype='bfloat16' is built for cell 'set', not 'lstm'"):
        RecurrentActorCritic(dist.observation_spec(), dist.action_spec(), cell="lstm", compute_dtype="bfloat16")
    team = GridLevelTasks(size=6, view_size=3, num_hazards=0, permute_actions=True, episodes=2, max_steps=6,
                          num_agents=2, control="all")
    refusal = "compute_dtype='bfloat16' is not built for 'games.gridlevels'.*use compute_dtype 'float32'"
    with pytest.raises(MetaRLInputError, match=refusal):
        RL2(**{**TINY, "cell": "set", "compute_dtype": "bfloat16"}).meta_train(team, iterations=1)


@pytest.mark.parametrize("kwargs", [{"scoring": "item_features", "privileged_value": True, "head_hidden": 8},
                                    {"slate": True, "prior": "global_mlp"}])
def test_bfloat16_trains_and_adapts_on_recommendation_slates_with_every_head(kwargs):
    from metarl_apps.core.registry import make_task_distribution

    dist = make_task_distribution("recsys.interest_evolution", interactions=5)
    learner = RL2(cell="set", compute_dtype="bfloat16", hidden_size=16, embed_sizes=(8,), tasks_per_iteration=8,
                  minibatches=2, epochs=1, **kwargs)
    result = learner.meta_train(dist, dist.sample(16, "train"), iterations=2)
    assert np.isfinite(result.metrics["loss"])
    tasks = dist.sample(3, "test")
    actions, _ = play(learner.adapt(tasks, 5), dist, tasks, steps=5)
    assert actions.shape == (5, 3, 3) and ((actions >= 0) & (actions < 30)).all()
