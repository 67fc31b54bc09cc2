"""Test-only task families, baselines and an algorithm, registered per test, plus helpers writing YAML files.

The tests here do not depend on the real adapters/baselines: they register small fakes under ``test.*`` /
``test_*`` names and remove them afterwards.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from metarl_apps.core import registry
from metarl_apps.core.errors import MetaRLInputError


class CountingFamily:
    """A stand-in task family: all the loader needs is ``family``, ``episodes_per_trial`` and ``budget_unit``."""

    family = "test.counting"
    budget_unit = "episodes"

    def __init__(self, trials: int = 10):
        if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
            raise MetaRLInputError(f"test.counting: parameter trials={trials!r} must be a positive integer")
        self.trials = trials

    @property
    def episodes_per_trial(self) -> int:
        return self.trials

    def __repr__(self) -> str:
        return f"CountingFamily(trials={self.trials})"


class OracleFamily(CountingFamily):
    """A family with an oracle, so ``metric: regret`` is allowed."""

    family = "test.with_oracle"

    def oracle_policy(self, tasks):
        raise NotImplementedError


class ConstBaseline:
    """A baseline taking no config."""

    def __init__(self):
        pass


class ScaledBaseline:
    """A baseline with one validated config value ``c``."""

    def __init__(self, c: float = 1.0):
        if c <= 0:
            raise MetaRLInputError(f"ScaledBaseline: c={c!r} must be positive")
        self.c = c


class OtherFamilyBaseline:
    """A baseline that supports only a family the tests never use."""

    families = ("other.family",)

    def supports(self, dist) -> bool:
        return dist.family in self.families


class FakeLearner:
    """A meta-learner stand-in: built from its config dict (one field, ``hidden``)."""

    def __init__(self, config: dict | None = None):
        config = dict(config or {})
        unknown = sorted(set(config) - {"hidden"})
        if unknown:
            raise MetaRLInputError(f"FakeLearner: unknown config fields {unknown}")
        self.config = config


FAKES = [
    (registry.TASK_FAMILIES, "test.counting", CountingFamily),
    (registry.TASK_FAMILIES, "test.with_oracle", OracleFamily),
    (registry.BASELINES, "test_const", ConstBaseline),
    (registry.BASELINES, "test_scaled", ScaledBaseline),
    (registry.BASELINES, "test_other_family", OtherFamilyBaseline),
    (registry.ALGORITHMS, "test_learner", FakeLearner),
]


def unregister(reg: registry.Registry, name: str) -> None:
    reg.unregister(name)


@pytest.fixture(autouse=True)
def fake_registrations():
    for reg, name, target in FAKES:
        reg.register(name, target)
    yield
    for reg, name, _ in FAKES:
        unregister(reg, name)


VALID: dict[str, Any] = {
    "name": "counting-smoke",
    "description": "a valid scenario on test-only fakes",
    "tier": "smoke",
    "family": {"name": "test.counting", "params": {"trials": 10}},
    "tasks": {"train": 5, "test": 20, "seed": 3},
    "metric": "cumulative_reward",
    "budgets": [1, 2, 5, 10],
    "seeds": 2,
    "env_seed": 7,
    "agents": [
        {"name": "const", "baseline": "test_const"},
        {"name": "scaled_c2", "baseline": "test_scaled", "config": {"c": 2.0}},
        {"name": "learner", "algorithm": "test_learner", "config": {"hidden": 8}, "train": {"iterations": 3}},
    ],
    "expectations": ["scaled_c2@10 >= 1.1 * const@10", "learner@5 > -1"],
}


@pytest.fixture
def scenario_data() -> dict[str, Any]:
    """A fresh, valid scenario dict to modify."""
    return copy.deepcopy(VALID)


@pytest.fixture
def write_yaml(tmp_path):
    """``write_yaml(data, name="scenario.yaml") -> Path``: ``data`` dumped as YAML into ``tmp_path``."""

    def write(data: Any, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def write_text(tmp_path):
    """``write_text(text, name="scenario.yaml") -> Path``: raw text (for YAML syntax errors)."""

    def write(text: str, name: str = "scenario.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
