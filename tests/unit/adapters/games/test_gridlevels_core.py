"""The batched numpy core of games.gridlevels: generator, hand-checked dynamics, batching, errors."""

import numpy as np
import pytest

from metarl_apps.adapters.games.gridlevels_core import (
    EMPTY,
    GOAL,
    HAZARD,
    KEY,
    NUM_CHANNELS,
    WALL,
    GridLevelsConfig,
    GridLevelsCore,
    generate_level,
    generate_levels,
    level_from_layout,
    render_rgb,
)
from metarl_apps.core.errors import MetaRLInputError

STAY, UP, DOWN, LEFT, RIGHT = range(5)


def _flood(passable, start):
    """Reachable set by repeated dilation (independent of the BFS used by the generator)."""
    seen = np.zeros_like(passable)
    seen[tuple(start)] = passable[tuple(start)]
    while True:
        grown = seen.copy()
        grown[1:] |= seen[:-1]
        grown[:-1] |= seen[1:]
        grown[:, 1:] |= seen[:, :-1]
        grown[:, :-1] |= seen[:, 1:]
        grown &= passable
        if (grown == seen).all():
            return seen
        seen = grown


# ---------------------------------------------------------------- generator


def test_same_seed_same_level_and_different_seeds_differ():
    cfg = GridLevelsConfig(num_agents=2)
    assert generate_level(cfg, 7).equals(generate_level(cfg, 7))
    layouts = {generate_level(cfg, s).cell_codes().tobytes() for s in range(50)}
    assert len(layouts) == 50


def test_layout_of_a_seed_does_not_depend_on_permute_actions():
    plain = generate_level(GridLevelsConfig(), 3)
    perm = generate_level(GridLevelsConfig(permute_actions=True), 3)
    np.testing.assert_array_equal(plain.cell_codes(), perm.cell_codes())
    np.testing.assert_array_equal(plain.action_perm[0], np.arange(5))
    perms = {tuple(generate_level(GridLevelsConfig(permute_actions=True), s).action_perm[0]) for s in range(40)}
    assert len(perms) > 5 and all(p[0] == STAY for p in perms)


@pytest.mark.parametrize(
    "cfg",
    [GridLevelsConfig(), GridLevelsConfig(num_agents=4, wall_density=0.4, num_hazards=4),
     GridLevelsConfig(size=5, num_agents=3, use_key=False, wall_density=0.3)],
    ids=["default", "dense4", "small-nokey"],
)
def test_every_generated_level_is_solvable(cfg):
    levels = generate_levels(cfg, range(200))
    codes = levels.cell_codes()
    for b in range(len(levels)):
        passable = ~(levels.walls[b] | levels.hazards[b])
        items = [tuple(levels.goal[b])] + [tuple(s) for s in levels.starts[b]]
        if cfg.use_key:
            items.append(tuple(levels.key[b]))
            assert codes[b][items[-1]] == KEY
        assert len(set(items)) == len(items), "goal, key and starts must be distinct cells"
        assert codes[b][tuple(levels.goal[b])] == GOAL
        assert levels.hazards[b].sum() == cfg.num_hazards and levels.walls[b].sum() == cfg.num_walls
        for start in levels.starts[b]:
            assert codes[b][tuple(start)] == EMPTY
            seen = _flood(passable, start)
            assert seen[tuple(levels.goal[b])]
            if cfg.use_key:
                assert seen[tuple(levels.key[b])]


# ---------------------------------------------------------------- hand-made levels, hand-checked numbers

COOP_LAYOUT = [
    "0.K#",
    "...#",
    "H..G",
    "1...",
]


def _core(layout, perm=None, **kw):
    cfg = GridLevelsConfig(size=4, view_size=3, wall_density=0.0, num_hazards=0, **kw)
    return GridLevelsCore(cfg, level_from_layout(cfg, layout, perm))


def _step(core, *actions):
    obs, rew, term, trunc = core.step(np.array([actions]))
    return rew[0].tolist(), term[0].tolist(), trunc[0].tolist()


