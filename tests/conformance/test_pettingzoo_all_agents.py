"""The generic PettingZoo adapter with control="all" (the learner moves every agent: shared parameters,
per-agent memory), on games.cooperative_pong: specs, the adapter contract, stepping equal to the stock
PettingZoo game driven by hand with the same moves, clear errors, and RL² meta-training on it (tiny sizes)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
from pettingzoo.butterfly import cooperative_pong_v6

from metarl_apps.adapters.checks import check_task_distribution
from metarl_apps.adapters.games.cooperative_pong import AGENTS, CooperativePongTasks
from metarl_apps.adapters.games.pettingzoo_tasks import GameSpec, PettingZooEnvironment, PettingZooTasks
from metarl_apps.adapters.games.rps import RPSTasks
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.registry import make_task_distribution
from metarl_apps.evaluation.runner import rollout
from metarl_apps.networks.shared_agents import SharedAgentsActorCritic

SMALL = dict(max_cycles=12, episodes=2, pool=40)
# The module ignores this stock warning at import; pytest restores the filters after collection.
pytestmark = pytest.mark.filterwarnings("ignore:.*calling render method without specifying any render mode")


def test_specs_and_params_in_all_mode():
    dist = make_task_distribution("games.cooperative_pong", **SMALL, control="all")
    assert dist.num_controlled_agents == 2 and dist.horizon == 12 and dist.episodes_per_trial == 2
    obs = dist.time_step_spec().observation
    assert obs["obs"]["observation"].shape == (2, 7, 12, 2) and obs["obs"]["action_mask"].shape == (2, 3)
    assert obs["prev_action"].shape == (2,) and obs["prev_reward"].shape == () and obs["new_episode"].shape == ()
    action = dist.action_spec()
    assert action.shape == (2,) and action.dtype == tf.int32 and int(action.minimum) == 0 and int(action.maximum) == 2
    assert dist.params["control"] == "all"
    assert not {"learner", "max_opponent_lag", "max_opponent_noise"} & set(dist.params)
    # control="one" is unchanged: no control in params, scalar specs, one agent
    one = CooperativePongTasks(**SMALL)
    assert one.num_controlled_agents == 1 and one.action_spec().shape == () and list(one.params) == [
        "episodes", "max_cycles", "learner", "ball_speed", "left_paddle_speed", "right_paddle_speed",
        "bounce_randomness_prob", "cake_paddle_prob", "max_opponent_lag", "max_opponent_noise", "max_reward",
        "off_screen_penalty", "pool"]
    # the same seed gives the same level in both modes (minus the partner and the seat)
    for a, b in zip(dist.sample(5, "test"), one.sample(5, "test"), strict=True):
        assert a.seed == b.seed and a.params == {k: v for k, v in b.params.items()
                                                 if k not in ("opponent_lag", "opponent_noise", "learner")}


def test_all_mode_conforms():
    check_task_distribution(CooperativePongTasks(**SMALL, control="all"), num_tasks=2)


def _reset_seed(task, env_seed: int, trial: int = 0, episode: int = 0) -> int:
    """The ``env.reset`` seed the adapter gives a row (a pure function of task, env seed, trial, episode)."""
    return int(np.random.default_rng([int(task.seed) % (1 << 63), env_seed, trial, episode]).integers(0, 2**31 - 1))


def test_stepping_matches_the_stock_game_driven_by_hand():
    """Both paddles move once per step; the reward is the shared reward PettingZoo reports to each paddle (counted
    once; team_reward="sum" gives twice it); the row freezes when the ball leaves the screen."""
    cycles, env_seed = 40, 3
    dist = CooperativePongTasks(max_cycles=cycles, episodes=1, pool=40, ball_speed=10, control="all")
    tasks = dist.sample(3, "test", seed=1)
    actions = np.random.default_rng(0).integers(0, 3, (cycles, len(tasks), 2)).astype(np.int32)
    env = dist.make_env(tasks, seed=env_seed)
    summed = PettingZooEnvironment(dataclasses.replace(dist.spec, team_reward="sum"), tasks, 1, seed=env_seed,
                                   control="all")
    time_step, time_step_sum = env.reset(), summed.reset()
    rewards, rewards_sum, frozen = [], [], []
    for t in range(cycles):
        o = time_step.observation["obs"]["observation"].numpy()
        np.testing.assert_array_equal(o[:, 1], o[:, 0][:, :, ::-1])  # paddle_1 sees the screen mirrored
        time_step, time_step_sum = env.step(actions[t]), summed.step(actions[t])
        rewards.append(time_step.reward.numpy())
        rewards_sum.append(time_step_sum.reward.numpy())
        frozen.append([row.done for row in env.rows])
    rewards, rewards_sum = np.array(rewards), np.array(rewards_sum)
    np.testing.assert_allclose(rewards_sum, 2 * rewards, rtol=1e-6)

    ended = 0
    for i, task in enumerate(tasks):
        p = task.params
        stock = cooperative_pong_v6.env(max_cycles=cycles, max_reward=1.0, off_screen_penalty=-1.0,
                                        ball_speed=p["ball_speed"], left_paddle_speed=p["left_paddle_speed"],
                                        right_paddle_speed=p["right_paddle_speed"],
                                        bounce_randomness=p["bounce_randomness"], cake_paddle=p["cake_paddle"])
        stock.reset(seed=_reset_seed(task, env_seed))
        done = False
        for t in range(cycles):
            if done:  # frozen after the end of the game: actions ignored, reward 0
                assert rewards[t, i] == 0.0 and frozen[t][i]
                continue
            for j, agent in enumerate(AGENTS):
                assert stock.agent_selection == agent
                stock.step(int(actions[t, i, j]))
            _, reward_0, terminated, truncated, _ = stock.last()  # paddle_0's reward for its move (AEC)
            reward_1 = stock._cumulative_rewards["paddle_1"]
            assert reward_0 == reward_1  # cooperative: one shared reward
            assert rewards[t, i] == np.float32(reward_0), (i, t)
            done = bool(terminated or truncated)
            assert frozen[t][i] == done
            ended += bool(terminated)
        assert done  # the rally ended by the horizon: the ball left the screen or max_cycles frames were played
    assert ended >= 1 and (rewards == -1.0).sum() == ended  # some rows lost the ball (the penalty, counted once)


def test_shared_network_masks_each_agent_with_its_own_mask_row():
    """obs["action_mask"] is [N, num_actions]: SharedAgentsActorCritic folds agents into the batch and masks each."""
    dist = CooperativePongTasks(**SMALL, control="all")
    net = SharedAgentsActorCritic(dist.observation_spec(), dist.action_spec(), 2, hidden_size=8, embed_sizes=(8,))
    spec = dist.observation_spec()
    obs = tf.nest.map_structure(lambda s: tf.zeros([2] + s.shape.as_list(), s.dtype), spec)
    mask = tf.constant([[[1, 0, 1], [0, 1, 0]], [[1, 1, 1], [0, 0, 1]]], tf.float32)
    obs["obs"]["action_mask"] = mask
    logits, _, _ = net.step(obs, net.initial_state(2))
    assert logits.shape == (2, 2, 3)
    np.testing.assert_array_equal(logits.numpy() < -1e8, mask.numpy() == 0)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: make_task_distribution("games.cooperative_pong", control="both"),
         r"^games\.cooperative_pong: parameter control='both' must be one of one, all$"),
        (lambda: make_task_distribution("games.cooperative_pong", control="all", learner="paddle_1"),
         r"^games\.cooperative_pong: parameter learner='paddle_1' applies to control='one' only"),
        (lambda: CooperativePongTasks(control="all", max_opponent_noise=0.1),
         r"^games\.cooperative_pong: parameter max_opponent_noise=0\.1 applies to control='one' only"),
        # a game whose spec lists no agents supports control="one" only
        (lambda: PettingZooTasks(RPSTasks().spec, 2, control="all"),
         r"^games\.rps: parameter control='all' must be one of one$"),
        (lambda: dataclasses.replace(CooperativePongTasks().spec, team_reward="max"),
         r"^games\.cooperative_pong: GameSpec team_reward='max' must be one of sum, mean$"),
        (lambda: dataclasses.replace(CooperativePongTasks().spec, agents="paddle_0"),
         r"^games\.cooperative_pong: GameSpec agents='paddle_0' must be a tuple of distinct agent names"),
    ],
)
def test_bad_control_gives_one_line_errors(make, match):
    with pytest.raises(MetaRLInputError, match=match) as info:
        make()
    assert "\n" not in str(info.value)


def test_unknown_agent_in_spec_is_a_clear_error():
    dist = CooperativePongTasks(**SMALL, control="all")
    spec = dataclasses.replace(dist.spec, agents=("paddle_0", "paddle_9"))
    with pytest.raises(MetaRLInputError, match=r"GameSpec agents \['paddle_9'\] are not agents of the game "
                                               r"\(possible_agents: paddle_0, paddle_1\)"):
        PettingZooEnvironment(spec, dist.sample(1), 1, control="all")
    assert isinstance(spec, GameSpec)


def test_rl2_meta_trains_and_adapts_on_both_paddles():
    from metarl_apps.algorithms.rl2 import RL2

    dist = CooperativePongTasks(max_cycles=20, episodes=2, pool=40, control="all")
    learner = RL2(hidden_size=16, embed_sizes=(8,), tasks_per_iteration=4, minibatches=1, epochs=1)
    result = learner.meta_train(dist, dist.sample(8, "train"), iterations=2, seed=0)
    assert np.isfinite(list(result.metrics.values())).all()
    assert isinstance(learner.net, SharedAgentsActorCritic) and learner.net.num_agents == 2
    test = dist.sample(2, "test")
    policy = learner.adapt(test, 2)
    assert policy.action_spec.shape == (2,)
    rewards, episode = rollout(policy, dist.make_env(test), 2 * dist.horizon)
    assert rewards.shape == (2, 40) and np.isfinite(rewards).all() and set(np.unique(episode)) == {0, 1}
    # per frame: the shared reward once (1/20), the drop penalty, or 0 once the rally is over
    assert np.isin(np.round(rewards, 5), np.round([0.0, 1.0 / 20, -1.0], 5)).all()
