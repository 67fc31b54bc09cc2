"""``games.gridlevels`` as a :class:`TaskDistribution`: each level is a task; the learner controls one agent
(``control="one"``, the default) or every agent of the level (``control="all"``).

Tasks
  A task's hidden parameters are ``{"level_seed": int}``; the level is
  ``gridlevels_core.generate_level(config, level_seed)``. Train and test levels are **disjoint by
  construction**: train seeds lie in ``[0, 2**30)`` and test seeds in ``[2**30, 2**31)`` (the split bit is
  bit 30), so no held-out level can ever appear in training.

Trial (what one tf-agents episode of :meth:`GridLevelTasks.make_env` is)
  ``episodes`` inner episodes of the **same level**, each lasting **exactly** ``horizon = max_steps`` steps,
  so every row of the batch stays in lock-step (as :class:`~metarl_apps.core.env.TrialEnvironment`
  assumes) and "episode k" is the same span of steps for every level. Within an inner episode:

  - the agent starts at the level's start cell without the key;
  - on reaching the (open) goal (reward ``goal_reward``) or a hazard (reward ``hazard_reward``) the agent
    is **frozen** for the rest of the inner episode: its actions are ignored, rewards are 0, the
    observation stays the view from where it stopped;
  - after ``max_steps`` steps (whether or not it finished) the next inner episode starts again at the start
    cell, with the key dropped; ``observation["new_episode"]`` is 1.0 on that first step.

  The trial ends after ``episodes * max_steps`` steps with ``LAST`` (discount 0); the next ``step`` starts
  a new trial (standard trial contract, see :mod:`metarl_apps.core.env`). The budget unit is "episodes".

Observation ``"obs"``: the agent's egocentric view, float32 ``[view_size, view_size, 7]`` (channels in
:mod:`~metarl_apps.adapters.games.gridlevels_core`). Action: ``int32`` scalar in ``0..4`` (stay, up, down,
left, right before the level's permutation, if ``permute_actions``).

Environment: a :class:`TrialEnvironment` over a batched numpy :class:`GridLevelsCore`; every step is **one**
``tf.numpy_function`` call for the whole batch (not one per level). It therefore needs the Python process
(no XLA, no SavedModel export of the env itself); policies stay pure TF. ``set_tasks`` regenerates the levels
in the core without building a new environment.

Oracle (:meth:`GridLevelTasks.oracle_policy`): knows the map. At construction it runs breadth-first searches
(numpy/Python, once per level) giving, for every (cell, has_key) state, the action of a shortest hazard-free
path to the key (while the key is missing) and then to the goal, translated through the level's action
permutation, and the state that action leads to. The dynamics are deterministic, so the policy **dead-reckons**
its position in its policy state (reset to the start when ``new_episode`` is 1) instead of querying the
environment: acting is two in-graph gathers, so the oracle is an ordinary TF policy (works in ``rollout``,
exportable with ``PolicySaver``) with no reference to any environment.

Multi-agent levels (``num_agents`` 2..4), ``control="one"`` (default): the learner plays agent 0 (its view,
its reward: the team reward in ``mode="cooperative"``, its own in ``"competitive"``); the other agents are the
level's **scripted partners** (``partner``): ``oracle`` (shortest path to the key, then the goal, with a
uniformly random move with probability ``partner_noise``), ``random`` or ``still``. Their randomness comes
from the environment's per-task stream, so every agent evaluated on a task meets the same partner moves.

Multi-agent levels, ``control="all"`` (needs ``mode="cooperative"``; no partners, so ``partner`` and
``partner_noise`` must not be given): the learner moves **every** agent. Observation ``"obs"`` is float32
``[num_agents, view_size, view_size, 7]`` (row ``j`` = agent ``j``'s egocentric view), the action is ``int32
[num_agents]`` in ``0..4`` (one move per agent; ``prev_action`` has the same shape), and the reward is the
**team reward** of the core (identical for every agent still active; a row's reward is 0 once all its agents
are frozen). An agent that steps on a hazard is frozen alone (the team pays ``hazard_reward``); the first
arrival at the open goal ends the inner episode for the whole team; the goal opens for everyone once any
agent holds the key. Trial mechanics (fixed horizon, ``new_episode``) are unchanged.
``dist.num_controlled_agents`` is ``num_agents`` here (1 otherwise): RL² reads it to act with
:class:`~metarl_apps.networks.shared_agents.SharedAgentsActorCritic` (one network shared by all agents, one
memory per agent, kept across the episodes of a trial). The oracle moves every agent along its own shortest
path and dead-reckons each agent's ``(cell, goal open)`` state ``[B, num_agents]``, opening the goal for all
agents as soon as one of them reaches the key (as the cooperative core does). The filmstrip hooks
(:meth:`GridLevelTasks.render_level`, :meth:`GridLevelTasks.agent_position`) show agent 0. The games baselines
that need a scalar action (``random_legal``, ``non_adaptive``, ``specialist``) do not apply to this mode.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import tensorflow as tf
from tf_agents.policies import tf_policy
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import policy_step

from metarl_apps.adapters.games import gridlevels_core as core_lib
from metarl_apps.adapters.games.gridlevels_core import GridLevelsConfig, GridLevelsCore, Levels
from metarl_apps.core.env import NEW_EPISODE, TrialEnvironment, trial_time_step_spec
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution, positive_int

FAMILY = core_lib.FAMILY
#: Scripted behaviours of the other agents of a multi-agent level (the learner plays agent 0).
PARTNERS = ("oracle", "random", "still")
#: Which agents of a level the learner moves: agent 0 only ("one") or all of them ("all").
CONTROLS = ("one", "all")
DEFAULT_PARTNER, DEFAULT_PARTNER_NOISE = "oracle", 0.3
#: Level seeds of the test split have this bit set, train seeds never do.
SPLIT_BIT = 1 << 30
_SPLIT_OFFSET = {"train": 0, "test": SPLIT_BIT}


def _agent_dims(config: GridLevelsConfig, control: str) -> tuple[int, ...]:
    """``(num_agents,)`` when the learner moves every agent, else ``()``."""
    return (config.num_agents,) if control == "all" else ()


def _obs_spec(config: GridLevelsConfig, control: str = "one"):
    v = config.view_size
    return tensor_spec.TensorSpec(_agent_dims(config, control) + (v, v, core_lib.NUM_CHANNELS), tf.float32,
                                  name="obs")


def _action_spec(config: GridLevelsConfig, control: str = "one"):
    return tensor_spec.BoundedTensorSpec(_agent_dims(config, control), tf.int32, minimum=0,
                                         maximum=core_lib.NUM_ACTIONS - 1, name="action")


def _level_seeds(tasks) -> list[int]:
    return [int(t.params["level_seed"]) for t in tasks]


class GridLevelTasks(TaskDistribution):
    """Levels of the built-in grid game; the learner moves one agent or all of them (see the module docstring).

    Args:
      size, view_size, max_steps, wall_density, num_hazards, use_key, permute_actions, goal_reward,
        hazard_reward, step_cost: the :class:`GridLevelsConfig` fields (same meaning and defaults).
        ``max_steps`` is also the fixed length of every inner episode (``horizon``).
      num_agents: agents per level (1..4).
      mode: "cooperative" (team reward) or "competitive" (first to the goal wins), with several agents.
      control: with several agents, "one" (default: the learner plays agent 0, the others are scripted
        partners) or "all" (the learner moves every agent; needs ``mode="cooperative"``).
      partner, partner_noise: the partners' behaviour with ``control="one"`` (default "oracle", 0.3; see the
        module docstring); not allowed with ``control="all"``.
      episodes: inner episodes per trial (the largest adaptation budget), default 5.
    """

    family = FAMILY
    budget_unit = "episodes"

    def __init__(
        self,
        size: int = 7,
        view_size: int = 5,
        max_steps: int = 50,
        wall_density: float = 0.25,
        num_hazards: int = 2,
        use_key: bool = True,
        permute_actions: bool = False,
        goal_reward: float = 1.0,
        hazard_reward: float = -1.0,
        step_cost: float = 0.0,
        num_agents: int = 1,
        episodes: int = 5,
        mode: str = "cooperative",
        partner: str | None = None,
        partner_noise: float | None = None,
        control: str = "one",
    ):
        self.episodes = positive_int("episodes", episodes, FAMILY)
        if partner is not None and partner not in PARTNERS:
            raise MetaRLInputError(f"{FAMILY}: parameter partner={partner!r} must be one of {', '.join(PARTNERS)}")
        if partner_noise is not None and (isinstance(partner_noise, bool) or not isinstance(partner_noise, (int, float))
                                          or not 0.0 <= partner_noise <= 1.0):
            raise MetaRLInputError(f"{FAMILY}: parameter partner_noise={partner_noise!r} must be a number in [0, 1]")
        if not isinstance(control, str) or control not in CONTROLS:
            raise MetaRLInputError(f"{FAMILY}: parameter control={control!r} must be one of {', '.join(CONTROLS)}")
        if control == "all":
            if isinstance(num_agents, int) and not isinstance(num_agents, bool) and num_agents < 2:
                raise MetaRLInputError(f"{FAMILY}: parameter control='all' needs num_agents >= 2 (got num_agents="
                                       f"{num_agents!r}); with one agent use the default control='one'")
            if mode != "cooperative":
                raise MetaRLInputError(f"{FAMILY}: parameter control='all' needs mode='cooperative' (the team reward "
                                       f"is the reward of all agents), got mode={mode!r}")
            if partner is not None or partner_noise is not None:
                raise MetaRLInputError(f"{FAMILY}: parameters partner/partner_noise set the scripted partners of "
                                       f"control='one'; with control='all' the learner moves every agent, drop them")
        self.control = control
        self.partner = DEFAULT_PARTNER if partner is None else partner
        self.partner_noise = DEFAULT_PARTNER_NOISE if partner_noise is None else float(partner_noise)
        self.config = GridLevelsConfig(
            size=size, num_agents=num_agents, mode=mode, view_size=view_size, max_steps=max_steps,
            wall_density=wall_density, num_hazards=num_hazards, use_key=use_key, permute_actions=permute_actions,
            goal_reward=goal_reward, hazard_reward=hazard_reward, step_cost=step_cost,
        )
        core_lib.generate_level(self.config, 0)  # an impossible level parameter fails here, not at make_env
        #: An inner episode succeeded (reached the goal) iff its return exceeds this; ``None`` when the rewards
        #: cannot tell (a costly enough walk to the goal can score below a failure).
        self.success_threshold = (0.0 if goal_reward + max_steps * min(step_cost, 0.0) > 0
                                  and hazard_reward <= 0 and step_cost <= 0 else None)
        params = dict(
            size=size, view_size=view_size, max_steps=max_steps, wall_density=wall_density,
            num_hazards=num_hazards, use_key=use_key, permute_actions=permute_actions, goal_reward=goal_reward,
            hazard_reward=hazard_reward, step_cost=step_cost, num_agents=num_agents, episodes=self.episodes,
        )
        if num_agents > 1:  # single-agent families keep their original parameters (and model cards)
            params.update(mode=mode, control=control)
            if control == "one":
                params.update(partner=self.partner, partner_noise=self.partner_noise)
        super().__init__(**params)

    @property
    def num_controlled_agents(self) -> int:
        """How many agents the learner moves per level: ``num_agents`` with ``control="all"``, else 1."""
        return self.config.num_agents if self.control == "all" else 1

    @property
    def horizon(self) -> int:
        return self.config.max_steps

    @property
    def episodes_per_trial(self) -> int:
        return self.episodes

    def _sample_params(self, stream: np.random.Generator, split: str) -> dict:
        return {"level_seed": int(stream.integers(0, SPLIT_BIT)) + _SPLIT_OFFSET[split]}

    def levels(self, tasks) -> Levels:
        """The generated levels ``[B]`` of ``tasks`` (row i = tasks[i])."""
        return core_lib.generate_levels(self.config, _level_seeds(tasks))

    def action_spec(self):
        return _action_spec(self.config, self.control)

    def time_step_spec(self):
        return trial_time_step_spec(_obs_spec(self.config, self.control), self.action_spec())

    def _make_env(self, tasks: list[Task], seed: int) -> "GridLevelEnvironment":
        return GridLevelEnvironment(self.config, self.levels(tasks), [t.seed for t in tasks], self.episodes, seed=seed,
                                    partner=self.partner, partner_noise=self.partner_noise, control=self.control)

    def oracle_policy(self, tasks: list[Task]) -> "GridOraclePolicy":
        """Shortest-path policy that knows each level's map (see the module docstring)."""
        return GridOraclePolicy(self, self.levels(list(tasks)))


    # Filmstrip hooks (metarl_apps.evaluation.filmstrip): a picture of a level and the agent's cell.
    cell_px = 16

    def render_level(self, task: Task):
        """uint8 ``[size * cell_px, size * cell_px, 3]`` picture of ``task``'s level (no agent drawn)."""
        core = GridLevelsCore(self.config, self.levels([task]))
        core.active[:] = False
        return core_lib.render_rgb(core, 0, self.cell_px)

    @staticmethod
    def agent_position(env: "GridLevelEnvironment", after_step: bool = False) -> tuple[int, int]:
        """``(row, col)`` of agent 0 of batch row 0 of ``env`` now, or (``after_step``) where the last step
        left it — before the next inner episode's reset, which the same ``env.step`` may have done."""
        r, c = env.stepped_pos[0] if after_step and env.stepped_pos is not None else env.core.pos[0, 0]
        return int(r), int(c)


