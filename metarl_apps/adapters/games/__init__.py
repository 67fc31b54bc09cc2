"""PettingZoo games as meta-RL task distributions, and the built-in multi-level game ``games.gridlevels``."""
