"""The scenario suite: every scenario file is a pytest case whose expectations are assertions.

Options (see plugin.py): ``--scenario-dir DIR`` runs a user's own scenarios; ``--tier smoke|full|all``;
``--scenario-out DIR`` where runs and the suite's ``index.md`` go. Smoke-tier scenarios carry the ``scenario``
marker; full-tier ones are also ``slow``.
"""

import os
import shutil
from pathlib import Path

from metarl_apps.scenario import find_scenarios, load_scenario
from metarl_apps.scenario.runner import describe_check, run_scenario

ROOT = Path(__file__).resolve().parents[2] / "scenarios"


def test_every_scenario_file_loads():
    files = find_scenarios(ROOT)
    assert files, f"no scenario files under {ROOT}"
    for path in files:
        load_scenario(path)


def test_scenario_expectations_hold(scenario_path, scenario_out, scenario_record):
    scenario = load_scenario(scenario_path)
    out = scenario_out / scenario.name
    shutil.rmtree(out, ignore_errors=True)  # a fresh run: the suite never resumes an older one
    result = run_scenario(scenario, out, progress=False, log=lambda _: None)
    shown = os.path.relpath(scenario_path)  # relative to where pytest runs, when the file lies below it
    scenario_record({"scenario": scenario.name, "file": str(scenario_path) if shown.startswith("..") else shown,
                     "dir": str(out),
                     "tier": scenario.tier, "results": result.results})
    failed = [e for e in result.results["expectations"] if not e["passed"]]
    assert not failed, f"{scenario_path.name}: {len(failed)} expectation(s) failed:\n" + "\n".join(
        "  " + describe_check(e) for e in failed)
    assert (out / "results.json").exists() and (out / "report.md").exists()
