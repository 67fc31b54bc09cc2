import contextlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

with contextlib.redirect_stderr(io.StringIO()):  # gym's import-time banner (via tf-agents)
    import tensorflow  # noqa: F401
    import tf_agents  # noqa: F401

pytest_plugins = ["pytester"]  # tests that run pytest itself (the scenario suite under xdist)


def pytest_collection_modifyitems(config, items):
    """Scenario runs (the longest tests, minutes each) first, the rest in their usual order: with two xdist
    workers (``tox -e tests``) a long scenario then never starts last while the other worker sits idle."""
    items.sort(key=lambda item: item.get_closest_marker("scenario") is None)
