"""Batched numpy core of ``games.gridlevels``: a procedurally generated multi-level grid game.

One *level* is a ``size x size`` grid fully determined by its integer level seed
(``np.random.default_rng(level_seed)``) and the :class:`GridLevelsConfig`. :class:`GridLevelsCore` steps a
whole batch of ``B`` levels at once: every array is ``[B, ...]`` and ``step`` contains no Python loop over
levels or agents. :class:`~metarl_apps.adapters.games.gridlevels.GridLevelsParallelEnv` is this core with
``B = 1`` behind PettingZoo's ``ParallelEnv`` API.

Level generator (:func:`generate_level`)
  1. ``perm = rng.permutation(4)`` is drawn first (so the layout of a seed does not depend on
     ``permute_actions``); with ``permute_actions=True`` the four *move* actions 1..4 are remapped through
     it (action 0 "stay" is never permuted; the identity permutation occurs with probability 1/24).
  2. Exactly ``round(wall_density * size**2)`` wall cells are drawn uniformly without replacement. The
     border is *not* walled: outside the grid counts as wall.
  3. Goal, key (if ``use_key``), ``num_hazards`` hazards and ``num_agents`` start cells are drawn on distinct
     free cells.
  4. The level is accepted when, from every start, a breadth-first search over cells that are neither wall
     nor hazard reaches the key and the goal (both lie in the start's component, so start -> key -> goal is a
     hazard-free path). Otherwise steps 2-4 are redrawn from the same generator, so a seed always gives the
     same level. After ``MAX_ATTEMPTS`` failures a :class:`MetaRLInputError` names ``wall_density``.
  A level can also be built by hand from a text layout with :func:`level_from_layout`.

Dynamics (all agents move simultaneously, one step = one action per active agent)
  - Actions ``Discrete(5)``: 0 stay, 1 up (row - 1), 2 down (row + 1), 3 left (col - 1), 4 right (col + 1),
    looked up through the level's permutation. A move into a wall or off the grid leaves the agent in place.
    Agents do not block each other (several may share a cell).
  - Key: an agent stepping on the key cell holds the key from then on (the key stays on the map, every agent
    can pick up its own). The goal is *open* for an agent when ``use_key=False``, or when it holds the key
    (``competitive``), or when any agent of the team holds it (``cooperative``).
  - Goal: an active agent standing on the open goal *reaches* it. Hazard: an active agent standing on a hazard
    gets ``hazard_reward`` (default -1) and is terminated. Every active agent pays ``step_cost`` per step
    (default 0; give a negative number, e.g. -0.01).
  - ``cooperative``: all agents active in the step receive the same team reward
    ``goal_reward * [any agent reached the goal] + sum_i(individual_i)`` (individual = step cost + hazard);
    the first arrival ends the episode for the whole team (all active agents terminated).
  - ``competitive``: an agent gets its individual reward, plus ``goal_reward`` (+1) if it reached the goal,
    or ``loser_reward`` (default -1; set 0 for a non-zero-sum race) if another agent reached it in that step.
    Simultaneous arrivals all win. The first arrival ends the episode for every agent.
  - After ``max_steps`` steps (default 50) every still-active agent is truncated. A level whose agents are
    all terminated/truncated is *over*: further ``step`` calls leave it unchanged with zero rewards until
    ``reset`` (which may reset only some rows).

Observations (egocentric, partial): float32 ``[view_size, view_size, NUM_CHANNELS]`` per agent, the agent at
the centre (``view_size`` odd, default 5). Channels 0-4 are a one-hot cell type
``{wall (also off-grid), empty floor, goal, key, hazard}``; channel 5 marks cells holding another *active*
agent; channel 6 is a constant plane equal to 1 when the goal is open for this agent ("has key" flag).
"""

from __future__ import annotations

import dataclasses
from collections import deque
from typing import Sequence

import numpy as np