def test_cooperative_key_then_goal_shared_reward():
    core = _core(COOP_LAYOUT, num_agents=2)
    assert _step(core, RIGHT, RIGHT) == ([0, 0], [False, False], [False, False])
    # agent_1 walks onto the goal before anyone holds the key: closed, nothing happens
    _step(core, STAY, RIGHT)
    _step(core, STAY, RIGHT)
    _step(core, STAY, UP)
    assert core.pos[0, 1].tolist() == [2, 3]
    assert _step(core, STAY, STAY) == ([0, 0], [False, False], [False, False])
    assert not core.goal_open().any()
    # agent_0 picks up the key: the goal opens for the team and agent_1 is standing on it
    rew, term, trunc = _step(core, RIGHT, STAY)
    assert core.has_key[0].tolist() == [True, False]
    assert (rew, term, trunc) == ([1.0, 1.0], [True, True], [False, False])
    assert core.over.tolist() == [True]
    # a finished level ignores further steps
    assert _step(core, DOWN, DOWN) == ([0, 0], [False, False], [False, False])


def test_hazard_ends_that_agent_and_costs_the_team():
    core = _core(COOP_LAYOUT, num_agents=2, step_cost=-0.25)
    rew, term, _ = _step(core, STAY, UP)  # agent_1 steps onto H at (2, 0)
    assert rew == [-1.25 - 0.25, -1.5] and term == [False, True]
    rew, term, _ = _step(core, STAY, UP)  # only agent_0 still acts
    assert rew == [-0.25, 0.0] and term == [False, False]
    assert core.active[0].tolist() == [True, False]


@pytest.mark.parametrize("loser_reward", [-1.0, 0.0])
def test_competitive_first_to_goal_wins(loser_reward):
    layout = ["0..#", "...#", "H..G", "1..."]
    core = _core(layout, num_agents=2, use_key=False, mode="competitive", loser_reward=loser_reward)
    for _ in range(3):
        assert _step(core, STAY, RIGHT)[0] == [0, 0]
    assert _step(core, STAY, UP) == ([loser_reward, 1.0], [True, True], [False, False])


def test_competitive_key_is_personal():
    layout = ["0K.#", "...#", "G..1", "...."]
    core = _core(layout, num_agents=2, mode="competitive")
    _step(core, RIGHT, STAY)  # agent_0 holds the key
    assert core.goal_open()[0].tolist() == [True, False]
    _step(core, STAY, LEFT)
    _step(core, STAY, LEFT)
    assert _step(core, STAY, LEFT) == ([0, 0], [False, False], [False, False])  # agent_1 on the closed goal
    _step(core, DOWN, STAY)
    assert _step(core, LEFT, STAY) == ([0, 0], [False, False], [False, False])
    assert _step(core, DOWN, STAY) == ([1.0, -1.0], [True, True], [False, False])


def test_walls_and_edges_block_and_truncation_at_max_steps():
    core = _core(["0.K#", "...#", "H..G", "...."], max_steps=5)
    _step(core, UP)  # off the grid
    _step(core, LEFT)
    assert core.pos[0, 0].tolist() == [0, 0]
    _step(core, RIGHT)
    assert _step(core, RIGHT) == ([0], [False], [False])  # picks up the key
    rew, term, trunc = _step(core, RIGHT)  # wall at (0, 3)
    assert core.pos[0, 0].tolist() == [0, 2]
    assert (rew, term, trunc) == ([0], [False], [True]) and core.t.tolist() == [5]
    assert core.over.tolist() == [True]


def test_action_permutation_changes_the_effect_of_an_action():
    layout = ["....", ".0..", "...G", "...."]
    plain = _core(layout, use_key=False)
    swapped = _core(layout, perm=[0, 2, 1, 4, 3], use_key=False)
    _step(plain, UP)
    _step(swapped, UP)
    assert plain.pos[0, 0].tolist() == [0, 1]
    assert swapped.pos[0, 0].tolist() == [2, 1]
    _step(swapped, LEFT)
    assert swapped.pos[0, 0].tolist() == [2, 2]


