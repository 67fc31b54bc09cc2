"""Generic PettingZoo adapter: any AEC (or Parallel, converted) game + a level/opponent parameter space ->
:class:`TaskDistribution`.

A :class:`GameSpec` says how to build the game for a task (``make_env(params)``), which agent the learner
controls (``learner(params)``; or, with ``control="all"``, the agents ``agents``), how the other agents play
(``opponent(params)``, a scripted :class:`Opponent`), how to turn the learner's PettingZoo observation into a
fixed-shape float array (``encode``) and the fixed number of learner moves per inner episode (``horizon``).
:class:`PettingZooTasks` turns it into a task family:

* a task's hidden parameters are ``{"opponent_seed": int, ...}`` drawn by ``_opponent_params``; the split
  bit (bit 30) of the seed separates train from test, so a held-out task can never be a training task;
* :meth:`PettingZooTasks.make_env` is a :class:`~metarl_apps.core.env.TrialEnvironment`: row ``i`` is one
  PettingZoo game instance of ``tasks[i]``; one trial = ``episodes`` games (inner episodes) against the
  same opponent, each padded to exactly ``horizon`` learner moves: once the game is over the row is frozen
  (actions ignored, reward 0, mask all ones) until the next game starts;
* the whole batch is stepped by **one** ``tf.numpy_function`` call per step, which loops over the rows'
  Python game instances (PettingZoo games are per-instance Python objects: a loop over rows is the best any
  wrapper can do; :mod:`gridlevels_core` is the batched alternative for the built-in game);
* reward of a learner move = the learner's cumulative PettingZoo reward from its move until its next turn
  (or the end of the game), i.e. ``env.last()`` when the learner is selected again — the AEC convention;
* observation ``"obs"`` = ``{"observation": float32 encode(obs), "action_mask": float32 [num_actions]}``:
  the mask is the PettingZoo observation's ``action_mask`` when the game provides one (else all ones) and
  RL² / the games baselines respect it. An illegal move is passed to PettingZoo unchanged (for stock
  classic games: the mover loses the game), so an unmasked policy pays for it.

Randomness (opponents' sampling, ``env.reset(seed=...)``) is a pure function of ``(task seed, env seed,
trial index, episode index)``: a task's games do not depend on its batch, and every agent evaluated with the
same env seed meets the same opponent draws (paired comparisons).

Two control modes (``control``, a :class:`PettingZooTasks` parameter):

* ``"one"`` (default, every family): the learner moves ``spec.learner(params)``; everything above.
* ``"all"`` (families whose spec lists ``agents``): the learner moves **every agent of** ``spec.agents`` with
  one shared network and one memory per agent (RL² reads ``dist.num_controlled_agents`` and picks
  :class:`~metarl_apps.networks.shared_agents.SharedAgentsActorCritic`). One learner step is one **round**: from
  the current selection the AEC game is stepped, each live controlled agent moving once with its element of
  the action vector ``int32 [N]`` (``N = len(spec.agents)``, the order of ``spec.agents``), agents outside
  ``spec.agents`` played by the opponent and done agents stepped with ``None`` (PettingZoo's rule), until a
  controlled agent that already moved is selected again or every controlled agent is done. Then:

  - observation ``"obs"`` = ``{"observation": float32 [N, *obs_shape], "action_mask": float32 [N,
    num_actions]}``, row ``j`` = agent ``j``'s encoded observation (``spec.encode_agent(agent, obs)``, default
    ``encode``) and mask, all read at the round boundary (exact for simultaneous-move games, e.g. Parallel games
    converted with ``parallel_to_aec``, and for cooperative pong, whose frame advances once per round). A done
    agent's mask is all ones and its action is ignored (an agent already removed from the game keeps its last
    observation). The shared network masks each agent's logits with its own mask row (it folds the agent axis
    into the batch, and masks scalar actions); for a sequential game, a later mover's move may have become
    illegal by its turn: it is passed to PettingZoo unchanged, as in ``"one"``;
  - reward = the **team reward** of the round, from the per-step rewards PettingZoo hands out during it
    (``env.rewards`` after each live step: exactly what PettingZoo accumulates into the agents' returns, so
    each reward is counted once, with no AEC "until my next turn" delay): ``spec.team_reward="sum"`` (default)
    adds the controlled agents' rewards; ``"mean"`` averages them over the agents live at the round's start,
    which is *the* shared reward of a game that gives every agent the same reward (cooperative pong): the
    number PettingZoo reports to each agent, not ``N`` times it;
  - the row is done once every controlled agent is terminated or truncated; padding to ``horizon`` rounds,
    freezing, determinism and the ``numpy_call`` ordering are those of ``"one"``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Protocol

import numpy as np
import tensorflow as tf
from pettingzoo.utils.env import AECEnv
from tf_agents.specs import tensor_spec

from metarl_apps.core.env import TrialEnvironment, trial_time_step_spec
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.core.task import Task, TaskDistribution, positive_int

#: Opponent seeds of the test split have this bit set, train seeds never do.
SPLIT_BIT = 1 << 30
_SPLIT_OFFSET = {"train": 0, "test": SPLIT_BIT}
OBSERVATION = "observation"
ACTION_MASK = "action_mask"
#: Which agents the learner moves: ``spec.learner(params)`` only, or every agent of ``spec.agents``.
CONTROLS = ("one", "all")
#: How ``control="all"`` turns the controlled agents' rewards of a round into the team reward.
TEAM_REWARDS = ("sum", "mean")


class Opponent(Protocol):
    """A scripted policy for the non-learner agents of one row (state kept inside, reset every game)."""

    def reset(self, rng: np.random.Generator) -> None:
        """A new game starts."""

    def act(self, agent: str, observation: Any, rng: np.random.Generator) -> int:
        """The move of ``agent`` given its raw PettingZoo observation (only called for live agents)."""


@dataclasses.dataclass(frozen=True)
class GameSpec:
    """How to play one PettingZoo game as a task family (see the module docstring).

    Attributes:
      family: registered family name.
      make_env: ``params -> AECEnv`` (wrap a Parallel env with ``pettingzoo.utils.parallel_to_aec``).
      learner: ``params -> agent name`` controlled by the learner.
      opponent: ``params -> Opponent`` playing every other agent.
      encode: raw learner observation -> float32 array of ``obs_shape``.
      obs_shape: shape of ``encode``'s output.
      num_actions: size of the learner's ``Discrete`` action space.
      horizon: learner moves per inner episode (games are padded to it; a longer game is cut there). With
        ``control="all"``: rounds (every controlled agent moves once per round).
      agents: the agents the learner moves with ``control="all"`` (the order of the agent axis); empty (the
        default): the family supports only ``control="one"``. Any other agent is played by ``opponent``.
      encode_agent: ``control="all"`` only: ``(agent, raw observation) -> float32 obs_shape``; default
        ``encode``. Give it when the agents' raw observations are alike (a shared screen) so that one shared
        network can tell them apart (e.g. mirror the screen so that every agent sees itself on the left).
      team_reward: ``control="all"`` only: ``"sum"`` (default) or ``"mean"`` of the controlled agents' rewards
        (use ``"mean"`` when the game gives every agent the same shared reward; see the module docstring).
    """

    family: str
    make_env: Callable[[Mapping[str, Any]], AECEnv]
    learner: Callable[[Mapping[str, Any]], str]
    opponent: Callable[[Mapping[str, Any]], Opponent]
    encode: Callable[[Any], np.ndarray]
    obs_shape: tuple[int, ...]
    num_actions: int
    horizon: int
    agents: tuple[str, ...] = ()
    encode_agent: Callable[[str, Any], np.ndarray] | None = None
    team_reward: str = "sum"

    def __post_init__(self):
        agents = self.agents
        if isinstance(agents, str) or not isinstance(agents, (tuple, list)) or not all(
                isinstance(a, str) for a in agents) or len(set(agents)) != len(agents):
            raise MetaRLInputError(f"{self.family}: GameSpec agents={agents!r} must be a tuple of distinct agent "
                                   f"names (empty: control='one' only)")
        object.__setattr__(self, "agents", tuple(agents))
        if self.team_reward not in TEAM_REWARDS:
            raise MetaRLInputError(f"{self.family}: GameSpec team_reward={self.team_reward!r} must be one of "
                                   f"{', '.join(TEAM_REWARDS)}")

    def controls(self) -> tuple[str, ...]:
        """The valid ``control`` values of this game: ``("one", "all")`` when it lists ``agents``."""
        return CONTROLS if self.agents else CONTROLS[:1]


def _raw_obs(observation: Any) -> Any:
    return observation[OBSERVATION] if isinstance(observation, Mapping) and OBSERVATION in observation else observation


def _mask(observation: Any, num_actions: int) -> np.ndarray:
    if isinstance(observation, Mapping) and ACTION_MASK in observation:
        return np.asarray(observation[ACTION_MASK], np.float32).reshape(num_actions)
    return np.ones(num_actions, np.float32)


class _Row:
    """One batch row: a live PettingZoo game of one task, its opponent and the learner's view.

    ``control="one"``: ``obs`` ``[*obs_shape]``, ``mask`` ``[num_actions]``, :meth:`step` takes one move.
    ``control="all"``: ``obs`` ``[N, *obs_shape]``, ``mask`` ``[N, num_actions]``, :meth:`step` takes ``[N]`` moves
    (one round, see the module docstring).
    """

    def __init__(self, spec: GameSpec, task: Task, env_seed: int, control: str = "one"):
        self.spec = spec
        self.params = task.params
        self.key = int(task.seed) % (1 << 63)
        self.env_seed = env_seed
        self.env = spec.make_env(task.params)
        self.all = control == "all"
        if self.all:
            self.agents = spec.agents
            unknown = [a for a in self.agents if a not in self.env.possible_agents]
            if unknown:
                raise MetaRLInputError(f"{spec.family}: GameSpec agents {unknown} are not agents of the game "
                                       f"(possible_agents: {', '.join(map(str, self.env.possible_agents))})")
            self.index = {a: j for j, a in enumerate(self.agents)}
            others = [a for a in self.env.possible_agents if a not in self.index]
            self.learner = None
            self.opponent = spec.opponent(task.params) if others else None
        else:
            self.learner = spec.learner(task.params)
            self.agents = (self.learner,)
            self.opponent = spec.opponent(task.params)
        self.rng = np.random.default_rng(0)
        self.done = True
        lead = (len(self.agents),) if self.all else ()
        self.obs = np.zeros(lead + tuple(spec.obs_shape), np.float32)
        self.mask = np.ones(lead + (spec.num_actions,), np.float32)

    def _advance(self) -> float:
        """Play the other agents until the learner is selected again or the game is over; the learner's reward."""
        env = self.env
        while env.agents and env.agent_selection != self.learner:
            agent = env.agent_selection
            if env.terminations[agent] or env.truncations[agent]:
                env.step(None)
            else:
                env.step(int(self.opponent.act(agent, env.observe(agent), self.rng)))
        if not env.agents or env.agent_selection != self.learner:  # pragma: no cover - learner already removed
            self.done = True
            return 0.0
        observation, reward, terminated, truncated, _ = env.last()
        self.done = bool(terminated or truncated)
        self.obs = np.asarray(self.spec.encode(_raw_obs(observation)), np.float32).reshape(self.spec.obs_shape)
        self.mask = np.ones(self.spec.num_actions, np.float32) if self.done else _mask(observation,
                                                                                       self.spec.num_actions)
        return float(reward)

    # ------------------------------------------------------ control="all"
    def _gone(self, agent: str) -> bool:
        """The agent is terminated, truncated or already removed from the game."""
        env = self.env
        return agent not in env.agents or bool(env.terminations[agent] or env.truncations[agent])

    def _round(self, actions: np.ndarray | None) -> float:
        """One round (``actions`` ``[N]``), or with ``None`` play up to the first controlled move; team reward."""
        env, index = self.env, self.index
        live = [a for a in self.agents if not self._gone(a)]
        rewards = dict.fromkeys(self.agents, 0.0)
        moved: set = set()
        while env.agents and not all(self._gone(a) for a in self.agents):
            agent = env.agent_selection
            if env.terminations[agent] or env.truncations[agent]:
                env.step(None)  # PettingZoo: a done agent steps None and leaves; no reward is accumulated
                continue
            if agent in index:
                if actions is None or agent in moved:
                    break  # the next round starts here
                moved.add(agent)
                env.step(int(actions[index[agent]]))
            else:
                env.step(int(self.opponent.act(agent, env.observe(agent), self.rng)))
            step_rewards = env.rewards  # this step's rewards: what PettingZoo adds to the agents' returns
            for a in self.agents:
                rewards[a] += float(step_rewards.get(a, 0.0))
        self.done = all(self._gone(a) for a in self.agents)
        for j, agent in enumerate(self.agents):
            if agent not in env.agents:
                self.mask[j] = 1.0  # removed: keep its last observation
                continue
            observation = env.observe(agent)
            raw = _raw_obs(observation)
            if self.spec.encode_agent is None:
                encoded = self.spec.encode(raw)
            else:
                encoded = self.spec.encode_agent(agent, raw)
            self.obs[j] = np.asarray(encoded, np.float32).reshape(self.spec.obs_shape)
            self.mask[j] = 1.0 if self._gone(agent) else _mask(observation, self.spec.num_actions)
        if self.spec.team_reward == "sum":
            return float(sum(rewards.values()))
        values = [rewards[a] for a in live] or [0.0]
        # The mean; written so that a reward shared by every agent comes back bit-exact (no N*r/N rounding).
        return values[0] if all(v == values[0] for v in values) else float(sum(values) / len(values))

    # ---------------------------------------------------------------- both
    def begin(self, trial: int, episode: int) -> None:
        self.rng = np.random.default_rng([self.key, self.env_seed, trial, episode])
        self.env.reset(seed=int(self.rng.integers(0, 2**31 - 1)))
        if self.opponent is not None:
            self.opponent.reset(self.rng)
        self.done = False
        if self.all:
            self._round(None)
        else:
            self._advance()

    def step(self, action) -> float:
        if self.done:
            return 0.0
        if self.all:
            return self._round(np.asarray(action).reshape(len(self.agents)))
        self.env.step(int(action))
        return self._advance()


