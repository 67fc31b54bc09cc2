"""The scenario suite under pytest-xdist (``tox -e tests`` runs two workers): the workers' scenario records
reach the controller, which writes one index listing every scenario."""

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2]

SCENARIO = """name: {name}
description: two baselines on a few bandits
tier: smoke
family: {{name: bandits.bernoulli, params: {{arms: 2, pulls: 3}}}}
tasks: {{train: 0, test: 50, seed: 0}}
budgets: [1, 3]
agents:
  - {{name: random, baseline: random}}
  - {{name: oracle, baseline: oracle}}
expectations:
  - "oracle@3 >= random@3"
  - "{check}"
"""


@pytest.mark.skipif(sys.platform == "win32", reason="spawns two pytest worker processes")
def test_two_workers_write_one_index_with_every_scenario(tmp_path, pytester):
    scenarios, out = tmp_path / "scenarios", tmp_path / "runs"
    scenarios.mkdir()
    names = ["alpha", "beta", "gamma"]
    for name in names:
        check = "random@3 <= -1" if name == "gamma" else "random@3 >= 0"  # gamma fails on purpose
        (scenarios / f"{name}.yaml").write_text(SCENARIO.format(name=name, check=check))
    # as `tox -e tests` runs it: the whole tests/ tree (the controller itself collects nothing)
    result = pytester.runpytest_subprocess(str(TESTS), "-n", "2", "-p", "no:cacheprovider", "-m", "scenario",
                                           "-k", "expectations_hold", "--scenario-dir", str(scenarios),
                                           "--scenario-out", str(out))
    result.assert_outcomes(passed=2, failed=1)
    index = (out / "index.md").read_text()
    rows = [line for line in index.splitlines() if line.startswith(("| alpha", "| beta", "| gamma"))]
    assert [row.split(" ")[1] for row in rows] == names  # all three, in file order, whichever worker ran them
    assert "| gamma" in rows[2] and "| FAIL |" in rows[2] and "- gamma: `[FAIL] random@3 <= -1" in index
    assert all((out / name / "report.md").exists() for name in names)
