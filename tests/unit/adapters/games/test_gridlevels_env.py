"""games.gridlevels through PettingZoo's own API, seed and render tests, plus level selection and errors."""

import warnings

import numpy as np
import pytest
from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, render_test, seed_test

from metarl_apps.adapters.games import gridlevels
from metarl_apps.adapters.games.gridlevels_core import GridLevelsConfig, level_from_layout
from metarl_apps.core.errors import MetaRLInputError

CONFIGS = {
    "1-agent": {},
    "2-coop": {"num_agents": 2, "mode": "cooperative", "permute_actions": True},
    "2-competitive": {"num_agents": 2, "mode": "competitive", "use_key": False, "step_cost": -0.01},
    "4-competitive": {"num_agents": 4, "mode": "competitive", "max_steps": 20},
}


@pytest.fixture(autouse=True)
def _warnings_are_errors_except_pettingzoo_deprecations():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        yield


@pytest.mark.parametrize("kw", CONFIGS.values(), ids=CONFIGS.keys())
def test_pettingzoo_api_tests(kw):
    parallel_api_test(gridlevels.parallel_env(**kw), num_cycles=150)
    api_test(gridlevels.env(**kw), num_cycles=150)


@pytest.mark.parametrize("kw", CONFIGS.values(), ids=CONFIGS.keys())
def test_pettingzoo_seed_tests(kw):
    seed_test(lambda: gridlevels.env(**kw), num_cycles=60)
    parallel_seed_test(lambda: gridlevels.parallel_env(**kw), num_cycles=60)


def test_pettingzoo_render_test():
    render_test(lambda render_mode=None: gridlevels.env(render_mode=render_mode, num_agents=2))


def test_factories_and_metadata():
    par = gridlevels.parallel_env()
    assert isinstance(par, ParallelEnv) and isinstance(gridlevels.env(), AECEnv)
    assert isinstance(gridlevels.raw_env(), AECEnv)
    assert par.metadata == {"name": "gridlevels_v0", "render_modes": ["rgb_array"], "is_parallelizable": True}
    assert par.possible_agents == ["agent_0"]
    assert par.observation_space("agent_0").shape == (5, 5, 7)
    assert par.action_space("agent_0").n == 5


def test_rgb_array_render():
    par = gridlevels.parallel_env(num_agents=3, size=9, render_mode="rgb_array", cell_px=10)
    par.reset(seed=1)
    img = par.render()
    assert img.shape == (90, 90, 3) and img.dtype == np.uint8


def test_level_selection_by_seed_and_options():
    par = gridlevels.parallel_env(num_agents=2)
    par.reset(seed=5)
    first = par.level
    par.reset(seed=5)
    assert par.level.equals(first)
    par.reset(options={"level_seed": 11})
    a = par.level
    par.reset(seed=999, options={"level_seed": 11})
    assert par.level.equals(a) and par.level.seeds.tolist() == [11]
    fixed = gridlevels.parallel_env(num_agents=2, level_seed=11)
    fixed.reset(seed=0)
    assert fixed.level.equals(a)
    fixed.reset(seed=1)
    assert fixed.level.equals(a)


def test_hand_made_level_through_the_parallel_api():
    cfg = dict(size=4, view_size=3, num_agents=2, mode="competitive", use_key=False, num_hazards=0)
    level = level_from_layout(GridLevelsConfig(**cfg), ["0..#", "...#", "H..G", "1..."])
    par = gridlevels.parallel_env(**cfg)
    obs, infos = par.reset(options={"level": level})
    assert set(obs) == set(infos) == {"agent_0", "agent_1"}
    for _ in range(3):
        par.step({"agent_0": 0, "agent_1": 4})
    obs, rew, term, trunc, info = par.step({"agent_0": 0, "agent_1": 1})
    assert rew == {"agent_0": -1.0, "agent_1": 1.0}
    assert term == {"agent_0": True, "agent_1": True} and trunc == {"agent_0": False, "agent_1": False}
    assert par.agents == []


@pytest.mark.parametrize(
    "kw, name",
    [({"num_agents": 0}, "num_agents"), ({"num_agents": 5}, "num_agents"), ({"view_size": 4}, "view_size"),
     ({"size": 2}, "size"), ({"render_mode": "ansi"}, "render_mode"), ({"level_seed": -3}, "level_seed"),
     ({"nagents": 2}, "unknown parameter")],
)
def test_bad_parameters(kw, name):
    with pytest.raises(MetaRLInputError, match=name):
        gridlevels.parallel_env(**kw)


def test_bad_action():
    par = gridlevels.parallel_env()
    par.reset(seed=0)
    with pytest.raises(MetaRLInputError, match="action 9"):
        par.step({"agent_0": 9})
