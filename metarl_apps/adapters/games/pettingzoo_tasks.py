"""Generic PettingZoo adapter: any AEC (or Parallel, converted) game + a level/opponent parameter space ->
:class:`TaskDistribution`.

A :class:`GameSpec` says how to build the game for a task (``make_env(params)``), which agent the learner
controls (``learner(params)``), how the other agents play (``opponent(params)``, a scripted
:class:`Opponent`), how to turn the learner's PettingZoo observation into a fixed-shape float array
(``encode``) and the fixed number of learner moves per inner episode (``horizon``).
:class:`PettingZooTasks` turns it into a task family:

* a task's hidden parameters are ``{"opponent_seed": int, ...}`` drawn by ``spec.sample_params``; the split
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

Multi-agent control (the learner playing all agents of a level with shared parameters and per-agent memory)
is designed as "one batch row per (level, agent) pair", so a recurrent learner keeps per-agent state for
free; it is not implemented here (see the report of issue 7): every family below controls one agent.
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
      horizon: learner moves per inner episode (games are padded to it; a longer game is cut there).
    """

    family: str
    make_env: Callable[[Mapping[str, Any]], AECEnv]
    learner: Callable[[Mapping[str, Any]], str]
    opponent: Callable[[Mapping[str, Any]], Opponent]
    encode: Callable[[Any], np.ndarray]
    obs_shape: tuple[int, ...]
    num_actions: int
    horizon: int


def _raw_obs(observation: Any) -> Any:
    return observation[OBSERVATION] if isinstance(observation, Mapping) and OBSERVATION in observation else observation


def _mask(observation: Any, num_actions: int) -> np.ndarray:
    if isinstance(observation, Mapping) and ACTION_MASK in observation:
        return np.asarray(observation[ACTION_MASK], np.float32).reshape(num_actions)
    return np.ones(num_actions, np.float32)


class _Row:
    """One batch row: a live PettingZoo game of one task, its opponent and the learner's view."""

    def __init__(self, spec: GameSpec, task: Task, env_seed: int):
        self.spec = spec
        self.params = task.params
        self.key = int(task.seed) % (1 << 63)
        self.env_seed = env_seed
        self.env = spec.make_env(task.params)
        self.learner = spec.learner(task.params)
        self.opponent = spec.opponent(task.params)
        self.rng = np.random.default_rng(0)
        self.done = True
        self.obs = np.zeros(spec.obs_shape, np.float32)
        self.mask = np.ones(spec.num_actions, np.float32)

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

    def begin(self, trial: int, episode: int) -> None:
        self.rng = np.random.default_rng([self.key, self.env_seed, trial, episode])
        self.env.reset(seed=int(self.rng.integers(0, 2**31 - 1)))
        self.opponent.reset(self.rng)
        self.done = False
        self._advance()

    def step(self, action: int) -> float:
        if self.done:
            return 0.0
        self.env.step(int(action))
        return self._advance()


class PettingZooEnvironment(TrialEnvironment):
    """Trial environment over one PettingZoo game instance per row (one ``numpy_function`` per step)."""

    def __init__(self, spec: GameSpec, tasks: list[Task], episodes: int, seed: int = 0):
        self.spec = spec
        self._seed_ = int(seed)
        self._rows = [_Row(spec, t, self._seed_) for t in tasks]
        self._begun = 0  # inner episodes begun since construction / set_tasks (trial = begun // episodes)
        super().__init__([t.seed for t in tasks], _action_spec(spec), horizon=spec.horizon,
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
        self._rows = [_Row(self.spec, t, self._seed_) for t in tasks]
        self._begun = 0

    def _task_observation_spec(self):
        return _obs_spec(self.spec)

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
        action = np.asarray(action).reshape(-1)
        reward = np.asarray([row.step(a) for row, a in zip(self._rows, action, strict=True)], np.float32)
        obs, mask = self._gather()
        return reward, obs, mask

    # -------------------------------------------------------------- TF side
    def _shape(self, obs, mask):
        obs.set_shape([self.batch_size, *self.spec.obs_shape])
        mask.set_shape([self.batch_size, self.spec.num_actions])
        return {OBSERVATION: obs, ACTION_MASK: mask}

    def _begin_episode(self, counter):
        obs, mask = self.numpy_call(self._np_begin, [], [tf.float32, tf.float32], "pettingzoo_begin")
        return self._shape(obs, mask)

    def _transition(self, action, h, counter):
        reward, obs, mask = self.numpy_call(self._np_step, [action], [tf.float32] * 3, "pettingzoo_step")
        reward.set_shape([self.batch_size])
        return reward, self._shape(obs, mask)


def _action_spec(spec: GameSpec):
    return tensor_spec.BoundedTensorSpec((), tf.int32, minimum=0, maximum=spec.num_actions - 1, name="action")


def _obs_spec(spec: GameSpec) -> dict:
    return {
        OBSERVATION: tensor_spec.TensorSpec(spec.obs_shape, tf.float32, name=OBSERVATION),
        ACTION_MASK: tensor_spec.TensorSpec((spec.num_actions,), tf.float32, name=ACTION_MASK),
    }


def masked_random_actions(time_step, seed: int) -> tf.Tensor:
    """``[B]`` uniformly random legal actions (per ``obs["action_mask"]``) of a batched time step."""
    mask = tf.convert_to_tensor(time_step.observation["obs"][ACTION_MASK]) > 0.5
    u = tf.random.stateless_uniform(tf.shape(mask), seed=[int(seed), 7])
    return tf.argmax(tf.where(mask, u, -1.0), axis=-1, output_type=tf.int32)


class PettingZooTasks(TaskDistribution):
    """A task family over a PettingZoo game described by a :class:`GameSpec` (see the module docstring).

    Subclasses set ``family``, build ``self.spec`` and implement :meth:`_opponent_params` (the task's
    parameters drawn from its opponent seed: the same seed always gives the same opponent).
    """

    budget_unit = "episodes"

    def __init__(self, spec: GameSpec, episodes: int, **params: Any):
        self.spec = spec
        self.episodes = positive_int("episodes", episodes, spec.family)
        super().__init__(episodes=self.episodes, **params)

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
        return _action_spec(self.spec)

    def time_step_spec(self):
        return trial_time_step_spec(_obs_spec(self.spec), self.action_spec())

    def _make_env(self, tasks: list[Task], seed: int) -> PettingZooEnvironment:
        return PettingZooEnvironment(self.spec, tasks, self.episodes, seed=seed)

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
