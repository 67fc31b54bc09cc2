"""Scenario files: schema, loader (one-line errors) and the expectation grammar. The runner is ``.runner``."""

from metarl_apps.scenario.expectations import (
    Expectation,
    ExpectationResult,
    ExpectationSyntaxError,
    parse_expectation,
)
from metarl_apps.scenario.loader import find_scenarios, load_scenario
from metarl_apps.scenario.schema import AgentSpec, FamilySpec, Scenario, TaskSplitSpec

__all__ = [
    "AgentSpec", "Expectation", "ExpectationResult", "ExpectationSyntaxError", "FamilySpec", "Scenario",
    "TaskSplitSpec", "find_scenarios", "load_scenario", "parse_expectation",
]
