"""MQL learner: replay isolation, adaptation, export, checkpoints/resume, NaN guard — tiny, fast problems."""

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver

from metarl_apps.adapters.bandits import BernoulliBandits
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.algorithms.mql import MQL, MQLPolicy
from metarl_apps.core.errors import MetaRLInputError, TrainingError
from metarl_apps.core.registry import ALGORITHMS
from metarl_apps.core.task import Task
from tests.unit.algorithms.helpers import NaNBandits, check_resume_contract

TINY = dict(hidden_size=16, embed_sizes=(8,), head_size=8, tasks_per_iteration=4, batch_size=4,
            updates_per_iteration=2, trials_per_task=2, meta_trials=4, adapt_steps=5, propensity_steps=20)


def _bandit(i: int, value: float, split: str) -> Task:
    return Task(f"{split}/x/{i}", "bandits.bernoulli", {"means": np.full(3, value, np.float32)}, split, 1000 + i)


def test_registered():
    assert ALGORITHMS.get("mql") is MQL


def test_replay_routes_each_trial_to_its_task_and_never_holds_held_out_data():
    dist = BernoulliBandits(arms=3, pulls=4)
    # train task 0 pays 1 on every arm, the others never pay: each buffer's rewards reveal whose trials it holds
    pool = [_bandit(0, 1.0, "train")] + [_bandit(i, 0.0, "train") for i in range(1, 6)]
    learner = MQL(**TINY)
    learner.meta_train(dist, pool, iterations=6, seed=0)
    replay = learner.replay
    assert replay.task_ids == [t.task_id for t in pool]
    count = replay.count.numpy()
    assert count.sum() == 6 * 4 and (count > 0).all()
    rewards = replay.rewards.numpy()  # [P, C, T]
    filled = [min(int(n), replay.capacity) for n in count]
    assert (rewards[0, :filled[0]] == 1.0).all()
    assert all((rewards[i, :filled[i]] == 0.0).all() for i in range(1, 6))
    before = [v.numpy().copy() for v in replay.variables]
    # adapting to held-out tasks (that pay 1) online and offline leaves the meta-training replay untouched
    held_out = [_bandit(i, 1.0, "test") for i in range(3)]
    policy = learner.adapt(held_out, 2)
    logged = learner._collect(dist.make_env(held_out, seed=5), 3)
    learner.adapt_offline(dist, held_out, logged)
    for a, b in zip(before, replay.variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())
    assert not set(t.task_id for t in held_out) & set(replay.task_ids)
    assert isinstance(policy, MQLPolicy) and policy.adaptation["mode"] == "online"
    # held-out tasks are refused for meta-training
    with pytest.raises(MetaRLInputError, match="held-out"):
        MQL(**TINY).meta_train(dist, pool + held_out, iterations=1)


def test_adaptation_reports_ess_and_moves_the_heads_within_the_proximal_leash():
    dist = TabularMDPs(states=3, actions=2, horizon=2, episodes=3)
    learner = MQL(**{**TINY, "adapt_steps": 30})
    learner.meta_train(dist, dist.sample(8, "train"), iterations=3, seed=0)
    tasks = dist.sample(3, "test")
    learner.adapt(tasks, 2)
    stats = learner.last_adaptation
    assert stats["meta_transitions"] == 4 * 6
    assert 1.0 <= stats["ess_min"] <= stats["ess_max"] <= stats["meta_transitions"]
    assert 0.0 < stats["head_shift"]
    loose = stats["head_shift"]
    tight = MQL(**{**TINY, "adapt_steps": 30, "proximal_coef": 1000.0})
    tight.meta_train(dist, dist.sample(8, "train"), iterations=3, seed=0)
    tight.adapt(tasks, 2)
    assert tight.last_adaptation["head_shift"] < 0.2 * loose
    # the context resets at each trial start and the adapted heads act per task
    policy = learner.adapt(tasks, 3)
    env = dist.make_env(tasks)
    ts = env.reset()
    state = policy.get_initial_state(3)
    for _ in range(6):
        step = policy.action(ts, state)
        state = step.state
        ts = env.step(step.action)
    assert np.abs(state[0].numpy()).sum() > 0


def test_adapt_offline_input_errors_are_one_line():
    dist = BernoulliBandits(arms=3, pulls=4)
    learner = MQL(**TINY)
    learner.meta_train(dist, dist.sample(4, "train"), iterations=1)
    tasks = dist.sample(2, "test")
    logged = learner._collect(dist.make_env(tasks), 3)
    with pytest.raises(MetaRLInputError, match="keys 'observations', 'actions' and 'rewards'"):
        learner.adapt_offline(dist, tasks, {"rewards": logged["rewards"]})
    with pytest.raises(MetaRLInputError, match=r"rewards has shape \[1, 3\]; expected \[2, K\]"):
        learner.adapt_offline(dist, tasks, {**logged, "rewards": logged["rewards"][:1]})
    with pytest.raises(MetaRLInputError, match=r"actions has shape \[2, 2\]; expected \[2, 3\]"):
        learner.adapt_offline(dist, tasks, {**logged, "actions": logged["actions"][:, :2]})
    with pytest.raises(MetaRLInputError, match="call meta_train"):
        MQL(**TINY).adapt_offline(dist, tasks, logged)


