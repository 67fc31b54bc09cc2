"""Options of the scenario suite and its index report (a pytest plugin, registered by ``tests/conftest.py``
so that it is loaded whichever test path pytest is given, and in the xdist controller too).

``--scenario-dir DIR`` (repeatable) runs a user's own scenario directory, ``--tier smoke|full|all`` picks the
tier, ``--scenario-out DIR`` (default ``out/scenarios``) is where each scenario's run directory
(results.json, report.md, plots) and the suite's ``index.md`` are written.

Under pytest-xdist (``tox -e tests`` runs two workers) each worker runs some of the scenarios: the workers hand
their records to the controller (``workeroutput``), which writes the one ``index.md``.
"""

import json
from pathlib import Path

import pytest

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "scenarios"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "out" / "scenarios"
RECORDS = pytest.StashKey[list]()
WORKER_KEY = "metarl_scenario_records"


def pytest_addoption(parser):
    group = parser.getgroup("metarl scenarios")
    group.addoption("--scenario-dir", action="append", default=[], metavar="DIR",
                    help="scenario directory to run (repeatable; default: the project's scenarios/)")
    group.addoption("--tier", choices=("smoke", "full", "all"), default="smoke",
                    help="which tier of scenarios to run (default smoke)")
    group.addoption("--scenario-out", default=str(DEFAULT_OUT), metavar="DIR",
                    help="where each scenario's run and the suite's index.md are written (default out/scenarios)")


def pytest_configure(config):
    config.stash[RECORDS] = []


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


@pytest.fixture
def scenario_record(request):
    """``record(dict)``: add a scenario's outcome to the suite's index report."""
    return request.config.stash[RECORDS].append


@pytest.fixture
def scenario_out(request) -> Path:
    return Path(request.config.getoption("--scenario-out"))


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """xdist controller: collect a finished worker's scenario records."""
    sent = getattr(node, "workeroutput", {}).get(WORKER_KEY)
    if sent:
        node.config.stash[RECORDS].extend(json.loads(sent))


def pytest_sessionfinish(session):
    config = session.config
    records = config.stash.get(RECORDS, [])
    if hasattr(config, "workeroutput"):  # an xdist worker: the controller writes the index
        if records:
            config.workeroutput[WORKER_KEY] = json.dumps(records, default=float)
        return
    if records:
        from metarl_apps.scenario.suite import write_index

        records = sorted(records, key=lambda r: r["file"])  # workers finish in any order
        write_index(records, Path(config.getoption("--scenario-out")) / "index.md")