from metarl_apps.core.errors import MetaRLInputError

FAMILY = "games.gridlevels"
MODES = ("cooperative", "competitive")
MAX_AGENTS = 4
MAX_ATTEMPTS = 1000
NUM_ACTIONS = 5
ACTION_MEANINGS = ("stay", "up", "down", "left", "right")
# Row/col offsets of the canonical actions 0..4.
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)

WALL, EMPTY, GOAL, KEY, HAZARD = range(5)
CHANNELS = ("wall", "empty", "goal", "key", "hazard", "other_agent", "has_key")
NUM_CHANNELS = len(CHANNELS)
NO_KEY = -1  # key coordinates of a level without a key


def _err(name: str, value, expected: str) -> MetaRLInputError:
    return MetaRLInputError(f"{FAMILY}: parameter {name}={value!r} {expected}")


def _int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise _err(name, value, "must be an integer")
    return int(value)


def _float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _err(name, value, "must be a number")
    if not np.isfinite(value):
        raise _err(name, value, "must be finite")
    return float(value)


@dataclasses.dataclass(frozen=True)
class GridLevelsConfig:
    """Rules shared by every level of a game; a level seed then fixes the layout.

    Attributes:
      size: grid side length (4..32).
      num_agents: agents per level (1..4).
      mode: "cooperative" (shared team reward) or "competitive" (first to the goal wins).
      view_size: side of the egocentric window, odd, 1..2*size+1.
      max_steps: steps per episode before truncation.
      wall_density: fraction of cells that are walls, in [0, 0.6].
      num_hazards: hazard cells per level.
      use_key: the goal opens only once the key is picked up.
      permute_actions: each level remaps the four move actions by a seeded permutation.
      goal_reward / hazard_reward / step_cost / loser_reward: see the module docstring.
    """

    size: int = 7
    num_agents: int = 1
    mode: str = "cooperative"
    view_size: int = 5
    max_steps: int = 50
    wall_density: float = 0.25
    num_hazards: int = 2
    use_key: bool = True
    permute_actions: bool = False
    goal_reward: float = 1.0
    hazard_reward: float = -1.0
    step_cost: float = 0.0
    loser_reward: float = -1.0

    def __post_init__(self):
        size = _int("size", self.size)
        if not 4 <= size <= 32:
            raise _err("size", self.size, "must be between 4 and 32 (the grid is too small or too large)")
        n = _int("num_agents", self.num_agents)
        if not 1 <= n <= MAX_AGENTS:
            raise _err("num_agents", self.num_agents, f"must be between 1 and {MAX_AGENTS}")
        if self.mode not in MODES:
            raise _err("mode", self.mode, f"must be one of {', '.join(MODES)}")
        view = _int("view_size", self.view_size)
        if view < 1 or view % 2 == 0 or view > 2 * size + 1:
            raise _err("view_size", self.view_size, f"must be odd and between 1 and {2 * size + 1}")
        if _int("max_steps", self.max_steps) < 1:
            raise _err("max_steps", self.max_steps, "must be a positive integer")
        density = _float("wall_density", self.wall_density)
        if not 0.0 <= density <= 0.6:
            raise _err("wall_density", self.wall_density, "must be between 0 and 0.6")
        if _int("num_hazards", self.num_hazards) < 0:
            raise _err("num_hazards", self.num_hazards, "must be >= 0")
        for name in ("use_key", "permute_actions"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise _err(name, getattr(self, name), "must be true or false")
        for name in ("goal_reward", "hazard_reward", "step_cost", "loser_reward"):
            _float(name, getattr(self, name))
        needed = self.num_walls + 1 + int(self.use_key) + self.num_hazards + n
        if needed > size * size:
            raise _err(
                "num_agents", n,
                f"does not fit: walls + goal + key + hazards + agents need {needed} cells, the {size}x{size} "
                "grid has fewer; lower num_agents, num_hazards or wall_density, or raise size",
            )

    @property
    def num_walls(self) -> int:
        return int(round(self.wall_density * self.size * self.size))

    @property
    def agent_ids(self) -> list[str]:
        return [f"agent_{i}" for i in range(self.num_agents)]


@dataclasses.dataclass
class Levels:
    """A batch of ``B`` levels (static content). Coordinates are ``(row, col)``.

    walls, hazards: bool ``[B, H, W]``; goal: int ``[B, 2]``; key: int ``[B, 2]`` (``NO_KEY`` when the level
    has none); starts: int ``[B, N, 2]``; action_perm: int ``[B, 5]`` (canonical move of each action);
    seeds: int ``[B]`` (-1 for hand-made levels).
    """

    walls: np.ndarray
    hazards: np.ndarray
    goal: np.ndarray
    key: np.ndarray
    starts: np.ndarray
    action_perm: np.ndarray
    seeds: np.ndarray

    def __len__(self) -> int:
        return int(self.walls.shape[0])

    def cell_codes(self) -> np.ndarray:
        """int8 ``[B, H, W]`` cell types (WALL, EMPTY, GOAL, KEY, HAZARD)."""
        codes = np.where(self.walls, WALL, EMPTY).astype(np.int8)
        codes[self.hazards] = HAZARD
        b = np.arange(len(self))
        codes[b, self.goal[:, 0], self.goal[:, 1]] = GOAL
        has = self.key[:, 0] >= 0
        codes[b[has], self.key[has, 0], self.key[has, 1]] = KEY
        return codes

    def equals(self, other: Levels) -> bool:
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self) if f.name != "seeds"
        )

    @staticmethod
    def stack(levels: Sequence[Levels]) -> Levels:
        if not levels:
            raise MetaRLInputError(f"{FAMILY}: levels must not be empty")
        return Levels(**{
            f.name: np.concatenate([getattr(lv, f.name) for lv in levels], axis=0)
            for f in dataclasses.fields(Levels)
        })

    def select(self, rows) -> Levels:
        return Levels(**{f.name: getattr(self, f.name)[rows] for f in dataclasses.fields(Levels)})


