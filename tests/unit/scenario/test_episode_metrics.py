"""Per-episode return and success rate in results.json for families whose budget unit is episodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from metarl_apps.scenario import load_scenario
from metarl_apps.scenario.runner import run_scenario


def _scenario(tmp_path, family: dict, agents: list[dict], budgets=(1, 2, 3), train: int = 0):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "episode-metrics", "tier": "smoke", "family": family,
        "tasks": {"train": train, "test": 24, "seed": 3}, "budgets": list(budgets), "agents": agents}))
    return load_scenario(path)


def test_gridlevels_episode_returns_and_success(tmp_path):
    scenario = _scenario(tmp_path, {"name": "games.gridlevels", "params": {"episodes": 3, "max_steps": 50}},
                         [{"name": "oracle", "baseline": "oracle"}, {"name": "random", "baseline": "random_legal"}])
    result = run_scenario(scenario, tmp_path / "out", progress=False, log=lambda _: None).results
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["episode_rows"] == result["episode_rows"] and result["success_threshold"] == 0.0
    cum = {(r["agent"], r["budget"]): r["mean"] for r in result["rows"]}
    ep = {(r["agent"], r["budget"]): r["mean"] for r in result["episode_rows"]}
    success = {(r["agent"], r["budget"]): r["mean"] for r in result["success_rows"]}
    for agent in ("oracle", "random"):
        # the episodes' returns add up to the cumulative reward
        assert ep[agent, 1] + ep[agent, 2] + ep[agent, 3] == pytest.approx(cum[agent, 3])
        assert ep[agent, 1] == pytest.approx(cum[agent, 1])
    # the oracle knows the map: it reaches the goal in every episode (reward +1, no step cost)
    assert all(success["oracle", k] == 1.0 and ep["oracle", k] == pytest.approx(1.0) for k in (1, 2, 3))
    assert 0.0 <= success["random", 1] < 1.0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Return of inner episode K alone" in report and "Success rate in inner episode K" in report


def test_no_episode_rows_for_pulls(tmp_path):
    scenario = _scenario(tmp_path, {"name": "bandits.bernoulli", "params": {"arms": 2, "pulls": 3}},
                         [{"name": "random", "baseline": "random"}])
    result = run_scenario(scenario, tmp_path / "out", progress=False, log=lambda _: None).results
    assert "episode_rows" not in result and "success_rows" not in result
    assert np.isfinite([r["mean"] for r in result["rows"]]).all()


def test_filmstrip_follows_the_agent_to_the_goal_in_every_episode(tmp_path):
    from metarl_apps.adapters.games.tasks import GridLevelTasks
    from metarl_apps.evaluation import filmstrip

    dist = GridLevelTasks(size=6, max_steps=20, num_hazards=0, use_key=False, episodes=3)
    task = dist.sample(1, split="test", seed=4)[0]
    assert filmstrip.supports_filmstrip(dist)
    paths, returns = filmstrip.episode_paths(dist.oracle_policy([task]), dist, task, 3)
    goal = tuple(int(x) for x in dist.levels([task]).goal[0])
    start = tuple(int(x) for x in dist.levels([task]).starts[0, 0])
    assert len(paths) == 3 and all(len(p) == dist.horizon + 1 for p in paths)
    # each episode starts at the start cell and ends on the goal (not at the next episode's start)
    assert all(p[0] == start and p[-1] == goal for p in paths)
    assert returns == [1.0, 1.0, 1.0]
    png = filmstrip.write_filmstrip(tmp_path / "f.png", dist.render_level(task), paths, returns, dist.cell_px, "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adaptation_diagnostics_of_offline_mql_reach_results_and_report(tmp_path):
    scenario = _scenario(tmp_path, {"name": "bandits.bernoulli", "params": {"arms": 3, "pulls": 10}}, [
        {"name": "mql_offline", "algorithm": "mql", "train": {"iterations": 2},
         "config": {"hidden_size": 8, "head_size": 8, "tasks_per_iteration": 8, "batch_size": 4,
                    "scoring": "offline", "logged_interactions": 5, "propensity_steps": 5, "adapt_steps": 5}},
        {"name": "random", "baseline": "random"}], budgets=(5, 10), train=16)
    result = run_scenario(scenario, tmp_path / "out", progress=False, log=lambda _: None).results
    (record,) = result["adaptation"]["mql_offline"]
    assert record["seed"] == 0 and record["tasks"] == 24
    assert 1.0 <= record["ess_min"] <= record["ess_mean"] <= record["ess_max"] <= record["meta_transitions"]
    assert 0.0 <= record["clipped_fraction"] <= 1.0 and "random" not in result["adaptation"]
    assert json.loads((tmp_path / "out" / "results.json").read_text())["adaptation"] == result["adaptation"]
    assert "Adaptation diagnostics of `mql_offline`" in (tmp_path / "out" / "report.md").read_text()
