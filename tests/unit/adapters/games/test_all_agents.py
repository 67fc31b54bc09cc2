"""games.gridlevels with control="all": the learner moves every agent (shared parameters, per-agent memory).

Specs and conformance, hand-checked team rewards, the all-agents oracle, the shared network's per-agent
independence, RL² meta-training + adaptation + PolicySaver export, and clear errors for bad combinations.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from tf_agents.policies import policy_saver
from tf_agents.trajectories import time_step as ts

from metarl_apps.adapters.checks import check_task_distribution
from metarl_apps.adapters.games.gridlevels_core import GridLevelsConfig, level_from_layout
from metarl_apps.adapters.games.tasks import GridLevelEnvironment, GridLevelTasks, GridOraclePolicy
from metarl_apps.algorithms.rl2 import RL2, RL2Policy
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.evaluation.evaluator import trial_returns
from metarl_apps.networks.shared_agents import SharedAgentsActorCritic

STAY, UP, DOWN, LEFT, RIGHT = range(5)
HAS_KEY = 6
SMALL = dict(size=6, view_size=3, num_hazards=0, permute_actions=True, episodes=2)


def test_specs_params_and_conformance():
    dist = GridLevelTasks(**SMALL, max_steps=6, num_agents=2, control="all")
    obs_spec = dist.time_step_spec().observation
    assert obs_spec["obs"].shape == (2, 3, 3, 7) and obs_spec["prev_action"].shape == (2,)
    assert dist.action_spec().shape == (2,) and dist.action_spec().dtype == tf.int32
    assert int(dist.action_spec().minimum) == 0 and int(dist.action_spec().maximum) == 4
    assert dist.num_controlled_agents == 2
    assert dist.params["control"] == "all" and dist.params["mode"] == "cooperative"
    assert "partner" not in dist.params and "partner_noise" not in dist.params
    check_task_distribution(dist)
    # the other modes keep their parameters: no "control" for one agent, the partners with control="one"
    assert "control" not in GridLevelTasks().params and GridLevelTasks().num_controlled_agents == 1
    one = GridLevelTasks(num_agents=2)
    assert one.params["control"] == "one" and one.params["partner"] == "oracle" and one.num_controlled_agents == 1
    assert one.action_spec().shape == () and one.time_step_spec().observation["obs"].shape == (5, 5, 7)


def _hand_env(layout, use_key):
    config = GridLevelsConfig(size=4, num_agents=2, view_size=3, max_steps=4, wall_density=0.0, num_hazards=0,
                              use_key=use_key)
    return GridLevelEnvironment(config, level_from_layout(config, layout), task_seeds=[0], episodes=1,
                                control="all")


def _step(env, a0, a1):
    t = env.step(np.array([[a0, a1]], np.int32))
    return float(t.reward[0]), t.observation["obs"].numpy()[0], int(t.step_type[0])


def test_hand_checked_team_reward_key_sharing_and_hazard():
    # agent 1 picks up the key: the goal opens for agent 0 too, which then reaches it (team reward 1)
    env = _hand_env(["0.G.", "....", "....", "1K.."], use_key=True)
    first = env.reset().observation
    assert first["obs"].shape == (1, 2, 3, 3, 7) and first["prev_action"].shape == (1, 2)
    reward, obs, _ = _step(env, RIGHT, RIGHT)
    assert reward == 0.0 and obs[0, 1, 1, HAS_KEY] == 1 and obs[1, 1, 1, HAS_KEY] == 1
    reward, _, _ = _step(env, RIGHT, STAY)
    assert reward == 1.0
    assert [_step(env, RIGHT, RIGHT)[0] for _ in range(2)] == [0.0, 0.0]  # team frozen until the episode ends
    # agent 0 dies on a hazard (team pays -1) and is frozen; agent 1 still reaches the goal for the team
    env = _hand_env(["0H..", "....", "....", "1..G"], use_key=False)
    env.reset()
    rewards = [_step(env, RIGHT, RIGHT)[0] for _ in range(3)]
    assert rewards == [-1.0, 0.0, 1.0]
    assert _step(env, RIGHT, RIGHT)[2] == ts.StepType.LAST


@pytest.mark.parametrize("num_agents, use_key", [(2, True), (3, False)])
def test_oracle_moves_every_agent_and_is_never_worse_than_one_agents_oracle(num_agents, use_key):
    common = dict(SMALL, max_steps=30, step_cost=-0.01, use_key=use_key, num_agents=num_agents)
    team = GridLevelTasks(**common, control="all")
    alone = GridLevelTasks(**common, partner="still")  # agent 0's oracle; the other agents stay put
    tasks = team.sample(24, "test", seed=0)
    assert team.levels(tasks).equals(alone.levels(tasks))
    policy = team.oracle_policy(tasks)
    assert isinstance(policy, GridOraclePolicy) and policy.policy_state_spec.shape == (num_agents,)
    r_team = trial_returns(lambda chunk, seed: team.oracle_policy(chunk), team, tasks, 2)
    r_alone = trial_returns(lambda chunk, seed: alone.oracle_policy(chunk), alone, tasks, 2)
    assert (r_team > 0).all()  # the goal in every episode (a failure scores <= 0 with the step cost)
    np.testing.assert_allclose(r_team[:, 0], r_team[:, 1], atol=1e-6)  # deterministic: same every episode
    assert (r_team >= r_alone - 1e-6).all()  # the team arrives no later than agent 0 alone (triangle inequality)
    assert (r_team > r_alone + 1e-6).any()


def _random_inputs(spec, outer, seed):
    g = np.random.default_rng(seed)
    return {k: tf.constant(g.integers(0, 5, outer + s.shape.as_list()).astype(np.int32)) if s.dtype.is_integer
            else tf.constant(g.normal(size=outer + s.shape.as_list()).astype(np.float32)) for k, s in spec.items()}


def test_shared_network_has_shared_weights_and_per_agent_memory():
    dist = GridLevelTasks(**SMALL, num_agents=3, control="all")
    net = SharedAgentsActorCritic(dist.observation_spec(), dist.action_spec(), 3, hidden_size=8, embed_sizes=(8,))
    assert [s.shape.as_list() for s in net.state_spec] == [[3, 8], [3, 8]]
    assert net.action_shape == (3,) and net.num_values == 5 and net.action_min == 0 and net.slate_size == 0
    assert {v.ref() for v in net.trainable_variables} == {v.ref() for v in net.agent_net.trainable_variables}
    b, spec = 2, dist.observation_spec()
    obs = _random_inputs(spec, [b], 0)
    g = np.random.default_rng(1)
    state = [tf.constant(g.normal(size=(b, 3, 8)).astype(np.float32)) for _ in range(2)]
    logits, value, new_state = net.step(obs, state)
    assert logits.shape == (b, 3, 5) and value.shape == (b,) and [s.shape for s in new_state] == [(b, 3, 8)] * 2
    # agent j's logits are the one-agent network's on agent j's own view, previous move and memory
    for j in range(3):
        own = {**obs, "obs": obs["obs"][:, j], "prev_action": obs["prev_action"][:, j]}
        lj, _, sj = net.agent_net.step(own, [s[:, j] for s in state])
        np.testing.assert_allclose(logits[:, j], lj, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new_state[0][:, j], sj[0], rtol=1e-5, atol=1e-6)
    # permuting the agents (inputs and memories) permutes the outputs; the value (mean over agents) is unchanged
    perm = [2, 0, 1]
    p_obs = {**obs, "obs": tf.gather(obs["obs"], perm, axis=1), "prev_action": tf.gather(obs["prev_action"], perm,
                                                                                            axis=1)}
    p_logits, p_value, p_state = net.step(p_obs, [tf.gather(s, perm, axis=1) for s in state])
    np.testing.assert_allclose(p_logits, tf.gather(logits, perm, axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p_state[1], tf.gather(new_state[1], perm, axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p_value, value, rtol=1e-5, atol=1e-6)
    # unroll over T steps == T steps (same layout [B, T, N, n], value [B, T])
    steps = 3
    seq = _random_inputs(spec, [b, steps], 2)
    u_logits, u_value, u_state = net.unroll(seq, net.initial_state(b))
    assert u_logits.shape == (b, steps, 3, 5) and u_value.shape == (b, steps)
    s = net.initial_state(b)
    for t in range(steps):
        lt, vt, s = net.step({k: v[:, t] for k, v in seq.items()}, s)
        np.testing.assert_allclose(u_logits[:, t], lt, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(u_value[:, t], vt, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(u_state[0], s[0], rtol=1e-4, atol=1e-5)


def test_shared_network_with_set_memory_keeps_one_memory_per_agent():
    dist = GridLevelTasks(**SMALL, num_agents=3, control="all")
    net = SharedAgentsActorCritic(dist.observation_spec(), dist.action_spec(), 3, cell="set", hidden_size=8,
                                  embed_sizes=(8,), trial_length=10)
    d = net.agent_net._input_size
    assert [s.shape.as_list() for s in net.state_spec] == [[3, 8], [3, 1], [3, d]]
    b, steps = 2, 3
    seq = _random_inputs(dist.observation_spec(), [b, steps], 2)
    u_logits, _, u_state = net.unroll(seq, net.initial_state(b))
    s = net.initial_state(b)
    for t in range(steps):
        lt, _, s = net.step({k: v[:, t] for k, v in seq.items()}, s)
        np.testing.assert_allclose(u_logits[:, t], lt, rtol=1e-4, atol=1e-5)
    for got, want in zip(u_state, s, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s[1], np.full((b, 3, 1), steps))  # every agent counted its own transitions


def test_rl2_meta_trains_adapts_and_exports_with_per_agent_memory(tmp_path):
    dist = GridLevelTasks(**SMALL, max_steps=5, num_agents=2, control="all")
    learner = RL2(hidden_size=16, embed_sizes=(8,), tasks_per_iteration=8, minibatches=2, epochs=1,
                  greedy_eval=True)
    result = learner.meta_train(dist, dist.sample(32, "train"), iterations=2, seed=0)
    assert np.isfinite(list(result.metrics.values())).all()
    assert isinstance(learner.net, SharedAgentsActorCritic)
    tasks = dist.sample(2, "test")
    policy = learner.adapt(tasks, 2)
    assert isinstance(policy, RL2Policy)
    assert [s.shape.as_list() for s in tf.nest.flatten(policy.policy_state_spec)] == [[2, 16], [2, 16]]
    saver = policy_saver.PolicySaver(policy, batch_size=None)
    saver.save(str(tmp_path / "policy"))
    env = dist.make_env(tasks)
    time_step, state = env.reset(), policy.get_initial_state(2)
    inputs, expected = [], []
    for _ in range(2 * dist.horizon):
        step = policy.action(time_step, state)
        assert step.action.shape == (2, 2)
        inputs.append((time_step, state))
        expected.append(step.action.numpy().tolist())
        state = step.state
        time_step = env.step(step.action)
        if time_step.observation["new_episode"].numpy().any():  # inner-episode boundary: every agent remembers
            assert (np.abs(state[0].numpy()).sum(axis=-1) > 0).all()
    np.savez(tmp_path / "io.npz", **{
        f"{i}_{k}": v for i, (t, s) in enumerate(inputs) for k, v in {
            "step_type": t.step_type.numpy(), "reward": t.reward.numpy(), "discount": t.discount.numpy(),
            "obs": t.observation["obs"].numpy(), "prev_action": t.observation["prev_action"].numpy(),
            "prev_reward": t.observation["prev_reward"].numpy(),
            "new_episode": t.observation["new_episode"].numpy(), "h": s[0].numpy(), "c": s[1].numpy()}.items()})
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        from tf_agents.trajectories import time_step as ts
        p = tf.saved_model.load({str(tmp_path / 'policy')!r})
        d = np.load({str(tmp_path / 'io.npz')!r})
        out = []
        for i in range({len(inputs)}):
            g = lambda k: tf.constant(d[f"{{i}}_{{k}}"])
            t = ts.TimeStep(g("step_type"), g("reward"), g("discount"),
                            {{k: g(k) for k in ("obs", "prev_action", "prev_reward", "new_episode")}})
            out.append(p.action(t, [g("h"), g("c")]).action.numpy().tolist())
        print(out)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          check=False, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == str(expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_agents": 2, "control": "both"}, "control='both' must be one of one, all"),
        ({"control": "all"}, r"control='all' needs num_agents >= 2 \(got num_agents=1\)"),
        ({"num_agents": 2, "control": "all", "mode": "competitive"},
         "control='all' needs mode='cooperative'.*got mode='competitive'"),
        ({"num_agents": 2, "control": "all", "partner": "random"}, "partner/partner_noise .* drop them"),
        ({"num_agents": 2, "control": "all", "partner_noise": 0.0}, "partner/partner_noise .* drop them"),
    ],
)
def test_bad_parameter_combinations_are_one_line_errors(kwargs, match):
    with pytest.raises(MetaRLInputError, match=match) as err:
        GridLevelTasks(**kwargs)
    assert "\n" not in str(err.value)


def test_shared_network_and_rl2_refuse_what_does_not_fit():
    one = GridLevelTasks(num_agents=2)
    with pytest.raises(MetaRLInputError, match=r"must be a bounded integer \[num_agents\] spec"):
        SharedAgentsActorCritic(one.observation_spec(), one.action_spec(), 2)
    team = GridLevelTasks(**SMALL, num_agents=2, control="all")
    with pytest.raises(MetaRLInputError, match="leading agent dimension of size num_agents=3"):
        SharedAgentsActorCritic(team.observation_spec(), team.action_spec(), 3)
    with pytest.raises(MetaRLInputError, match="slate=True does not apply"):
        RL2(slate=True, tasks_per_iteration=8, minibatches=2).meta_train(team, team.sample(8, "train"),
                                                                        iterations=1)
    for bad in ({"value_network": "separate"}, {"head_hidden": 8},
                {"cell": "set", "set_keys": 4, "set_normalize_keyed": True}):
        with pytest.raises(MetaRLInputError, match="are not built for 'games.gridlevels'.*use value_network 'shared'"):
            RL2(**bad, tasks_per_iteration=8, minibatches=2).meta_train(team, team.sample(8, "train"), iterations=1)