class PettingZooEnvironment(TrialEnvironment):
    """Trial environment over one PettingZoo game instance per row (one ``numpy_function`` per step)."""

    def __init__(self, spec: GameSpec, tasks: list[Task], episodes: int, seed: int = 0, control: str = "one"):
        if control not in spec.controls():
            raise MetaRLInputError(f"{spec.family}: control={control!r} must be one of {', '.join(spec.controls())}")
        self.spec = spec
        self.control = control
        self._seed_ = int(seed)
        self._rows = [_Row(spec, t, self._seed_, control) for t in tasks]
        self._begun = 0  # inner episodes begun since construction / set_tasks (trial = begun // episodes)
        super().__init__([t.seed for t in tasks], _action_spec(spec, control), horizon=spec.horizon,
                         episodes_per_trial=episodes, seed=seed)
        self._bind_task_arrays({"task_seed": np.asarray([t.seed % (1 << 63) for t in tasks], np.int64)})

    @property
    def rows(self) -> list[_Row]:
        """The rows' live games (``row.env`` is the PettingZoo AEC env; tests and pictures read it)."""
        return self._rows

    def _task_arrays(self, tasks) -> dict:
        return {"task_seed": np.asarray([t.seed % (1 << 63) for t in tasks], np.int64)}

    def set_tasks(self, tasks) -> None:
        tasks = list(tasks)
        super().set_tasks(tasks)
        for row in self._rows:
            row.env.close()
        self._rows = [_Row(self.spec, t, self._seed_, self.control) for t in tasks]
        self._begun = 0

    def _task_observation_spec(self):
        return _obs_spec(self.spec, self.control)

    # ----------------------------------------------------------- numpy side
    def _gather(self):
        return np.stack([r.obs for r in self._rows]), np.stack([r.mask for r in self._rows])

    def _np_begin(self):
        trial, episode = divmod(self._begun, self.episodes_per_trial)
        self._begun += 1
        for row in self._rows:
            row.begin(trial, episode)
        return self._gather()

    def _np_step(self, action):
        action = np.asarray(action)
        action = action.reshape(len(self._rows), -1) if self.control == "all" else action.reshape(-1)  # [B, N], [B]
        reward = np.asarray([row.step(a) for row, a in zip(self._rows, action, strict=True)], np.float32)
        obs, mask = self._gather()
        return reward, obs, mask

    # -------------------------------------------------------------- TF side
    def _shape(self, obs, mask):
        lead = [self.batch_size, *_agent_dims(self.spec, self.control)]
        obs.set_shape([*lead, *self.spec.obs_shape])
        mask.set_shape([*lead, self.spec.num_actions])
        return {OBSERVATION: obs, ACTION_MASK: mask}

    def _begin_episode(self, counter):
        obs, mask = self.numpy_call(self._np_begin, [], [tf.float32, tf.float32], "pettingzoo_begin")
        return self._shape(obs, mask)

    def _transition(self, action, h, counter):
        reward, obs, mask = self.numpy_call(self._np_step, [action], [tf.float32] * 3, "pettingzoo_step")
        reward.set_shape([self.batch_size])
        return reward, self._shape(obs, mask)


