from pathlib import Path

import pytest

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "scenarios"


def pytest_addoption(parser):
    group = parser.getgroup("metarl scenarios")
    group.addoption("--scenario-dir", action="append", default=[], metavar="DIR",
                    help="scenario directory to run (repeatable; default: the project's scenarios/)")
    group.addoption("--tier", choices=("smoke", "full", "all"), default="smoke",
                    help="which tier of scenarios to run (default smoke)")


def pytest_generate_tests(metafunc):
    if "scenario_path" not in metafunc.fixturenames:
        return
    from metarl_apps.scenario import find_scenarios, load_scenario

    roots = [Path(p) for p in metafunc.config.getoption("--scenario-dir")] or [DEFAULT_ROOT]
    tier = metafunc.config.getoption("--tier")
    params = []
    for root in roots:
        for path in find_scenarios(root):
            scenario = load_scenario(path)
            if tier != "all" and scenario.tier != tier:
                continue
            marks = [pytest.mark.scenario] + ([pytest.mark.slow] if scenario.tier == "full" else [])
            params.append(pytest.param(path, id=f"{root.name}/{path.relative_to(root)}", marks=marks))
    metafunc.parametrize("scenario_path", params)
