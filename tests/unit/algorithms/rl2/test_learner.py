"""RL² learner: memory semantics, export, checkpoints/resume, bad input — on tiny, fast problems."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver

from metarl_apps.adapters.bandits import BernoulliBanditEnvironment, BernoulliBandits
from metarl_apps.adapters.mdp import TabularMDPs
from metarl_apps.algorithms.rl2 import RL2, RL2Policy
from metarl_apps.core.errors import MetaRLInputError, TrainingError
from tests.unit.algorithms.helpers import RL2_TINY as TINY
from tests.unit.algorithms.helpers import NaNBandits, check_resume_contract, play


def _trained(dist, iterations=2, **kw):
    learner = RL2(**{**TINY, **kw})
    learner.meta_train(dist, dist.sample(64, "train"), iterations=iterations, seed=0)
    return learner


@pytest.mark.parametrize("cell, value_network, head_hidden, extra", [
    ("lstm", "shared", 0, {}), ("set", "shared", 0, {}), ("gru", "separate", 0, {}), ("lstm", "separate", 8, {}),
    ("set", "shared", 0, {"set_keys": 4, "set_normalize_keyed": True})])
def test_memory_persists_across_episodes_and_resets_at_trial_start(cell, value_network, head_hidden, extra):
    dist = TabularMDPs(states=3, actions=2, horizon=2, episodes=3)
    learner = _trained(dist, cell=cell, value_network=value_network, head_hidden=head_hidden, **extra)
    policy = learner.adapt(dist.sample(4, "test"), 3)
    assert isinstance(policy, RL2Policy)
    env = dist.make_env(dist.sample(4, "test"))
    ts = env.reset()
    state = policy.get_initial_state(4)
    states = []
    for _ in range(2 * 3):
        step = policy.action(ts, state)
        state = step.state
        states.append(state[0].numpy())
        ts = env.step(step.action)
        if ts.observation["new_episode"].numpy().any():
            # an inner-episode boundary: the memory must carry over, not return to zeros
            assert np.abs(state[0].numpy()).sum() > 0
    # at a new trial (FIRST step) tf-agents' automatic state reset returns to the initial state
    ts = env.step(tf.zeros([4], tf.int32))
    assert ts.is_first().numpy().all()
    from_nonzero = policy.action(ts, state).state
    from_zero = policy.action(ts, policy.get_initial_state(4)).state
    np.testing.assert_allclose(from_nonzero[0].numpy(), from_zero[0].numpy())
    assert len({s.tobytes() for s in states}) == len(states)


def test_separate_value_network_has_its_own_memory():
    """value_network: separate — the value reads its own cell (state = policy cell's, then value cell's): the
    policy's logits do not depend on the value cell's weights or state, nor the value on the policy's; a
    whole-sequence unroll equals step-by-step acting."""
    dist = TabularMDPs(states=3, actions=2, horizon=2, episodes=3)
    shared, separate = (RL2(**TINY, value_network=v) for v in ("shared", "separate"))
    for learner in (shared, separate):
        learner._build(dist)
    net = separate.net
    assert len(net.state_spec) == 4 and len(shared.net.state_spec) == 2  # LSTM [h, c] (+ the value's [h, c])
    env = dist.make_env(dist.sample(3, "test"))
    steps = [env.reset()]
    for a in ([0, 1, 0], [1, 1, 0], [0, 0, 1]):
        steps.append(env.step(tf.constant(a, tf.int32)))
    seq = tf.nest.map_structure(lambda *x: tf.stack(x, axis=1), *[t.observation for t in steps])
    state = [tf.random.normal(s.shape) for s in net.initial_state(3)]
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(state)
        logits, value, final = net.unroll(seq, state)
    policy_vars = net._rnn.trainable_variables + [v for layer in net._embed for v in layer.trainable_variables]
    value_vars = net._value_rnn.trainable_variables + [
        v for layer in net._value_embed for v in layer.trainable_variables]
    assert all(g is None for g in tape.gradient(logits, value_vars + state[2:]))
    assert all(g is None for g in tape.gradient(value, policy_vars + state[:2]))
    assert all(g is not None for g in tape.gradient(value, value_vars + state[2:]))
    s = state
    for t, time_step in enumerate(steps):
        step_logits, step_value, s = net.step(time_step.observation, s)
        np.testing.assert_allclose(step_logits.numpy(), logits[:, t].numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(step_value.numpy(), value[:, t].numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(s, final, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("value_network", ["shared", "separate"])
def test_head_hidden_heads_read_the_current_observation(value_network):
    """head_hidden: the heads see the encoded current observation next to the memory. With the recurrent
    cell's input kernel zeroed (the observation cannot reach the memory), the logits and value still depend on
    the current state; with linear heads they cannot. Unrolling equals stepping."""
    dist = TabularMDPs(states=3, actions=2, horizon=2, episodes=3)
    env = dist.make_env(dist.sample(2, "test"))
    first = env.reset()
    later = env.step(tf.constant([0, 1], tf.int32))
    obs = [tf.nest.map_structure(lambda x: x[:1], first.observation) for _ in range(2)]
    obs[1] = {**obs[0], "obs": tf.constant([[0.0, 0.0, 1.0]])}  # the same step in another current state
    assert not np.allclose(obs[0]["obs"].numpy(), obs[1]["obs"].numpy())
    for head_hidden in (0, 8):
        learner = RL2(**TINY, value_network=value_network, head_hidden=head_hidden)
        learner._build(dist)
        net = learner.net
        for rnn in [net._rnn] + ([net._value_rnn] if value_network == "separate" else []):
            rnn.cell.kernel.assign(tf.zeros_like(rnn.cell.kernel))
        state = [tf.random.normal(s.shape) for s in net.initial_state(1)]
        (l0, v0, _), (l1, v1, _) = (net.step(o, state) for o in obs)
        assert np.allclose(l0.numpy(), l1.numpy()) == (not head_hidden)
        assert np.allclose(v0.numpy(), v1.numpy()) == (not head_hidden)
        seq = tf.nest.map_structure(lambda *x: tf.stack(x, axis=1), first.observation, later.observation)
        state = [tf.random.normal(s.shape) for s in net.initial_state(2)]
        logits, value, _ = net.unroll(seq, state)
        s = state
        for t, o in enumerate((first.observation, later.observation)):
            step_logits, step_value, s = net.step(o, s)
            np.testing.assert_allclose(step_logits.numpy(), logits[:, t].numpy(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(step_value.numpy(), value[:, t].numpy(), rtol=1e-5, atol=1e-6)


def test_policy_saver_export_reloads_in_a_fresh_process(tmp_path):
    dist = BernoulliBandits(arms=3, pulls=4)
    learner = _trained(dist, greedy_eval=True)
    policy = learner.adapt(dist.sample(2, "test"), 4)
    saver = policy_saver.PolicySaver(policy, batch_size=None)
    saver.save(str(tmp_path / "policy"))
    env = dist.make_env(dist.sample(2, "test"))
    ts = env.reset()
    state = policy.get_initial_state(2)
    expected, inputs = [], []
    for _ in range(4):
        step = policy.action(ts, state)
        inputs.append((ts, state))
        expected.append(step.action.numpy())
        state = step.state
        ts = env.step(step.action)
    np.savez(tmp_path / "io.npz", **{
        f"{i}_{k}": v for i, (t, s) in enumerate(inputs) for k, v in {
            "step_type": t.step_type.numpy(), "reward": t.reward.numpy(), "discount": t.discount.numpy(),
            "obs": t.observation["obs"].numpy(), "prev_action": t.observation["prev_action"].numpy(),
            "prev_reward": t.observation["prev_reward"].numpy(),
            "new_episode": t.observation["new_episode"].numpy(),
            "h": s[0].numpy(), "c": s[1].numpy()}.items()})
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        from tf_agents.trajectories import time_step as ts
        p = tf.saved_model.load({str(tmp_path / 'policy')!r})
        d = np.load({str(tmp_path / 'io.npz')!r})
        out = []
        for i in range(4):
            t = ts.TimeStep(tf.constant(d[f"{{i}}_step_type"]), tf.constant(d[f"{{i}}_reward"]),
                            tf.constant(d[f"{{i}}_discount"]),
                            {{"obs": tf.constant(d[f"{{i}}_obs"]), "prev_action": tf.constant(d[f"{{i}}_prev_action"]),
                              "prev_reward": tf.constant(d[f"{{i}}_prev_reward"]),
                              "new_episode": tf.constant(d[f"{{i}}_new_episode"])}})
            step = p.action(t, [tf.constant(d[f"{{i}}_h"]), tf.constant(d[f"{{i}}_c"])])
            out.append(step.action.numpy().tolist())
        print(out)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          check=False, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str([e.tolist() for e in expected])


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    dist = BernoulliBandits(arms=3, pulls=5)
    # the schedules are functions of the iteration index, so a resumed run continues them (the learning rate
    # restored with the optimizer is overwritten by the schedule's value before the next update)
    anneal = dict(entropy_coef=0.2, entropy_coef_final=0.0, entropy_anneal_iterations=3,
                  learning_rate=1e-2, learning_rate_final=1e-3, learning_rate_anneal_iterations=2,
                  discount=0.5, discount_final=0.99, discount_anneal_iterations=2, anneal_start=1,
                  phases=[{"start": 3, "discount": 1.0, "gae_lambda": 1.0, "learning_rate": 5e-3}])
    check_resume_contract(lambda **kw: RL2(**{**TINY, **anneal, **kw}), "RL2", dist, dist.sample(64, "train"),
                          tmp_path)


def test_model_selection_keeps_the_best_validation_weights_and_resumes(tmp_path):
    import json

    dist = BernoulliBandits(arms=3, pulls=5)
    pool = dist.sample(64, "train")
    sel = dict(select_every=1, select_tasks=32, select_budgets=[2, 5], learning_rate=3e-2)
    # resume with selection on: same (best) weights as an uninterrupted run; restore() loads the best weights
    restored = check_resume_contract(lambda **kw: RL2(**{**TINY, **sel, **kw}), "RL2", dist, pool, tmp_path)
    record = json.loads((tmp_path / "a" / "best" / "selection.json").read_text())
    scores = [h["score"] for h in record["history"]]
    assert [h["iteration"] for h in record["history"]] == [1, 2, 3, 4]
    assert record["best_iteration"] == 1 + int(np.argmax(scores)) and record["best_score"] == max(scores)
    # the score replays the same validation bandits with the same draws: scoring the kept weights again gives
    # exactly the recorded best score (so scores of different iterations are comparable)
    again = RL2(**{**TINY, **sel})
    again.meta_train(dist, pool, iterations=4, seed=3)
    rescore = again._make_selection(dist, 3, None)
    assert rescore._score() == pytest.approx(record["best_score"], abs=1e-9)
    for a, b in zip(again.net.trainable_variables, restored.net.trainable_variables, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(MetaRLInputError, match=r"select_budgets=\[9\]: a trial of 'bandits.bernoulli' has 5"):
        RL2(**{**TINY, "select_every": 1, "select_budgets": [9]}).meta_train(dist, pool, iterations=1)


def test_learning_rate_schedule_drives_the_optimizer():
    dist = BernoulliBandits(arms=3, pulls=5)
    pool = dist.sample(64, "train")
    cfg = dict(learning_rate=1e-2, learning_rate_final=1e-3, learning_rate_anneal_iterations=4)
    learner = RL2(**{**TINY, **cfg, "anneal_start": 1})
    learner.meta_train(dist, pool, iterations=3)
    assert float(learner._optimizer.learning_rate) == pytest.approx(learner.learning_rate_at(2)) == pytest.approx(
        1e-2 - 0.25 * 9e-3)
    # the schedule changes the run: a later anneal start gives other weights after the same iterations
    late = RL2(**{**TINY, **cfg, "anneal_start": 3})
    late.meta_train(dist, pool, iterations=3)
    assert float(late._optimizer.learning_rate) == pytest.approx(1e-2)
    assert any(not np.allclose(a.numpy(), b.numpy())
               for a, b in zip(learner.net.trainable_variables, late.net.trainable_variables, strict=True))


def test_discount_schedule_drives_the_advantages():
    dist = BernoulliBandits(arms=3, pulls=5)
    pool = dist.sample(64, "train")
    cfg = dict(discount=0.5, discount_final=0.99, discount_anneal_iterations=4)
    learner = RL2(**{**TINY, **cfg, "anneal_start": 1})
    learner.meta_train(dist, pool, iterations=3)
    assert float(learner._discount) == pytest.approx(learner.discount_at(2)) == pytest.approx(0.5 + 0.25 * 0.49)
    # the same run with the discount held at its start value ends with other weights
    flat = RL2(**{**TINY, "discount": 0.5})
    flat.meta_train(dist, pool, iterations=3)
    assert float(flat._discount) == pytest.approx(0.5)
    assert any(not np.allclose(a.numpy(), b.numpy())
               for a, b in zip(learner.net.trainable_variables, flat.net.trainable_variables, strict=True))


def test_a_phase_leaves_earlier_iterations_alone_and_drives_gae_lambda_after():
    dist = BernoulliBandits(arms=3, pulls=5)
    pool = dist.sample(64, "train")

    def weights(iterations, **cfg):
        learner = RL2(**{**TINY, "gae_lambda": 0.3, **cfg})
        learner.meta_train(dist, pool, iterations=iterations, seed=2)
        return learner, [v.numpy() for v in learner.net.trainable_variables]

    phase = {"phases": [{"start": 2, "gae_lambda": 1.0}]}
    _, plain2 = weights(2)
    _, phased2 = weights(2, **phase)
    for a, b in zip(plain2, phased2, strict=True):  # iterations before the phase: the same run
        np.testing.assert_array_equal(a, b)
    _, plain3 = weights(3)
    learner, phased3 = weights(3, **phase)
    assert float(learner._gae_lambda) == pytest.approx(1.0)
    assert any(not np.allclose(a, b) for a, b in zip(plain3, phased3, strict=True))  # λ reached the update


def test_nan_loss_stops_training_and_keeps_checkpoints(tmp_path):
    dist = NaNBandits(arms=2, pulls=3)
    with pytest.raises(TrainingError, match="non-finite training metrics at iteration 0"):
        RL2(**TINY).meta_train(dist, dist.sample(32, "train"), iterations=2, checkpoint_dir=str(tmp_path))
    assert tf.train.latest_checkpoint(str(tmp_path)) is None


def test_multi_discrete_actions_run():
    from tf_agents.specs import tensor_spec

    class TwoHeads(BernoulliBandits):
        """Pull a pair of arms at once; reward from the first (a multi-discrete action [2])."""

        def action_spec(self):
            return tensor_spec.BoundedTensorSpec((2,), tf.int32, 0, self.arms - 1, name="action")

        def _make_env(self, tasks, seed):
            class Env(BernoulliBanditEnvironment):
                def _transition(self, action, h, counter):
                    return super()._transition(action[:, 0], h, counter)

            means = np.stack([t.params["means"] for t in tasks])
            return Env(means, [t.seed for t in tasks], self.action_spec(), self.pulls, seed=seed)

    dist = TwoHeads(arms=3, pulls=4)
    learner = _trained(dist)
    curve = learner.evaluate(dist, dist.sample(8, "test"), [1, 4])
    assert curve.values.shape == (1, 8, 2)


def test_greedy_slates_of_independent_slot_heads_never_repeat_an_item():
    from metarl_apps.algorithms.rl2.policy import distinct_slots
    from metarl_apps.core.registry import make_task_distribution

    logits = tf.constant([[[0.0, 5.0, 1.0, 2.0], [0.0, 9.0, 3.0, 1.0], [4.0, 8.0, 3.5, 0.0]]])  # 3 slots, 4 items
    # slot 0 takes item 1; slot 1's best (item 1) is taken, so item 2; slot 2 then item 0
    assert distinct_slots(logits).numpy().tolist() == [[1, 2, 0]]
    dist = make_task_distribution("recsys.interest_evolution", num_topics=3, num_docs=6, slate_size=3,
                                  interactions=4, corpus_seed=0)
    learner = _trained(dist, greedy_eval=True)
    tasks = dist.sample(8, "test")
    actions, _ = play(learner.adapt(tasks, 4), dist, tasks, steps=4)
    assert all(len(set(row)) == 3 for row in actions.reshape(-1, 3).tolist())


def test_item_feature_scoring_shares_one_scorer_across_items():
    from metarl_apps.core.errors import MetaRLInputError
    from metarl_apps.core.registry import make_task_distribution
    from metarl_apps.networks.recurrent import RecurrentActorCritic

    dist = make_task_distribution("recsys.interest_evolution", num_topics=3, num_docs=6, slate_size=2,
                                  interactions=4, corpus_seed=0)
    spec = dist.observation_spec()
    for slate, shape in ((False, (1, 2, 6)), (True, (1, 6))):
        net = RecurrentActorCritic(spec, dist.action_spec(), hidden_size=8, embed_sizes=(8,), slate=slate,
                                   scoring="item_features")
        obs = tf.nest.map_structure(lambda s: tf.zeros([1] + s.shape.as_list(), s.dtype), spec)
        docs = np.random.default_rng(0).normal(size=(1, 6, 4)).astype(np.float32)
        docs[0, 1] = docs[0, 0]  # items 0 and 1 look the same
        obs["obs"]["doc_features"] = tf.constant(docs)
        assert net.step(obs, net.initial_state(1))[0].shape == shape
        memory = tf.constant(np.random.default_rng(1).normal(size=(1, 8)).astype(np.float32))
        logits, _ = net._heads(memory, obs)  # the policy head on a fixed memory
        np.testing.assert_allclose(logits[..., 0], logits[..., 1])
        docs[0, 2] += 1.0  # only item 2's logit moves when only item 2's features change
        obs["obs"]["doc_features"] = tf.constant(docs)
        moved = np.abs(net._heads(memory, obs)[0].numpy() - logits.numpy())
        assert (moved[..., 2] > 0).all() and np.allclose(np.delete(moved, 2, axis=-1), 0.0)
    with pytest.raises(MetaRLInputError, match=r"scoring 'item_features' needs obs\['doc_features'\]"):
        RL2(**TINY, scoring="item_features").meta_train(BernoulliBandits(arms=3, pulls=4), iterations=1)
    with pytest.raises(MetaRLInputError, match="scoring='by_id': must be 'per_item' or 'item_features'"):
        RL2(scoring="by_id")


def test_item_feature_scoring_trains_and_survives_policy_saver(tmp_path):
    from metarl_apps.core.registry import make_task_distribution

    dist = make_task_distribution("recsys.interest_evolution", num_topics=3, num_docs=6, slate_size=2,
                                  interactions=4, corpus_seed=0)
    learner = _trained(dist, scoring="item_features", greedy_eval=True)
    tasks = dist.sample(4, "test")
    policy = learner.adapt(tasks, 4)
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    np.testing.assert_array_equal(play(policy, dist, tasks, steps=4)[0], play(loaded, dist, tasks, steps=4)[0])


def test_keyed_set_memory_with_normalised_reads_survives_policy_saver(tmp_path):
    dist = TabularMDPs(states=3, actions=2, horizon=2, episodes=3)
    learner = _trained(dist, cell="set", set_keys=4, set_normalize_keyed=True, greedy_eval=True)
    tasks = dist.sample(4, "test")
    policy = learner.adapt(tasks, 3)
    assert policy.policy_state_spec[-1].shape == (4 * (TINY["hidden_size"] + 1),)  # keyed memory + its mass
    policy_saver.PolicySaver(policy, batch_size=None).save(str(tmp_path / "policy"))
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    np.testing.assert_array_equal(play(policy, dist, tasks, steps=6)[0], play(loaded, dist, tasks, steps=6)[0])
