"""MQL: meta-Q-learning with a recurrent context, per-task replay and propensity-weighted, proximal adaptation."""

from metarl_apps.algorithms.mql.config import MQLConfig
from metarl_apps.algorithms.mql.learner import MQL
from metarl_apps.algorithms.mql.policy import MQLPolicy

__all__ = ["MQL", "MQLConfig", "MQLPolicy"]
