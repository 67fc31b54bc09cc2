"""Per-episode return and success rate in results.json for families whose budget unit is episodes."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from metarl_apps.scenario import load_scenario
from metarl_apps.scenario.runner import run_scenario


def _scenario(tmp_path, family: dict, agents: list[dict], budgets=(1, 2, 3)):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "episode-metrics", "tier": "smoke", "family": family,
        "tasks": {"train": 0, "test": 24, "seed": 3}, "budgets": list(budgets), "agents": agents}))
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