def reachable(passable: np.ndarray, start: Sequence[int]) -> np.ndarray:
    """bool ``[H, W]``: cells reachable from ``start`` through ``passable`` cells (4-neighbour BFS)."""
    h, w = passable.shape
    seen = np.zeros_like(passable, dtype=bool)
    r0, c0 = int(start[0]), int(start[1])
    if not passable[r0, c0]:
        return seen
    seen[r0, c0] = True
    queue = deque([(r0, c0)])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES[1:]:
            nr, nc = r + dr, c + dc
            if 0 <= nr < h and 0 <= nc < w and passable[nr, nc] and not seen[nr, nc]:
                seen[nr, nc] = True
                queue.append((nr, nc))
    return seen


def is_solvable(levels: Levels, row: int = 0) -> bool:
    """Whether every start of level ``row`` reaches the key (if any) and the goal without touching a hazard."""
    passable = ~(levels.walls[row] | levels.hazards[row])
    targets = [levels.goal[row]] + ([levels.key[row]] if levels.key[row, 0] >= 0 else [])
    for start in levels.starts[row]:
        seen = reachable(passable, start)
        if not all(seen[t[0], t[1]] for t in targets):
            return False
    return True


def generate_level(config: GridLevelsConfig, level_seed: int) -> Levels:
    """The level (``B = 1``) of ``level_seed`` under ``config``; same seed, same level, always."""
    seed = _int("level_seed", level_seed)
    if seed < 0:
        raise _err("level_seed", level_seed, "must be >= 0")
    rng = np.random.default_rng(seed)
    move_perm = rng.permutation(4) + 1
    perm = np.concatenate([[0], move_perm]) if config.permute_actions else np.arange(NUM_ACTIONS)
    s, n_cells = config.size, config.size * config.size
    n_items = 1 + int(config.use_key) + config.num_hazards + config.num_agents
    for _ in range(MAX_ATTEMPTS):
        cells = rng.permutation(n_cells)
        walls = np.zeros(n_cells, dtype=bool)
        walls[cells[: config.num_walls]] = True
        items = cells[config.num_walls: config.num_walls + n_items]
        coords = np.stack([items // s, items % s], axis=1)
        goal, rest = coords[0], coords[1:]
        if config.use_key:
            key, rest = rest[0], rest[1:]
        else:
            key = np.array([NO_KEY, NO_KEY])
        hazard_coords, starts = rest[: config.num_hazards], rest[config.num_hazards:]
        hazards = np.zeros((s, s), dtype=bool)
        hazards[hazard_coords[:, 0], hazard_coords[:, 1]] = True
        level = Levels(
            walls=walls.reshape(1, s, s), hazards=hazards[None], goal=goal[None].astype(np.int64),
            key=key[None].astype(np.int64), starts=starts[None].astype(np.int64),
            action_perm=perm[None].astype(np.int64), seeds=np.array([seed], dtype=np.int64),
        )
        if is_solvable(level):
            return level
    raise _err("wall_density", config.wall_density, f"gives no solvable level in {MAX_ATTEMPTS} tries; lower it")


def generate_levels(config: GridLevelsConfig, level_seeds: Sequence[int]) -> Levels:
    """A batch ``[B]`` of generated levels, row i from ``level_seeds[i]``."""
    return Levels.stack([generate_level(config, s) for s in level_seeds])


def level_from_layout(
    config: GridLevelsConfig, layout: Sequence[str], action_perm: Sequence[int] | None = None
) -> Levels:
    """A hand-made level (``B = 1``) from rows of text: ``#`` wall, ``.`` floor, ``G`` goal, ``K`` key,
    ``H`` hazard, ``0``-``3`` start of that agent. The layout must be ``config.size`` square, hold one goal,
    a key iff ``config.use_key``, and exactly the starts ``0..num_agents-1``. Solvability is not required."""
    rows = [str(r) for r in layout]
    s = config.size
    if len(rows) != s or any(len(r) != s for r in rows):
        raise _err("layout", layout, f"must be {s} rows of {s} characters (config.size)")
    grid = np.array([list(r) for r in rows])
    if not np.isin(grid, list("#.GKH0123")).all():
        raise _err("layout", layout, "may only use the characters # . G K H 0 1 2 3")

    def where(ch: str) -> np.ndarray:
        return np.argwhere(grid == ch).astype(np.int64)

    goal, key = where("G"), where("K")
    if len(goal) != 1:
        raise _err("layout", layout, "must contain exactly one G (goal)")
    if len(key) != int(config.use_key):
        raise _err("layout", layout, f"must contain {int(config.use_key)} K (key) when use_key={config.use_key}")
    starts = []
    for i in range(MAX_AGENTS):
        found = where(str(i))
        if (i < config.num_agents) != (len(found) == 1) or len(found) > 1:
            raise _err("layout", layout, f"must contain exactly the starts 0..{config.num_agents - 1}, once each")
        if i < config.num_agents:
            starts.append(found[0])
    perm = np.arange(NUM_ACTIONS) if action_perm is None else np.asarray(action_perm, dtype=np.int64)
    if sorted(perm.tolist()) != list(range(NUM_ACTIONS)):
        raise _err("action_perm", action_perm, "must be a permutation of 0..4")
    return Levels(
        walls=(grid == "#")[None], hazards=(grid == "H")[None], goal=goal,
        key=key if config.use_key else np.full((1, 2), NO_KEY, dtype=np.int64),
        starts=np.stack(starts)[None], action_perm=perm[None], seeds=np.array([-1], dtype=np.int64),
    )


class GridLevelsCore:
    """Steps ``B`` levels at once. State: ``pos`` int ``[B, N, 2]``, ``has_key`` bool ``[B, N]``,
    ``active`` bool ``[B, N]`` (not yet terminated/truncated), ``t`` int ``[B]`` (steps taken this episode)."""

    def __init__(self, config: GridLevelsConfig, levels: Levels):
        self.config = config
        self.set_levels(levels)

    def set_levels(self, levels: Levels) -> None:
        """Replace every level (the batch size may change) and reset all rows."""
        c = self.config
        if levels.walls.shape[1:] != (c.size, c.size) or levels.starts.shape[1] != c.num_agents:
            raise MetaRLInputError(
                f"{FAMILY}: levels of shape {levels.walls.shape[1:]} with {levels.starts.shape[1]} agents do "
                f"not match the config (size={c.size}, num_agents={c.num_agents})"
            )
        self.levels = levels
        self.batch_size = len(levels)
        r = c.view_size // 2
        codes = levels.cell_codes()
        self._padded_codes = np.pad(codes, ((0, 0), (r, r), (r, r)), constant_values=WALL)
        self._has_key_item = levels.key[:, 0] >= 0
        self._b = np.arange(self.batch_size)[:, None]  # [B, 1] row index for fancy indexing
        b, n = self.batch_size, c.num_agents
        self.pos = np.zeros((b, n, 2), dtype=np.int64)
        self.has_key = np.zeros((b, n), dtype=bool)
        self.active = np.zeros((b, n), dtype=bool)
        self.t = np.zeros(b, dtype=np.int64)
        self.reset()

    @property
    def over(self) -> np.ndarray:
        """bool ``[B]``: levels whose episode has ended (no active agent)."""
        return ~self.active.any(axis=1)

    def reset(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Start a new episode in ``rows`` (bool ``[B]`` mask, default all); returns observations of all rows."""
        m = np.ones(self.batch_size, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        self.pos[m] = self.levels.starts[m]
        self.has_key[m] = False
        self.active[m] = True
        self.t[m] = 0
        return self.observe()

    def goal_open(self) -> np.ndarray:
        """bool ``[B, N]``: whether the goal is open for each agent."""
        if not self.config.use_key:
            return np.ones_like(self.has_key)
        if self.config.mode == "cooperative":
            return np.broadcast_to(self.has_key.any(axis=1, keepdims=True), self.has_key.shape).copy()
        return self.has_key.copy()

    def observe(self) -> np.ndarray:
        """float32 ``[B, N, V, V, NUM_CHANNELS]`` egocentric views (see the module docstring)."""
        c = self.config
        v, r = c.view_size, c.view_size // 2
        offs = np.arange(v)
        rows = self.pos[:, :, 0, None] + offs  # [B, N, V] in padded coordinates (pos + r - r)
        cols = self.pos[:, :, 1, None] + offs
        bi = self._b[:, :, None, None]
        codes = self._padded_codes[bi, rows[:, :, :, None], cols[:, :, None, :]]  # [B, N, V, V]
        obs = np.zeros(codes.shape + (NUM_CHANNELS,), dtype=np.float32)
        obs[..., :5] = np.eye(5, dtype=np.float32)[codes]
        occ = np.zeros(self._padded_codes.shape, dtype=np.int32)
        np.add.at(occ, (np.broadcast_to(self._b, self.active.shape), self.pos[..., 0] + r, self.pos[..., 1] + r),
                  self.active.astype(np.int32))
        others = occ[bi, rows[:, :, :, None], cols[:, :, None, :]]
        others[:, :, r, r] -= self.active
        obs[..., 5] = others > 0
        obs[..., 6] = self.goal_open()[:, :, None, None]
        return obs

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Apply int ``[B, N]`` actions (ignored for inactive agents and finished levels).

        Returns ``(obs [B, N, V, V, C] float32, reward [B, N] float32, terminated [B, N] bool,
        truncated [B, N] bool)``; reward/terminated/truncated are zero/False for agents inactive before the step.
        """
        c = self.config
        a = np.asarray(actions, dtype=np.int64)
        if a.shape != self.active.shape:
            raise MetaRLInputError(f"{FAMILY}: actions of shape {a.shape} must have shape {self.active.shape} [B, N]")
        if ((a < 0) | (a >= NUM_ACTIONS)).any():
            raise MetaRLInputError(f"{FAMILY}: actions must be integers in 0..{NUM_ACTIONS - 1}, got {a.tolist()}")
        acting = self.active.copy()
        running = acting.any(axis=1)
        canon = np.take_along_axis(self.levels.action_perm, a, axis=1)  # [B, N]
        target = self.pos + MOVES[canon] * acting[..., None]
        inside = ((target >= 0) & (target < c.size)).all(axis=-1)
        tc = np.clip(target, 0, c.size - 1)
        blocked = ~inside | self.levels.walls[self._b, tc[..., 0], tc[..., 1]]
        self.pos = np.where(blocked[..., None], self.pos, target)

        on_key = acting & self._has_key_item[:, None] & (self.pos == self.levels.key[:, None, :]).all(-1)
        self.has_key |= on_key
        on_goal = acting & self.goal_open() & (self.pos == self.levels.goal[:, None, :]).all(-1)
        on_hazard = acting & self.levels.hazards[self._b, self.pos[..., 0], self.pos[..., 1]]
        won = on_goal.any(axis=1, keepdims=True)  # [B, 1]
        individual = c.step_cost * acting + c.hazard_reward * on_hazard
        if c.mode == "cooperative":
            team = c.goal_reward * won[:, 0] + individual.sum(axis=1)
            reward = team[:, None] * acting
        else:
            reward = individual + c.goal_reward * on_goal + c.loser_reward * (won & acting & ~on_goal)
        terminated = acting & (on_hazard | won)
        self.active &= ~terminated
        self.t += running
        truncated = self.active & (self.t >= c.max_steps)[:, None]
        self.active &= ~truncated
        return self.observe(), reward.astype(np.float32), terminated, truncated


# RGB colours of cell types and agents, for render_rgb.
CELL_COLOURS = np.array(
    [[60, 60, 60], [235, 235, 235], [40, 170, 60], [230, 190, 30], [200, 50, 50]], dtype=np.uint8
)
LOCKED_GOAL_COLOUR = np.array([150, 200, 160], dtype=np.uint8)
AGENT_COLOURS = np.array([[40, 90, 220], [240, 130, 20], [150, 60, 190], [20, 180, 200]], dtype=np.uint8)


def render_rgb(core: GridLevelsCore, row: int = 0, cell_px: int = 16) -> np.ndarray:
    """uint8 ``[size * cell_px, size * cell_px, 3]`` picture of level ``row`` (numpy only, no pygame).

    Cells are coloured by type (the goal paler while closed for every agent); active agents are filled
    squares, agents holding the key get a yellow centre dot."""
    codes = core.levels.cell_codes()[row]
    img = CELL_COLOURS[codes]
    open_any = core.goal_open()[row].any()
    if not open_any:
        g = core.levels.goal[row]
        img[g[0], g[1]] = LOCKED_GOAL_COLOUR
    img = np.repeat(np.repeat(img, cell_px, axis=0), cell_px, axis=1)
    m = max(1, cell_px // 5)
    for i in np.flatnonzero(core.active[row]):  # at most 4 agents; rendering is not a hot path
        r, c = core.pos[row, i] * cell_px
        img[r + m: r + cell_px - m, c + m: c + cell_px - m] = AGENT_COLOURS[i]
        if core.has_key[row, i]:
            q = cell_px // 2 - m // 2
            img[r + q: r + q + max(1, m), c + q: c + q + max(1, m)] = CELL_COLOURS[KEY]
    return img
