"""Contracts shared by everything: tasks, task distributions, agents, registries, errors."""

from metarl_apps.core.agent import AdaptedPolicy, Baseline, MetaLearner, TrainResult
from metarl_apps.core.env import (
    NEW_EPISODE,
    OBS,
    PREV_ACTION,
    PREV_REWARD,
    TrialEnvironment,
)
from metarl_apps.core.errors import (
    CheckpointError,
    ConformanceError,
    MetaRLError,
    MetaRLInputError,
    ScenarioError,
    SpecMismatchError,
    TrainingError,
    UnknownNameError,
)
from metarl_apps.core.registry import ALGORITHMS, BASELINES, TASK_FAMILIES, make_task_distribution
from metarl_apps.core.task import Task, TaskDistribution

__all__ = [
    "ALGORITHMS", "BASELINES", "TASK_FAMILIES", "AdaptedPolicy", "Baseline", "CheckpointError",
    "ConformanceError", "MetaLearner", "MetaRLError", "MetaRLInputError", "NEW_EPISODE", "OBS", "PREV_ACTION",
    "PREV_REWARD",    "ScenarioError", "SpecMismatchError", "Task", "TaskDistribution", "TrainResult", "TrainingError",
    "TrialEnvironment", "UnknownNameError", "make_task_distribution",
]
