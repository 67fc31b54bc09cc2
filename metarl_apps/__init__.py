"""metarl_apps: meta-reinforcement learning for cold-start recommendation and new game levels."""

__version__ = "0.1.0"
