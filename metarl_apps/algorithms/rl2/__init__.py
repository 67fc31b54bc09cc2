"""RL²: a recurrent policy whose memory, carried across the episodes of a trial, is the adaptation."""

from metarl_apps.algorithms.rl2.config import RL2Config
from metarl_apps.algorithms.rl2.learner import RL2
from metarl_apps.algorithms.rl2.policy import RL2Policy

__all__ = ["RL2", "RL2Config", "RL2Policy"]