class GridLevelEnvironment(TrialEnvironment):
    """Batched trial environment over a numpy :class:`GridLevelsCore` (one ``numpy_function`` per step).

    ``levels`` may come from :func:`generate_levels` or :func:`level_from_layout` (hand-made tests).
    ``control="all"`` moves every agent (``[B, N]`` actions, ``[B, N, V, V, C]`` observations, team reward).
    """

    def __init__(self, config: GridLevelsConfig, levels: Levels, task_seeds, episodes: int, seed: int = 0,
                 partner: str = DEFAULT_PARTNER, partner_noise: float = DEFAULT_PARTNER_NOISE, control: str = "one"):
        self.config = config
        if control not in CONTROLS or (control == "all" and config.mode != "cooperative"):
            raise MetaRLInputError(f"{FAMILY}: control={control!r} must be 'one', or 'all' with mode='cooperative' "
                                   f"(got mode={config.mode!r})")
        self.control = control
        self._core = GridLevelsCore(config, levels)
        self._partner, self._partner_noise = partner, float(partner_noise)
        self._partner_tables = self._tables(levels)
        super().__init__(task_seeds, _action_spec(config, control), horizon=config.max_steps,
                         episodes_per_trial=episodes, seed=seed)
        # The level seeds as a task variable: marks set_tasks as supported and records the current tasks.
        self._bind_task_arrays({"level_seed": np.asarray(levels.seeds, np.int64)})

    @property
    def core(self) -> GridLevelsCore:
        """The numpy core (state of every row: ``pos``, ``has_key``, ``active``, ``t``)."""
        return self._core

    def _task_arrays(self, tasks) -> dict:
        return {"level_seed": np.asarray(_level_seeds(tasks), np.int64)}

    def set_tasks(self, tasks) -> None:
        """Swap in new levels (same count) without rebuilding the environment; the next reset starts on them."""
        tasks = list(tasks)
        levels = core_lib.generate_levels(self.config, _level_seeds(tasks)) if len(tasks) == self.batch_size else None
        super().set_tasks(tasks)  # checks the count, assigns seeds/keys, forces a reset
        self._core.set_levels(levels)
        self._partner_tables = self._tables(levels)

    @property
    def _has_partners(self) -> bool:
        return self.config.num_agents > 1 and self.control == "one"

    def _tables(self, levels: Levels):
        """Shortest-path tables of the levels for oracle partners (None without partners)."""
        if not self._has_partners or self._partner != "oracle":
            return None
        return oracle_tables(self.config, levels)[0]

    def _partner_actions(self, uniforms: np.ndarray) -> np.ndarray:
        """int ``[B, N-1]`` moves of the scripted partners (agents 1..N-1) from ``uniforms [B, 2 (N-1)]``.

        ``random``: uniform over the 5 actions; ``still``: always stay; ``oracle``: the shortest hazard-free path
        to the key (while the goal is closed for it) and then to the goal, replaced by a uniform random action
        with probability ``partner_noise``. The uniforms come from the environment's per-task counter-based
        stream, so partners do the same thing for every agent evaluated on the same task and env seed."""
        core, n = self._core, self.config.num_agents - 1
        coin, pick = uniforms[:, :n], uniforms[:, n:]
        random_move = np.minimum((pick * core_lib.NUM_ACTIONS).astype(np.int64), core_lib.NUM_ACTIONS - 1)
        if self._partner == "random":
            return random_move
        if self._partner == "still":
            return np.zeros_like(random_move)
        size = self.config.size
        pos = core.pos[:, 1:]
        state = 2 * (pos[..., 0] * size + pos[..., 1]) + core.goal_open()[:, 1:].astype(np.int64)
        best = np.take_along_axis(self._partner_tables, state, axis=1).astype(np.int64)
        return np.where(coin < self._partner_noise, random_move, best)

    def _task_observation_spec(self):
        return _obs_spec(self.config, self.control)

    def _obs_shape(self):
        return [self.batch_size] + _obs_spec(self.config, self.control).shape.as_list()

    def _view(self, obs: np.ndarray) -> np.ndarray:
        """The learner's part of the core's ``[B, N, V, V, C]`` views: all of them, or agent 0's."""
        return obs if self.control == "all" else obs[:, 0]

    #: agent 0's cell in every row after the last step (None before the first step)
    stepped_pos: np.ndarray | None = None

    def _np_reset(self):
        return (self._view(self._core.reset()),)

    def _np_step(self, action, uniforms=None):
        out = self._np_transition(action, uniforms)
        self.stepped_pos = self._core.pos[:, 0].copy()  # agent 0 after the step, before any reset (pictures)
        return out

    def _np_transition(self, action, uniforms=None):
        if self.control == "all":
            acting = self._core.active.copy()
            obs, reward, _, _ = self._core.step(np.asarray(action, np.int64))
            # cooperative: every agent active in the step got the same team reward; frozen agents got 0
            first_acting = np.argmax(acting, axis=1)
            team = np.where(acting.any(axis=1), reward[np.arange(len(reward)), first_acting], 0.0)
            return team.astype(np.float32), obs
        actions = np.asarray(action, np.int64)[:, None]
        if self._has_partners:
            actions = np.concatenate([actions, self._partner_actions(np.asarray(uniforms))], axis=1)
        obs, reward, _, _ = self._core.step(actions)
        return reward[:, 0].astype(np.float32), obs[:, 0]

    def _begin_episode(self, counter):
        (obs,) = self.numpy_call(self._np_reset, [], [tf.float32], name="gridlevels_reset")
        obs.set_shape(self._obs_shape())
        return obs

    def _transition(self, action, h, counter):
        partners = [self.uniform(counter, 2 * (self.config.num_agents - 1))] if self._has_partners else []
        reward, obs = self.numpy_call(self._np_step, [action, *partners], [tf.float32, tf.float32],
                                      name="gridlevels_step")
        reward.set_shape([self.batch_size])
        obs.set_shape(self._obs_shape())
        return reward, obs


