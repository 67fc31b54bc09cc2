"""The scenario suite: every scenario file is a pytest case whose expectations are assertions.

Options (see conftest.py): ``--scenario-dir DIR`` runs a user's own scenarios; ``--tier smoke|full|all``.
Smoke-tier scenarios carry the ``scenario`` marker; full-tier ones are also ``slow``.
"""

from pathlib import Path

from metarl_apps.scenario import find_scenarios, load_scenario
from metarl_apps.scenario.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2] / "scenarios"


def test_every_scenario_file_loads():
    files = find_scenarios(ROOT)
    assert files, f"no scenario files under {ROOT}"
    for path in files:
        load_scenario(path)


def test_scenario_expectations_hold(scenario_path, tmp_path):
    result = run_scenario(load_scenario(scenario_path), tmp_path, progress=False, log=lambda _: None)
    failed = [e for e in result.results["expectations"] if not e["passed"]]
    assert not failed, f"{scenario_path.name}: failed expectations: {failed}"
    assert (tmp_path / "results.json").exists() and (tmp_path / "report.md").exists()
