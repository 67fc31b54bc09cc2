"""Load and validate scenario files. Every problem is one ``ScenarioError`` line: ``FILE: FIELD: message``.

A scenario file is YAML, data only::

    name: bandits-k5-n10            # required, non-empty string
    description: "..."             # optional string
    tier: smoke                    # optional: smoke | full (default smoke)
    family:                        # required
      name: bandits.bernoulli      # required, a registered task family
      params: {arms: 5, pulls: 10} # optional keyword arguments of the family class
    tasks:                         # required
      train: 1000                  # int >= 0: meta-training population
      test: 20000                  # int >= 1: held-out tasks
      seed: 0                      # int >= 0 (default 0)
    metric: cumulative_reward      # optional: cumulative_reward (default) | regret
    budgets: [1, 2, 5, 10]         # required: positive ints, strictly increasing, <= the family's trial length
    seeds: 1                       # optional int >= 1: training seeds per learner (default 1)
    env_seed: 0                    # optional int >= 0 (default 0)
    agents:                        # required, non-empty
      - name: ucb1_c2              # identifier, unique in the scenario
        baseline: ucb1             # exactly one of baseline: (registry.BASELINES) / algorithm: (ALGORITHMS)
        config: {c: 2.0}           # optional keyword arguments of the baseline / algorithm
        train: {iterations: 500}   # optional, algorithm agents only
    expectations:                  # optional, see expectations.py for the grammar
      - "thompson@10 >= 1.1 * random@10"

Validation builds the family (so its own parameter checks run) and every agent (so a bad ``config``
fails here, not an hour into a run). Field paths in messages look like ``tasks.test``,
``agents[2].baseline``, ``budgets[1]``, ``expectations[0]``.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from metarl_apps.core import registry
from metarl_apps.core.errors import MetaRLInputError, ScenarioError
from metarl_apps.scenario.expectations import Expectation, ExpectationSyntaxError, Ref, parse_expectation, walk
from metarl_apps.scenario.schema import (
    AGENT_NAME,
    METRICS,
    TIERS,
    AgentSpec,
    FamilySpec,
    Scenario,
    TaskSplitSpec,
)

# Top-level fields: name -> what is expected (shown when a required one is missing). None = optional.
_TOP_LEVEL: dict[str, str | None] = {
    "name": "a non-empty string naming the scenario",
    "description": None,
    "tier": None,
    "family": "a mapping with name: (a registered task family) and params:",
    "tasks": "a mapping with train:, test: and seed:",
    "metric": None,
    "budgets": "a list of positive integers in increasing order, like [1, 2, 5, 10]",
    "seeds": None,
    "env_seed": None,
    "agents": "a list of agents, each with name: and baseline: or algorithm:",
    "expectations": None,
}
_FAMILY = {"name": "a registered task family name", "params": None}
_TASKS = {"train": "an integer >= 0 (meta-training tasks)", "test": "an integer >= 1 (held-out tasks)", "seed": None}
_AGENT = {"name": "an agent name like ucb1_c2", "baseline": None, "algorithm": None, "config": None, "train": None}


# ------------------------------------------------------------------------------------------------ public API
def find_scenarios(root: str | os.PathLike) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` file under the directory ``root`` (recursively), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise MetaRLInputError(f"{root}: expected a directory of scenario files, got no such directory")
    return sorted(p for p in root.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_scenario(path: str | os.PathLike) -> Scenario:
    """Read, parse and validate the scenario file at ``path``.

    Raises:
      ScenarioError: the first problem found, as one line ``FILE: FIELD: what was expected, got what``.
    """
    path = Path(path)
    return _Checker(path).scenario(_read_yaml(path))


# ---------------------------------------------------------------------------------------------- reading YAML
class _DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping that names the same key twice (plain ``yaml.safe_load`` silently keeps the last one)."""