# ====================================================================== oracle
def _distances(passable: np.ndarray, target) -> np.ndarray:
    """BFS distance of every cell to ``target`` through ``passable`` cells (-1 = unreachable)."""
    h, w = passable.shape
    dist = np.full((h, w), -1, dtype=np.int64)
    tr, tc = int(target[0]), int(target[1])
    dist[tr, tc] = 0
    queue = deque([(tr, tc)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in core_lib.MOVES[1:]:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and passable[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist


def oracle_tables(config: GridLevelsConfig, levels: Levels) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per level, over states ``s = 2 * (row * size + col) + has_key``:

    ``action [B, S]`` (int32, the level's action id of the next shortest-path move; 0 = stay on the goal or
    where nothing is reachable), ``next_state [B, S]`` (the state that action leads to) and ``start [B]``.
    """
    s = config.size
    b = len(levels)
    num_states = 2 * s * s
    actions = np.zeros((b, num_states), np.int32)
    next_state = np.zeros((b, num_states), np.int32)
    inverse = np.argsort(levels.action_perm, axis=1)  # inverse[b, canonical move] = the level's action id
    for i in range(b):
        passable = ~(levels.walls[i] | levels.hazards[i])
        has_key_item = levels.key[i, 0] >= 0
        to_goal = _distances(passable, levels.goal[i])
        to_key = _distances(passable, levels.key[i]) if has_key_item else to_goal
        for r in range(s):
            for c in range(s):
                for k in (0, 1):
                    state = 2 * (r * s + c) + k
                    dist = to_goal if (k or not has_key_item) else to_key
                    best, best_d = 0, dist[r, c]
                    if best_d > 0:
                        for m in range(1, core_lib.NUM_ACTIONS):
                            nr, nc = r + core_lib.MOVES[m, 0], c + core_lib.MOVES[m, 1]
                            if 0 <= nr < s and 0 <= nc < s and 0 <= dist[nr, nc] < best_d:
                                best, best_d = m, dist[nr, nc]
                    nr, nc = r + core_lib.MOVES[best, 0], c + core_lib.MOVES[best, 1]
                    nk = int(k or (has_key_item and (nr, nc) == tuple(levels.key[i])))
                    actions[i, state] = inverse[i, best]
                    next_state[i, state] = 2 * (nr * s + nc) + nk
    start = (2 * (levels.starts[:, 0, 0] * s + levels.starts[:, 0, 1])).astype(np.int32)
    return actions, next_state, start


class GridOraclePolicy(tf_policy.TFPolicy):
    """Follows the precomputed shortest path of each row's level; policy state = the dead-reckoned
    ``(cell, has_key)`` state ``int32 [B]``, reset to the start cell whenever ``new_episode`` is 1.

    With ``control="all"`` every agent follows its own shortest path from its own start: state and action are
    ``[B, N]``, and the "has key" bit of every agent is set once any agent has reached the key (in cooperative
    mode the goal opens for the whole team, as in :meth:`GridLevelsCore.goal_open`)."""

    def __init__(self, dist: GridLevelTasks, levels: Levels, name: str = "oracle"):
        self._all = dist.control == "all"
        agents = (dist.config.num_agents,) if self._all else ()
        state_spec = tensor_spec.TensorSpec(agents, tf.int32, name="oracle_state")
        super().__init__(dist.time_step_spec(), dist.action_spec(), policy_state_spec=state_spec, name=name)
        actions, next_state, start = oracle_tables(dist.config, levels)
        if self._all:  # every agent's own start state [B, N]
            s = dist.config.size
            start = (2 * (levels.starts[..., 0] * s + levels.starts[..., 1])).astype(np.int32)
        self._table = tf.constant(actions)
        self._next = tf.constant(next_state)
        self._start = tf.constant(start)

    def _action(self, time_step, policy_state, seed):
        new = time_step.observation[NEW_EPISODE] > 0.5
        if self._all:
            new = new[:, None]
        state = tf.where(new, self._start, tf.cast(policy_state, tf.int32))
        action = tf.gather(self._table, state, batch_dims=1)
        next_state = tf.gather(self._next, state, batch_dims=1)
        if self._all:  # one agent on the key opens the goal for the team
            opened = tf.reduce_any(tf.equal(next_state % 2, 1), axis=1, keepdims=True)
            next_state = tf.bitwise.bitwise_or(next_state, tf.cast(opened, tf.int32))
        return policy_step.PolicyStep(action, next_state, ())
