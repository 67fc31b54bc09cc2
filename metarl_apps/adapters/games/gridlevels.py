"""``games.gridlevels`` as a PettingZoo ``ParallelEnv`` (``gridlevels_v0``): one level, 1 to 4 agents.

Rules, level generator and observations are documented in
:mod:`metarl_apps.adapters.games.gridlevels_core`; this module is that batched core with ``B = 1``.

Usage, like PettingZoo's own games::

    from metarl_apps.adapters.games import gridlevels
    par = gridlevels.parallel_env(num_agents=2, mode="competitive", permute_actions=True)
    obs, infos = par.reset(seed=0)                      # level drawn from the seed
    obs, infos = par.reset(options={"level_seed": 17})  # or a given level
    aec = gridlevels.env(num_agents=2)                  # AEC through PettingZoo's parallel_to_aec

Which level a ``reset`` plays, first match wins: ``options["level"]`` (a :class:`Levels` with one row, e.g.
from :func:`level_from_layout`), ``options["level_seed"]``, the constructor's ``level_seed``, else a level
seed drawn from the env's generator (seeded by ``reset(seed=...)``). The dynamics are deterministic.

Spaces: observation ``Box(0, 1, (view_size, view_size, 7), float32)``, action ``Discrete(5)`` for every
agent. Infos are empty dicts. No action mask (moves into walls are legal and leave the agent in place).
``render()`` returns a ``uint8 [H, W, 3]`` array in ``render_mode="rgb_array"`` (numpy only, no pygame).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import gymnasium
import numpy as np
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from metarl_apps.adapters.games.gridlevels_core import (
    FAMILY,
    NUM_ACTIONS,
    NUM_CHANNELS,
    GridLevelsConfig,
    GridLevelsCore,
    Levels,
    generate_level,
    render_rgb,
)
from metarl_apps.core.errors import MetaRLInputError

RENDER_MODES = ("rgb_array",)
_ACCEPTED_RENDER_MODES = (None, "rgb_array", "human")  # "human" is accepted (render_test builds it) but draws nothing
_MAX_SEED = 2**31 - 1


class GridLevelsParallelEnv(ParallelEnv):
    """One gridlevels level as a PettingZoo ``ParallelEnv``.

    Args:
      render_mode: None or "rgb_array".
      level_seed: play this level at every reset (default: a level drawn per reset from the seed).
      cell_px: pixels per grid cell in ``render()``.
      **config: fields of :class:`GridLevelsConfig` (size, num_agents, mode, view_size, max_steps,
        wall_density, num_hazards, use_key, permute_actions, goal_reward, hazard_reward, step_cost,
        loser_reward).
    """

    metadata = {"name": "gridlevels_v0", "render_modes": list(RENDER_MODES), "is_parallelizable": True}

    def __init__(self, render_mode: str | None = None, level_seed: int | None = None, cell_px: int = 16,
                 **config: Any):
        known = {f.name for f in dataclasses.fields(GridLevelsConfig)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise MetaRLInputError(
                f"{FAMILY}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
            )
        if render_mode not in _ACCEPTED_RENDER_MODES:
            raise MetaRLInputError(f"{FAMILY}: parameter render_mode={render_mode!r} must be None or 'rgb_array'")
        if isinstance(cell_px, bool) or not isinstance(cell_px, (int, np.integer)) or cell_px < 1:
            raise MetaRLInputError(f"{FAMILY}: parameter cell_px={cell_px!r} must be a positive integer")
        self.config = GridLevelsConfig(**config)
        self.render_mode = render_mode
        self.cell_px = int(cell_px)
        self.level_seed = None if level_seed is None else generate_level(self.config, level_seed).seeds[0]
        self.possible_agents = self.config.agent_ids
        self.agents: list[str] = []
        v = self.config.view_size
        self._observation_spaces = {
            a: gymnasium.spaces.Box(0.0, 1.0, (v, v, NUM_CHANNELS), np.float32) for a in self.possible_agents
        }
        self._action_spaces = {a: gymnasium.spaces.Discrete(NUM_ACTIONS) for a in self.possible_agents}
        self._rng: np.random.Generator | None = None
        self.core: GridLevelsCore | None = None

    def observation_space(self, agent: str) -> gymnasium.spaces.Box:
        return self._observation_spaces[agent]

    def action_space(self, agent: str) -> gymnasium.spaces.Discrete:
        return self._action_spaces[agent]

    @property
    def level(self) -> Levels | None:
        """The level being played (``B = 1``), None before the first reset."""
        return None if self.core is None else self.core.levels

    def _choose_level(self, options: dict | None) -> Levels:
        options = options or {}
        if options.get("level") is not None:
            level = options["level"]
            if not isinstance(level, Levels) or len(level) != 1:
                raise MetaRLInputError(f"{FAMILY}: options['level'] must be a Levels with one row, got {level!r}")
            return level
        if options.get("level_seed") is not None:
            return generate_level(self.config, options["level_seed"])
        if self.level_seed is not None:
            return generate_level(self.config, int(self.level_seed))
        return generate_level(self.config, int(self._rng.integers(0, _MAX_SEED)))

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None or self._rng is None:
            self._rng = np.random.default_rng(seed)
        level = self._choose_level(options)
        if self.core is None:
            self.core = GridLevelsCore(self.config, level)
        else:
            self.core.set_levels(level)
        self.agents = self.possible_agents[:]
        obs = self.core.observe()[0]
        return {a: obs[i] for i, a in enumerate(self.possible_agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict):
        if self.core is None:
            raise MetaRLInputError(f"{FAMILY}: call reset() before step()")
        acting = self.agents[:]
        batch = np.zeros((1, self.config.num_agents), dtype=np.int64)
        for i, agent in enumerate(self.possible_agents):
            action = actions.get(agent) if agent in acting else None
            if action is not None:
                if not self._action_spaces[agent].contains(np.int64(action)):
                    raise MetaRLInputError(f"{FAMILY}: action {action!r} for {agent} must be in 0..{NUM_ACTIONS - 1}")
                batch[0, i] = int(action)
        obs, reward, terminated, truncated = (x[0] for x in self.core.step(batch))
        index = {a: i for i, a in enumerate(self.possible_agents)}
        observations = {a: obs[index[a]] for a in acting}
        rewards = {a: float(reward[index[a]]) for a in acting}
        terminations = {a: bool(terminated[index[a]]) for a in acting}
        truncations = {a: bool(truncated[index[a]]) for a in acting}
        infos = {a: {} for a in acting}
        self.agents = [a for a in acting if self.core.active[0, index[a]]]
        return observations, rewards, terminations, truncations, infos

    def render(self):
        if self.render_mode is None:
            gymnasium.logger.warn("render() called without a render_mode; pass render_mode='rgb_array'.")
            return None
        if self.render_mode != "rgb_array":
            warnings.warn(f"{FAMILY}: render_mode={self.render_mode!r} draws nothing; use 'rgb_array'", stacklevel=2)
            return None
        if self.core is None:
            raise MetaRLInputError(f"{FAMILY}: call reset() before render()")
        return render_rgb(self.core, 0, self.cell_px)

    def close(self):
        pass


def parallel_env(**kwargs: Any) -> GridLevelsParallelEnv:
    """The Parallel version (PettingZoo naming)."""
    return GridLevelsParallelEnv(**kwargs)


def raw_env(**kwargs: Any):
    """The AEC version: :class:`GridLevelsParallelEnv` through ``parallel_to_aec`` (order enforcing)."""
    return parallel_to_aec(GridLevelsParallelEnv(**kwargs))


env = raw_env
