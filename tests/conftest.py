import contextlib
import io
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")

with contextlib.redirect_stderr(io.StringIO()):  # gym's import-time banner (via tf-agents)
    import tensorflow  # noqa: F401
    import tf_agents  # noqa: F401