def _agent_dims(spec: GameSpec, control: str) -> tuple[int, ...]:
    """``(N,)`` when the learner moves every agent of ``spec.agents``, else ``()``."""
    return (len(spec.agents),) if control == "all" else ()


def _action_spec(spec: GameSpec, control: str = "one"):
    return tensor_spec.BoundedTensorSpec(_agent_dims(spec, control), tf.int32, minimum=0,
                                         maximum=spec.num_actions - 1, name="action")


def _obs_spec(spec: GameSpec, control: str = "one") -> dict:
    lead = _agent_dims(spec, control)
    return {
        OBSERVATION: tensor_spec.TensorSpec(lead + tuple(spec.obs_shape), tf.float32, name=OBSERVATION),
        ACTION_MASK: tensor_spec.TensorSpec(lead + (spec.num_actions,), tf.float32, name=ACTION_MASK),
    }


def masked_random_actions(time_step, seed: int) -> tf.Tensor:
    """``[B]`` (``[B, N]`` with ``control="all"``) uniformly random legal actions (per ``obs["action_mask"]``) of a
    batched time step."""
    mask = tf.convert_to_tensor(time_step.observation["obs"][ACTION_MASK]) > 0.5
    u = tf.random.stateless_uniform(tf.shape(mask), seed=[int(seed), 7])
    return tf.argmax(tf.where(mask, u, -1.0), axis=-1, output_type=tf.int32)