class _StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no Python objects, data only) that also refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise _DuplicateKeyError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _read_yaml(path: Path) -> Any:
    where = str(path)
    if not path.exists():
        raise ScenarioError(where, "", "expected a scenario YAML file, got no such file; check the path")
    if path.is_dir():
        raise ScenarioError(where, "", "expected a scenario YAML file, got a directory")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError(where, "", f"expected UTF-8 text, got undecodable bytes at offset {err.start}") from err
    except OSError as err:
        raise ScenarioError(where, "", f"expected a readable file, got {_one_line(err.strerror or err)}") from err
    try:
        return yaml.load(text, Loader=_StrictSafeLoader)  # a SafeLoader subclass: data only
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where_in_file = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = _one_line(err.problem or err.context or "syntax error")
        context = ""
        if err.context and err.problem:
            opened = err.context_mark
            started = f" started at line {opened.line + 1}" if opened and mark and opened.line != mark.line else ""
            context = f" ({_one_line(err.context)}{started})"
        raise ScenarioError(where, "", f"invalid YAML at {where_in_file}: {problem}{context}") from err
    except yaml.YAMLError as err:
        raise ScenarioError(where, "", f"invalid YAML: {_one_line(err)}") from err


# ------------------------------------------------------------------------------------------------ validation
def _describe(value: Any) -> str:
    """A short, YAML-flavoured description of what the file holds, for "got ..." (one line)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, str):
        return f"{_one_line(value)[:60]!r} (a string)"
    if isinstance(value, int):
        return f"{value} (an integer)"
    if isinstance(value, float):
        return f"{value!r} (a number)"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, Mapping):
        return "a mapping"
    return f"a {type(value).__name__}"


def _field(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


class _Checker:
    """Validates one scenario file's data top to bottom, raising the first problem as a ``ScenarioError``."""

    def __init__(self, path: Path):
        self.path = path
        self.file = str(path)

    def fail(self, field: str, message: str) -> ScenarioError:
        return ScenarioError(self.file, field, message)

    # ----------------------------------------------------------------------- generic checks
    def mapping(self, value: Any, field: str, fields: dict[str, str | None], what: str) -> dict:
        """``value`` as a dict with only ``fields`` keys and every required one (those with a description)."""
        if not isinstance(value, Mapping):
            raise self.fail(field, f"expected {what}, got {_describe(value)}")
        for key in value:
            if key not in fields:
                close = difflib.get_close_matches(str(key), list(fields), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise self.fail(_field(field, str(key)),
                                f"unknown field; {hint}expected one of: {', '.join(fields)}")
        for key, expected in fields.items():
            if expected is not None and key not in value:
                raise self.fail(_field(field, key), f"required field is missing; expected {expected}")
        return dict(value)

    def kwargs(self, value: Any, field: str) -> dict[str, Any]:
        """A mapping of keyword arguments (string keys)."""
        if not isinstance(value, Mapping):
            raise self.fail(field, f"expected a mapping of keyword arguments like {{key: value}}, got "
                                   f"{_describe(value)}")
        for key in value:
            if not isinstance(key, str) or not key.isidentifier():
                raise self.fail(field, f"expected keyword argument names (identifiers), got key {key!r}")
        return dict(value)

    def integer(self, value: Any, field: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise self.fail(field, f"expected {what}, got {_describe(value)}")
        return value

    def string(self, value: Any, field: str, what: str = "a string") -> str:
        if not isinstance(value, str):
            raise self.fail(field, f"expected {what}, got {_describe(value)}")
        return value

    def choice(self, value: Any, field: str, choices: tuple[str, ...]) -> str:
        if not isinstance(value, str) or value not in choices:
            raise self.fail(field, f"expected one of {', '.join(choices)}, got {_describe(value)}")
        return value

    # --------------------------------------------------------------------------- the file
    def scenario(self, data: Any) -> Scenario:
        if data is None:
            raise self.fail("", "expected a mapping of scenario fields (name, family, tasks, budgets, agents, "
                                "...), got an empty file")
        top = self.mapping(data, "", _TOP_LEVEL,
                           "a mapping of scenario fields (name, family, tasks, budgets, agents, ...)")
        name = self.string(top["name"], "name", "a non-empty string")
        if not name.strip():
            raise self.fail("name", "expected a non-empty string, got an empty one")
        description = self.string(top.get("description", ""), "description")
        tier = self.choice(top.get("tier", "smoke"), "tier", TIERS)
        family, dist = self.family(top["family"])
        tasks = self.tasks(top["tasks"])
        metric = self.metric(top.get("metric", "cumulative_reward"), dist)
        budgets = self.budgets(top["budgets"], dist)
        seeds = self.integer(top.get("seeds", 1), "seeds", 1)
        env_seed = self.integer(top.get("env_seed", 0), "env_seed", 0)
        agents = self.agents(top["agents"], dist)
        self.learners_have_training_tasks(agents, tasks)
        expectations = self.expectations(top.get("expectations", []), agents, budgets)
        return Scenario(
            name=name, description=description, tier=tier, path=self.path, family=family, tasks=tasks,
            metric=metric, budgets=budgets, seeds=seeds, env_seed=env_seed, agents=agents,
            expectations=expectations,
        )

    def family(self, value: Any) -> tuple[FamilySpec, Any]:
        spec = self.mapping(value, "family", _FAMILY, "a mapping with name: and params:")
        name = self.string(spec["name"], "family.name", "a registered task family name")
        params = self.kwargs(spec.get("params", {}), "family.params")
        try:
            registry.TASK_FAMILIES.get(name)  # unknown name: the message lists the valid ones
        except MetaRLInputError as err:
            raise self.fail("family.name", str(err)) from err
        try:
            dist = registry.make_task_distribution(name, **params)
        except ValueError as err:  # MetaRLInputError included; a family's own checks of its parameters
            raise self.fail("family.params", _one_line(err)) from err
        return FamilySpec(name, params), dist

    def tasks(self, value: Any) -> TaskSplitSpec:
        spec = self.mapping(value, "tasks", _TASKS, "a mapping with train:, test: and seed:")
        return TaskSplitSpec(
            train=self.integer(spec["train"], "tasks.train", 0),
            test=self.integer(spec["test"], "tasks.test", 1),
            seed=self.integer(spec.get("seed", 0), "tasks.seed", 0),
        )

    def metric(self, value: Any, dist: Any) -> str:
        metric = self.choice(value, "metric", METRICS)
        if metric == "regret" and not callable(getattr(dist, "oracle_policy", None)):
            raise self.fail("metric", f"expected cumulative_reward for task family {dist.family!r} (regret needs "
                                      f"a family with an oracle_policy), got regret")
        return metric

    def budgets(self, value: Any, dist: Any) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("budgets", f"expected a non-empty list of positive integers like [1, 2, 5, 10], "
                                       f"got {_describe(value)}")
        limit = dist.episodes_per_trial
        unit = getattr(dist, "budget_unit", "episodes")
        budgets: list[int] = []
        for i, item in enumerate(value):
            field = _field("budgets", i)
            budget = self.integer(item, field, 1)
            if budgets and budget <= budgets[-1]:
                raise self.fail(field, f"expected budgets in strictly increasing order (more than "
                                       f"{budgets[-1]}), got {budget}")
            if budget > limit:
                raise self.fail(field, f"expected a budget within the trial length of {dist!r} (at most {limit} "
                                       f"{unit}), got {budget}; lower it or lengthen the trial in family.params")
            budgets.append(budget)
        return tuple(budgets)

    def agents(self, value: Any, dist: Any) -> tuple[AgentSpec, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail("agents", f"expected a non-empty list of agents (each a mapping with name: and "
                                      f"baseline: or algorithm:), got {_describe(value)}")
        first_index: dict[str, int] = {}
        agents = []
        for i, item in enumerate(value):
            spec = self.agent(item, _field("agents", i), dist)
            if spec.name in first_index:
                raise self.fail(_field(_field("agents", i), "name"),
                                f"expected a unique agent name, got {spec.name!r} again (first at "
                                f"agents[{first_index[spec.name]}])")
            first_index[spec.name] = i
            agents.append(spec)
        return tuple(agents)

    def agent(self, value: Any, field: str, dist: Any) -> AgentSpec:
        spec = self.mapping(value, field, _AGENT, "a mapping with name: and baseline: or algorithm:")
        name = self.string(spec["name"], _field(field, "name"), "an identifier like ucb1_c2")
        if not AGENT_NAME.match(name):
            raise self.fail(_field(field, "name"), f"expected an identifier (letters, digits, _; not starting "
                                                   f"with a digit) like ucb1_c2, got {name!r}")
        kinds = [k for k in ("baseline", "algorithm") if k in spec]
        if len(kinds) != 1:
            got = "both" if kinds else "neither"
            raise self.fail(field, f"expected exactly one of baseline: or algorithm: for agent {name!r}, got {got}")
        kind = kinds[0]
        target = self.string(spec[kind], _field(field, kind), f"a registered {kind} name")
        config = self.kwargs(spec.get("config", {}), _field(field, "config"))
        if kind == "baseline":
            if "train" in spec:
                raise self.fail(_field(field, "train"), "expected no train: for a baseline agent (only "
                                                        "algorithm: agents are meta-trained), got one")
            self.check_baseline(target, config, field, dist)
            return AgentSpec(name, "baseline", target, config, {})
        self.check_algorithm(target, config, field)
        train = self.kwargs(spec.get("train", {}), _field(field, "train"))
        if "iterations" in train:
            self.integer(train["iterations"], _field(_field(field, "train"), "iterations"), 1)
        return AgentSpec(name, "algorithm", target, config, train)

    def check_baseline(self, target: str, config: dict[str, Any], field: str, dist: Any) -> None:
        """Build the baseline with its config (so its own checks run) and check it supports the family."""
        try:
            factory = registry.BASELINES.get(target)  # unknown name: the message lists the valid ones
        except MetaRLInputError as err:
            raise self.fail(_field(field, "baseline"), str(err)) from err
        try:
            baseline = factory(**config)
        except (ValueError, TypeError) as err:  # MetaRLInputError included
            raise self.fail(_field(field, "config"), f"baseline {target!r} rejects this config: "
                                                     f"{_one_line(err)}") from err
        supports = getattr(baseline, "supports", None)
        if callable(supports) and not supports(dist):
            families = ", ".join(getattr(baseline, "families", ()) or ())
            also = f" (it supports: {families})" if families else ""
            raise self.fail(_field(field, "baseline"), f"expected a baseline that supports task family "
                                                       f"{dist.family!r}, got {target!r}{also}")

    def check_algorithm(self, target: str, config: dict[str, Any], field: str) -> None:
        """Build the learner from its config (as the runner will; cheap: networks are built at training)."""
        try:
            factory = registry.ALGORITHMS.get(target)  # unknown name: the message lists the valid ones
        except MetaRLInputError as err:
            raise self.fail(_field(field, "algorithm"), str(err)) from err
        try:
            factory(dict(config))
        except (ValueError, TypeError) as err:  # MetaRLInputError included
            raise self.fail(_field(field, "config"), f"algorithm {target!r} rejects this config: "
                                                     f"{_one_line(err)}") from err

    def learners_have_training_tasks(self, agents: tuple[AgentSpec, ...], tasks: TaskSplitSpec) -> None:
        learner = next((a for a in agents if a.kind == "algorithm"), None)
        if learner is not None and tasks.train == 0:
            raise self.fail("tasks.train", f"expected at least 1 training task for the meta-learner "
                                           f"{learner.name!r} (algorithm: {learner.target}), got 0")

    def expectations(self, value: Any, agents: tuple[AgentSpec, ...],
                     budgets: tuple[int, ...]) -> tuple[Expectation, ...]:
        if not isinstance(value, list):
            raise self.fail("expectations", f"expected a list of strings like \"a@10 >= b@10\", got "
                                            f"{_describe(value)}")
        names = [a.name for a in agents]
        parsed = []
        for i, item in enumerate(value):
            field = _field("expectations", i)
            text = self.string(item, field, "a string like \"a@10 >= 1.1 * b@10\" (quote it in YAML)")
            try:
                expectation = parse_expectation(text)
            except ExpectationSyntaxError as err:
                raise self.fail(field, str(err)) from err
            for ref in (n for n in walk(expectation.comparison) if isinstance(n, Ref)):
                if ref.agent not in names:
                    raise self.fail(field, f"{expectation.text!r} refers to {ref}: expected an agent of this "
                                           f"scenario ({', '.join(names)}), got {ref.agent!r}")
                if ref.budget not in budgets:
                    raise self.fail(field, f"{expectation.text!r} refers to {ref}: expected a budget listed in "
                                           f"budgets {list(budgets)}, got {ref.budget}")
            parsed.append(expectation)
        return tuple(parsed)
