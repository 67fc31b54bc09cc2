"""The bandit exploration profile (``metarl explore``): statistics by hand, and on baselines whose exploration is
known exactly."""

import json

import numpy as np
import pytest

from metarl_apps.cli import main
from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.evaluation.exploration import bandit_exploration
from tests.unit.test_cli import _scenario


def test_statistics_by_hand():
    means = np.array([[0.2, 0.8, 0.5], [0.9, 0.1, 0.3]])
    actions = np.array([[0, 0, 2, 2, 2, 2, 2, 2],   # never pulls its best arm (1)
                        [1, 0, 0, 0, 0, 0, 0, 0]])  # finds its best arm (0) at the second pull and keeps it
    s = bandit_exploration(actions, means)
    assert s["total"] == pytest.approx((3.4 + 6.4) / 2)
    assert s["by_quarter"] == pytest.approx([0.7, 1.4, 1.4, 1.4])
    assert s["first_try"] == pytest.approx([2.5, 9.0])  # 2nd arm at pulls 3 and 2; 3rd arm never (T + 1 = 9)
    assert s["arms_tried"] == pytest.approx(2.0)
    assert s["regret"] == pytest.approx((3.0 + 0.8) / 2)
    assert s["never_pulled_best"] == pytest.approx(0.5) and s["ends_on_other"] == 0.0
    assert [row["n"] for row in s["by_gap"]] == [0, 0, 0, 2]  # gaps 0.3 and 0.6
    assert s["by_gap"][0]["regret"] is None and s["by_gap"][3]["regret"] == pytest.approx(s["regret"])


def test_ends_on_other_counts_a_best_arm_tried_then_left():
    means = np.array([[0.6, 0.4], [0.6, 0.4]])
    s = bandit_exploration(np.array([[0, 1, 1, 1], [1, 1, 0, 0]]), means)
    assert s["ends_on_other"] == pytest.approx(0.5) and s["never_pulled_best"] == 0.0
    assert s["by_gap"][2]["n"] == 0 and s["by_gap"][3]["n"] == 2  # gap 0.2


def test_bad_arrays_are_a_clear_error():
    with pytest.raises(MetaRLInputError, match=r"actions \(2, 3\) and means \(3, 2\) must be"):
        bandit_exploration(np.zeros((2, 3), int), np.zeros((3, 2)))
    with pytest.raises(MetaRLInputError, match=r"arm indices in \[0, 2\)"):
        bandit_exploration(np.full((1, 3), 2), np.zeros((1, 2)))


def test_explore_baselines_whose_exploration_is_known(tmp_path, capsys):
    path = _scenario(tmp_path, expectations=["greedy@12 >= 0"], family={"name": "bandits.bernoulli",
                     "params": {"arms": 3, "pulls": 12}}, budgets=[1, 12], agents=[
                         {"name": "oracle", "baseline": "oracle"}, {"name": "greedy", "baseline": "greedy"}])
    out = tmp_path / "o"
    assert main(["explore", str(path), "-o", str(out), "--tasks", "200"]) == 0
    record = json.loads((out / "exploration.json").read_text())
    assert record["tasks"] == 200 and record["pulls"] == 12
    oracle, greedy = record["agents"]["oracle"], record["agents"]["greedy"]
    # the oracle pulls the best arm only: no regret, one arm, the others never tried
    assert oracle["regret"] == pytest.approx(0.0, abs=1e-12) and oracle["arms_tried"] == 1.0
    assert oracle["first_try"] == [13.0, 13.0] and oracle["never_pulled_best"] == 0.0
    # greedy tries untried arms first: the 2nd and 3rd arm at pulls 2 and 3 in every bandit
    assert greedy["first_try"] == [2.0, 3.0] and greedy["arms_tried"] == 3.0 and greedy["regret"] > 0
    assert "greedy: total" in capsys.readouterr().out


def test_explore_refuses_other_families_in_one_line(tmp_path, capsys):
    path = _scenario(tmp_path, expectations=["random@3 >= 0"], family={"name": "mdp.tabular", "params": {}},
                     agents=[{"name": "random", "baseline": "random"}])
    assert main(["explore", str(path), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "the exploration profile is for 'bandits.bernoulli'" in err
