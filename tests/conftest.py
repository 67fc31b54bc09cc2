import contextlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):  # one TF thread per xdist worker: `-n 2` on 2 cores ran in 10.1 min
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")  # instead of 12.3 with TF's default threads in each
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

with contextlib.redirect_stderr(io.StringIO()):  # gym's import-time banner (via tf-agents)
    import tensorflow  # noqa: F401
    import tf_agents  # noqa: F401

# pytester: tests that run pytest itself. The scenario suite's options, parametrisation and index report live
# in a plugin, not in tests/scenarios/conftest.py: a subdirectory's conftest is loaded only when pytest collects
# there, which the xdist controller never does (it would not write the index under `pytest tests -n 2`).
pytest_plugins = ["pytester", "tests.scenarios.plugin"]


def pytest_collection_modifyitems(config, items):
    """Scenario runs (the longest tests, minutes each) first, the rest in their usual order: with two xdist
    workers (``tox -e tests``) a long scenario then never starts last while the other worker sits idle."""
    items.sort(key=lambda item: item.get_closest_marker("scenario") is None)