def test_egocentric_observation_channels():
    layout = ["01K#", "...#", "H..G", "...."]
    core = _core(layout, num_agents=2)
    obs = core.observe()
    assert obs.shape == (1, 2, 3, 3, NUM_CHANNELS) and obs.dtype == np.float32
    cell = obs[0, 0, ..., :5].argmax(-1)  # agent_0 at the top-left corner
    assert cell.tolist() == [[WALL] * 3, [WALL, EMPTY, EMPTY], [WALL, EMPTY, EMPTY]]
    assert (obs[..., :5].sum(-1) == 1).all()
    assert obs[0, 0, ..., 5].tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]  # agent_1 to the right
    assert obs[0, 1, ..., 5].tolist() == [[0, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert obs[0, 1, 1, 2, KEY] == 1 and obs[..., 6].max() == 0
    core.step(np.array([[DOWN, RIGHT]]))  # agent_1 takes the key; cooperative: open for both
    obs = core.observe()
    assert (obs[0, :, ..., 6] == 1).all()
    core2 = _core(["....", ".0..", "H..G", "...."], use_key=False)
    assert core2.observe()[0, 0, 2, 0, HAZARD] == 1


# ---------------------------------------------------------------- batching


def test_batched_core_equals_each_level_alone():
    cfg = GridLevelsConfig(num_agents=2, mode="competitive", permute_actions=True, max_steps=12, step_cost=-0.01)
    seeds = list(range(6))
    batch = GridLevelsCore(cfg, generate_levels(cfg, seeds))
    alone = [GridLevelsCore(cfg, generate_level(cfg, s)) for s in seeds]
    rng = np.random.default_rng(0)
    for _ in range(40):
        actions = rng.integers(0, 5, size=(len(seeds), 2))
        out = batch.step(actions)
        for b, core in enumerate(alone):
            single = core.step(actions[b: b + 1])
            for x, y in zip(out, single, strict=True):
                np.testing.assert_array_equal(x[b: b + 1], y)
        over = batch.over.copy()
        obs = batch.reset(over)
        for b, core in enumerate(alone):
            if over[b]:
                assert core.over[0]
                core.reset()
            np.testing.assert_array_equal(obs[b: b + 1], core.observe())


def test_render_rgb():
    core = _core(COOP_LAYOUT, num_agents=2)
    img = render_rgb(core, 0, cell_px=8)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert len(np.unique(img.reshape(-1, 3), axis=0)) >= 5


# ---------------------------------------------------------------- bad parameters


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"num_agents": 0}, "num_agents"),
        ({"num_agents": 5}, "num_agents"),
        ({"view_size": 4}, "view_size"),
        ({"size": 3}, "size"),
        ({"mode": "team"}, "mode"),
        ({"wall_density": 0.9}, "wall_density"),
        ({"size": 4, "wall_density": 0.6, "num_hazards": 5, "num_agents": 4}, "num_agents"),
        ({"max_steps": 0}, "max_steps"),
    ],
)
def test_bad_parameters_raise_one_line_errors(kw, name):
    with pytest.raises(MetaRLInputError, match=f"parameter {name}=") as info:
        GridLevelsConfig(**kw)
    assert "\n" not in str(info.value)


def test_bad_layout_and_actions():
    cfg = GridLevelsConfig(size=4, view_size=3, num_hazards=0)
    with pytest.raises(MetaRLInputError, match="layout"):
        level_from_layout(cfg, ["0..", "...", "..G"])
    with pytest.raises(MetaRLInputError, match="K"):
        level_from_layout(cfg, ["0...", "....", "...G", "...."])
    core = _core(COOP_LAYOUT, num_agents=2)
    with pytest.raises(MetaRLInputError, match="actions"):
        core.step(np.array([[7, 0]]))
    with pytest.raises(MetaRLInputError, match="shape"):
        core.step(np.array([0, 0]))
    with pytest.raises(MetaRLInputError, match="level_seed"):
        generate_level(cfg, -1)