@pytest.mark.parametrize("cell", ["gru", "set"])
def test_policy_saver_round_trip_gives_the_same_actions(tmp_path, cell):
    dist = TabularMDPs(states=3, actions=3, horizon=2, episodes=2)
    learner = MQL(**TINY, cell=cell)
    learner.meta_train(dist, dist.sample(8, "train"), iterations=2, seed=0)
    tasks = dist.sample(3, "test")
    policy = learner.adapt(tasks, 1)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    env = dist.make_env(tasks)
    ts = env.reset()
    state, loaded_state = policy.get_initial_state(3), loaded.get_initial_state(3)
    for _ in range(4):
        step, loaded_step = policy.action(ts, state), loaded.action(ts, loaded_state)
        np.testing.assert_array_equal(step.action.numpy(), loaded_step.action.numpy())
        for s, loaded_s in zip(step.state, loaded_step.state, strict=True):
            np.testing.assert_allclose(s.numpy(), loaded_s.numpy(), rtol=1e-5, atol=1e-6)
        state, loaded_state = step.state, loaded_step.state
        ts = env.step(step.action)


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    dist = BernoulliBandits(arms=3, pulls=3)
    cfg = {**TINY, "epsilon_decay_iterations": 3, "target_update_period": 3}
    restored = check_resume_contract(lambda **kw: MQL(**{**cfg, **kw}), "MQL", dist, dist.sample(8, "train"),
                                     tmp_path, state=lambda m: m.net.trainable_variables + m.replay.variables)
    restored.adapt(dist.sample(2, "test"), 2)  # the restored replay serves adaptation


def test_nan_loss_stops_training_and_keeps_checkpoints(tmp_path):
    dist = NaNBandits(arms=2, pulls=3)
    with pytest.raises(TrainingError, match="MQL: non-finite training metrics at iteration 0"):
        MQL(**TINY).meta_train(dist, dist.sample(8, "train"), iterations=2, checkpoint_dir=str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path)) is None


def test_offline_scoring_adapts_on_logs_of_the_logging_policy():
    """scoring: offline — the runner's policy comes from adapt_offline on logs that a registered baseline wrote
    on the adaptation env seed (not the evaluation's), with the effective sample size reported."""
    from metarl_apps.baselines.classic import RandomBaseline

    dist = BernoulliBandits(arms=3, pulls=10)
    learner = MQL(**TINY, scoring="offline", logging_policy="random", logged_interactions=6)
    learner.meta_train(dist, dist.sample(8, "train"), iterations=3, seed=0)
    tasks = dist.sample(4, "test")
    logged = learner.log_interactions(dist, tasks, seed=5)
    assert logged["rewards"].shape == (4, 6) and logged["actions"].shape == (4, 6)
    # the logs are the random baseline's actions on the adaptation env seed
    env = dist.make_env(tasks, seed=learner.config.adapt_env_seed)
    again = learner._collect(env, 6, RandomBaseline().make_policy(dist, tasks, 5))
    np.testing.assert_array_equal(logged["actions"].numpy(), again["actions"].numpy())
    np.testing.assert_array_equal(logged["rewards"].numpy(), again["rewards"].numpy())
    policy = learner.policy_for(dist, tasks, seed=5, budget=10)
    assert isinstance(policy, MQLPolicy) and policy.adaptation["mode"] == "offline"
    assert 1.0 <= policy.adaptation["ess_min"] <= policy.adaptation["meta_transitions"]
    in_context = MQL(**TINY)
    in_context.meta_train(dist, dist.sample(8, "train"), iterations=1, seed=0)
    assert in_context.policy_for(dist, tasks).adaptation["mode"] == "in-context"


def test_offline_scoring_errors_are_one_line():
    dist = BernoulliBandits(arms=3, pulls=4)
    with pytest.raises(MetaRLInputError, match="scoring='later': must be one of in_context, offline"):
        MQL(**TINY, scoring="later")
    learner = MQL(**TINY, scoring="offline", logged_interactions=9)
    learner.meta_train(dist, dist.sample(4, "train"), iterations=1)
    with pytest.raises(MetaRLInputError, match="logged_interactions=9: at most one trial"):
        learner.policy_for(dist, dist.sample(2, "test"))
    unknown = MQL(**TINY, scoring="offline", logging_policy="nobody", logged_interactions=2)
    unknown.meta_train(dist, dist.sample(4, "train"), iterations=1)
    with pytest.raises(MetaRLInputError, match="nobody"):
        unknown.policy_for(dist, dist.sample(2, "test"))