class PettingZooTasks(TaskDistribution):
    """A task family over a PettingZoo game described by a :class:`GameSpec` (see the module docstring).

    Subclasses set ``family``, build ``self.spec`` and implement :meth:`_opponent_params` (the task's
    parameters drawn from its opponent seed: the same seed always gives the same opponent). A subclass whose
    spec lists ``agents`` opts in to ``control="all"`` by taking a ``control`` parameter and passing it here;
    ``control`` is recorded in :attr:`params` only when it is ``"all"`` (one-agent params stay as they were).
    """

    budget_unit = "episodes"

    def __init__(self, spec: GameSpec, episodes: int, control: str = "one", **params: Any):
        if not isinstance(control, str) or control not in spec.controls():
            raise MetaRLInputError(f"{spec.family}: parameter control={control!r} must be one of "
                                   f"{', '.join(spec.controls())}")
        self.spec = spec
        self.control = control
        self.episodes = positive_int("episodes", episodes, spec.family)
        if control == "all":
            params["control"] = control
        super().__init__(episodes=self.episodes, **params)

    @property
    def num_controlled_agents(self) -> int:
        """How many agents the learner moves per task: ``len(spec.agents)`` with ``control="all"``, else 1."""
        return len(self.spec.agents) if self.control == "all" else 1

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def episodes_per_trial(self) -> int:
        return self.episodes

    def _sample_params(self, stream: np.random.Generator, split: str) -> dict:
        seed = int(stream.integers(0, SPLIT_BIT)) + _SPLIT_OFFSET[split]
        return {"opponent_seed": seed, **self._opponent_params(np.random.default_rng(seed))}

    def _opponent_params(self, rng: np.random.Generator) -> dict:
        """The opponent / level parameters of one task, drawn from its own seed."""
        return {}

    def action_spec(self):
        return _action_spec(self.spec, self.control)

    def time_step_spec(self):
        return trial_time_step_spec(_obs_spec(self.spec, self.control), self.action_spec())

    def _make_env(self, tasks: list[Task], seed: int) -> PettingZooEnvironment:
        return PettingZooEnvironment(self.spec, tasks, self.episodes, seed=seed, control=self.control)

    def random_actions(self, time_step, seed: int) -> tf.Tensor:
        """Random legal actions (``check_task_distribution`` uses these)."""
        return masked_random_actions(time_step, seed)


def check_choices(family: str, name: str, values: Any, valid: tuple[str, ...]) -> tuple[str, ...]:
    """Validate a non-empty list of names, raising a one-line error listing the valid ones."""
    if isinstance(values, str):
        values = [values]
    values = tuple(values) if isinstance(values, (list, tuple)) else ()
    bad = [v for v in values if v not in valid]
    if not values or bad:
        raise MetaRLInputError(f"{family}: parameter {name}={list(values) or values!r} must be a non-empty list of "
                               f"{', '.join(valid)}")
    return values


def check_float(family: str, name: str, value: Any, low: float, high: float | None = None,
                low_open: bool = False) -> float:
    """Validate a numeric family parameter, raising a one-line error naming it and the valid range."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if ok:
        v = float(value)
        ok = np.isfinite(v) and (v > low if low_open else v >= low) and (high is None or v <= high)
    if not ok:
        rng = f"{'(' if low_open else '['}{low:g}, {'inf)' if high is None else f'{high:g}]'}"
        raise MetaRLInputError(f"{family}: parameter {name}={value!r} must be a number in {rng}")
    return float(value)
