"""Loading scenario files: what a valid file gives, and one clear line for every kind of mistake.

Every error is ``ScenarioError`` whose message is ``FILE: FIELD: what was expected, got what``; the tests match
the whole message structure, not just a fragment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from metarl_apps.core import registry
from metarl_apps.core.errors import MetaRLInputError, ScenarioError, UnknownNameError
from metarl_apps.scenario import (
    AgentSpec,
    Expectation,
    FamilySpec,
    Scenario,
    TaskSplitSpec,
    find_scenarios,
    load_scenario,
)

from .conftest import CountingFamily


def assert_error(path: Path, field: str, pattern: str) -> ScenarioError:
    """Loading ``path`` raises one line ``FILE: FIELD: <pattern>``."""
    prefix = re.escape(f"{path}: {field}: " if field else f"{path}: ")
    with pytest.raises(ScenarioError, match=f"^{prefix}{pattern}") as info:
        load_scenario(path)
    err = info.value
    assert (err.path, err.field) == (str(path), field)
    assert isinstance(err, MetaRLInputError)
    assert "\n" not in str(err)
    return err


# ------------------------------------------------------------------------------------------------ valid files
def test_valid_scenario_loads_into_frozen_dataclasses(scenario_data, write_yaml):
    path = write_yaml(scenario_data)
    s = load_scenario(path)
    assert isinstance(s, Scenario)
    assert (s.name, s.description, s.tier, s.path) == ("counting-smoke", "a valid scenario on test-only fakes",
                                                      "smoke", path)
    assert s.family == FamilySpec("test.counting", {"trials": 10})
    assert s.tasks == TaskSplitSpec(train=5, test=20, seed=3)
    assert (s.metric, s.budgets, s.seeds, s.env_seed) == ("cumulative_reward", (1, 2, 5, 10), 2, 7)
    assert s.agents == (
        AgentSpec("const", "baseline", "test_const", {}, {}),
        AgentSpec("scaled_c2", "baseline", "test_scaled", {"c": 2.0}, {}),
        AgentSpec("learner", "algorithm", "test_learner", {"hidden": 8}, {"iterations": 3}),
    )
    assert all(isinstance(e, Expectation) for e in s.expectations)
    assert [e.text for e in s.expectations] == ["scaled_c2@10 >= 1.1 * const@10", "learner@5 > -1"]
    assert s.expectations[0].refs == {("scaled_c2", 10), ("const", 10)}
    with pytest.raises(AttributeError):
        s.name = "other"  # type: ignore[misc]


def test_make_distribution_builds_the_family(scenario_data, write_yaml):
    dist = load_scenario(write_yaml(scenario_data)).make_distribution()
    assert isinstance(dist, CountingFamily) and dist.episodes_per_trial == 10


def test_optional_fields_take_their_defaults(write_yaml):
    path = write_yaml({
        "name": "minimal",
        "family": {"name": "test.counting"},
        "tasks": {"train": 0, "test": 1},
        "budgets": [3],
        "agents": [{"name": "c", "baseline": "test_const"}],
    })
    s = load_scenario(str(path))  # a str path works too
    assert (s.description, s.tier, s.metric, s.seeds, s.env_seed) == ("", "smoke", "cumulative_reward", 1, 0)
    assert s.family.params == {} and s.tasks.seed == 0 and s.expectations == ()
    assert s.agents[0].config == {} and s.agents[0].train == {}


def test_regret_is_allowed_for_a_family_with_an_oracle(scenario_data, write_yaml):
    scenario_data["family"] = {"name": "test.with_oracle"}
    scenario_data["metric"] = "regret"
    scenario_data["tier"] = "full"
    s = load_scenario(write_yaml(scenario_data))
    assert (s.metric, s.tier) == ("regret", "full")


def test_agent_lookup_by_name(scenario_data, write_yaml):
    s = load_scenario(write_yaml(scenario_data))
    assert s.agent("scaled_c2").config == {"c": 2.0}
    with pytest.raises(UnknownNameError, match="no agent 'nope'; agents: const, scaled_c2, learner"):
        s.agent("nope")


def test_yaml_anchors_and_merge_keys_are_data(write_text):
    path = write_text(
        "name: merged\n"
        "family: {name: test.counting}\n"
        "tasks: {train: 0, test: 1}\n"
        "budgets: [1]\n"
        "agents:\n"
        "  - &base {name: a, baseline: test_scaled, config: {c: 3.0}}\n"
        "  - {<<: *base, name: b}\n"
    )
    s = load_scenario(path)
    assert [(a.name, a.config) for a in s.agents] == [("a", {"c": 3.0}), ("b", {"c": 3.0})]


# ------------------------------------------------------------------------------------------- reading the file
def test_file_missing(tmp_path):
    assert_error(tmp_path / "nope.yaml", "", "expected a scenario YAML file, got no such file; check the path$")


def test_directory_instead_of_file(tmp_path):
    assert_error(tmp_path, "", "expected a scenario YAML file, got a directory$")


def test_bad_yaml_names_the_line(write_text):
    path = write_text("name: x\nfamily: {name: test.counting\ntasks: {train: 0, test: 1}\n")
    assert_error(path, "", r"invalid YAML at line 3, column 6: expected ',' or '}', but got ':' "
                           r"\(while parsing a flow mapping started at line 2\)$")


def test_bad_yaml_indentation(write_text):
    path = write_text("name: x\ntasks:\n  train: 0\n   test: 1\n")
    assert_error(path, "", "invalid YAML at line 4, column 8: mapping values are not allowed here$")


def test_duplicate_key(write_text):
    path = write_text("name: x\nbudgets: [1]\nbudgets: [2]\n")
    assert_error(path, "", "invalid YAML at line 3, column 1: duplicate key 'budgets'$")


def test_python_tags_are_refused(write_text):
    path = write_text("name: !!python/object/apply:os.system ['true']\n")
    assert_error(path, "", "invalid YAML at line 1, column 7: could not determine a constructor for the tag "
                           "'tag:yaml.org,2002:python/object/apply:os.system'")


def test_not_utf8(write_text, tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert_error(path, "", "expected UTF-8 text, got undecodable bytes at offset 9$")


@pytest.mark.parametrize("text, got", [("- a\n- b\n", "a list of 2"), ("just text\n", "'just text' \\(a string\\)"),
                                       ("", "an empty file"), ("# only a comment\n", "an empty file")])
def test_top_level_not_a_mapping(write_text, text, got):
    assert_error(write_text(text), "", rf"expected a mapping of scenario fields \(name, family, tasks, budgets, "
                                       rf"agents, \.\.\.\), got {got}$")


# ------------------------------------------------------------------------------------------ structure and types
def _delete(*keys):
    def mutate(d):
        target = d
        for k in keys[:-1]:
            target = target[k]
        del target[keys[-1]]
    return mutate


def _set(value, *keys):
    def mutate(d):
        target = d
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return mutate


CASES = [
    # missing required fields
    ("missing name", _delete("name"), "name", "required field is missing; expected a non-empty string"),
    ("missing family", _delete("family"), "family", "required field is missing; expected a mapping with name:"),
    ("missing tasks", _delete("tasks"), "tasks", "required field is missing; expected a mapping with train:"),
    ("missing budgets", _delete("budgets"), "budgets", "required field is missing; expected a list of positive"),
    ("missing agents", _delete("agents"), "agents", "required field is missing; expected a list of agents"),
    ("missing family.name", _delete("family", "name"), "family.name",
     "required field is missing; expected a registered task family name$"),
    ("missing tasks.test", _delete("tasks", "test"), "tasks.test",
     r"required field is missing; expected an integer >= 1 \(held-out tasks\)$"),
    ("missing agent name", _delete("agents", 1, "name"), "agents[1].name", "required field is missing"),
    # unknown fields
    ("unknown top-level", _set({"train": 1, "test": 1}, "tsks"), "tsks",
     "unknown field; did you mean 'tasks'\\? expected one of: name, description, tier, family, tasks, metric, "
     "budgets, seeds, env_seed, agents, expectations$"),
    ("unknown no hint", _set(1, "zzz"), "zzz", "unknown field; expected one of: name, "),
    ("unknown in tasks", _set(1, "tasks", "validation"), "tasks.validation", "unknown field; expected one of: "
     "train, test, seed$"),
    ("unknown in family", _set({}, "family", "param"), "family.param", "unknown field; did you mean 'params'\\?"),
    ("unknown in agent", _set({}, "agents", 0, "confg"), "agents[0].confg",
     "unknown field; did you mean 'config'\\? expected one of: name, baseline, algorithm, config, train$"),
    # wrong types
    ("name not a string", _set(3, "name"), "name", r"expected a non-empty string, got 3 \(an integer\)$"),
    ("empty name", _set("  ", "name"), "name", "expected a non-empty string, got an empty one$"),
    ("description list", _set(["a"], "description"), "description", "expected a string, got a list of 1$"),
    ("bad tier", _set("medium", "tier"), "tier", r"expected one of smoke, full, got 'medium' \(a string\)$"),
    ("bad metric", _set("reward", "metric"), "metric",
     r"expected one of cumulative_reward, regret, got 'reward' \(a string\)$"),
    ("family a string", _set("test.counting", "family"), "family",
     r"expected a mapping with name: and params:, got 'test.counting' \(a string\)$"),
    ("family name a number", _set(5, "family", "name"), "family.name",
     r"expected a registered task family name, got 5 \(an integer\)$"),
    ("params a list", _set([10], "family", "params"), "family.params",
     "expected a mapping of keyword arguments like {key: value}, got a list of 1$"),
    ("tasks a list", _set([1, 2], "tasks"), "tasks", "expected a mapping with train:, test: and seed:, got a list"),
    ("tasks.test a string", _set("many", "tasks", "test"), "tasks.test",
     r"expected a positive integer, got 'many' \(a string\)$"),
    ("tasks.test zero", _set(0, "tasks", "test"), "tasks.test", r"expected a positive integer, got 0 \(an integer\)$"),
    ("tasks.train bool", _set(True, "tasks", "train"), "tasks.train",
     r"expected an integer >= 0, got true \(a boolean\)$"),
    ("tasks.train negative", _set(-1, "tasks", "train"), "tasks.train", "expected an integer >= 0, got -1"),
    ("tasks.seed float", _set(1.0, "tasks", "seed"), "tasks.seed", r"expected an integer >= 0, got 1.0 \(a number\)$"),
    ("tasks.test null", _set(None, "tasks", "test"), "tasks.test",
     r"expected a positive integer, got nothing \(null\)$"),
    ("seeds zero", _set(0, "seeds"), "seeds", "expected a positive integer, got 0"),
    ("seeds float", _set(1.5, "seeds"), "seeds", "expected a positive integer, got 1.5"),
    ("env_seed negative", _set(-3, "env_seed"), "env_seed", "expected an integer >= 0, got -3"),
    # budgets
    ("budgets not a list", _set(5, "budgets"), "budgets",
     r"expected a non-empty list of positive integers like \[1, 2, 5, 10\], got 5 \(an integer\)$"),
    ("budgets empty", _set([], "budgets"), "budgets", "expected a non-empty list of positive integers"),
    ("negative budget", _set([1, -2, 5], "budgets"), "budgets[1]",
     r"expected a positive integer, got -2 \(an integer\)$"),
    ("zero budget", _set([0, 1], "budgets"), "budgets[0]", "expected a positive integer, got 0"),
    ("budget a string", _set([1, "2"], "budgets"), "budgets[1]", r"expected a positive integer, got '2' \(a string\)$"),
    ("budget bool", _set([True], "budgets"), "budgets[0]", "expected a positive integer, got true"),
    ("budgets decreasing", _set([1, 5, 2], "budgets"), "budgets[2]",
     r"expected budgets in strictly increasing order \(more than 5\), got 2$"),
    ("budgets repeated", _set([1, 2, 2], "budgets"), "budgets[2]",
     r"expected budgets in strictly increasing order \(more than 2\), got 2$"),
    ("budget beyond trial", _set([1, 10, 11], "budgets"), "budgets[2]",
     r"expected a budget within the trial length of CountingFamily\(trials=10\) \(at most 10 episodes\), got 11; "
     r"lower it or lengthen the trial in family.params$"),
    # family
    ("unknown family", _set("bandits.gaussian", "family", "name"), "family.name",
     "unknown task family 'bandits.gaussian'; valid names: .*bandits.bernoulli.*mdp.tabular.*test.counting"),
    ("bad family param value", _set({"trials": 0}, "family", "params"), "family.params",
     "test.counting: parameter trials=0 must be a positive integer$"),
    ("unknown family param", _set({"trails": 3}, "family", "params"), "family.params",
     r"task family 'test.counting': bad parameters \['trails'\]: .*unexpected keyword argument 'trails'$"),
    ("family param key not a name", _set({1: 3}, "family", "params"), "family.params",
     "expected keyword argument names \\(identifiers\\), got key 1$"),
    ("regret without oracle", _set("regret", "metric"), "metric",
     r"expected cumulative_reward for task family 'test.counting' \(regret needs a family with an "
     r"oracle_policy\), got regret$"),
    # agents
    ("agents empty", _set([], "agents"), "agents", r"expected a non-empty list of agents \(each a mapping"),
    ("agents a mapping", _set({"a": 1}, "agents"), "agents", "expected a non-empty list of agents .*, got a mapping$"),
    ("agent a string", _set("random", "agents", 0), "agents[0]",
     r"expected a mapping with name: and baseline: or algorithm:, got 'random' \(a string\)$"),
    ("unknown baseline", _set("thomson", "agents", 0, "baseline"), "agents[0].baseline",
     "unknown baseline 'thomson'; valid names: .*test_const, test_other_family, test_scaled.*thompson"),
    ("baseline config rejected", _set({"c": -1.0}, "agents", 1, "config"), "agents[1].config",
     "baseline 'test_scaled' rejects this config: ScaledBaseline: c=-1.0 must be positive$"),
    ("baseline config unknown key", _set({"d": 1}, "agents", 1, "config"), "agents[1].config",
     "baseline 'test_scaled' rejects this config: .*unexpected keyword argument 'd'$"),
    ("config not a mapping", _set([1], "agents", 1, "config"), "agents[1].config",
     "expected a mapping of keyword arguments like {key: value}, got a list of 1$"),
    ("baseline for another family", _set("test_other_family", "agents", 0, "baseline"), "agents[0].baseline",
     r"expected a baseline that supports task family 'test.counting', got 'test_other_family' "
     r"\(it supports: other.family\)$"),
    ("baseline with train", _set({"iterations": 3}, "agents", 0, "train"), "agents[0].train",
     r"expected no train: for a baseline agent \(only algorithm: agents are meta-trained\), got one$"),
    ("unknown algorithm", _set("not_an_algorithm", "agents", 2, "algorithm"), "agents[2].algorithm",
     "unknown algorithm 'not_an_algorithm'; valid names: .*test_learner"),
    ("algorithm config rejected", _set({"hiden": 8}, "agents", 2, "config"), "agents[2].config",
     r"algorithm 'test_learner' rejects this config: FakeLearner: unknown config fields \['hiden'\]$"),
    ("train iterations zero", _set({"iterations": 0}, "agents", 2, "train"), "agents[2].train.iterations",
     "expected a positive integer, got 0"),
    ("learner without training tasks", _set(0, "tasks", "train"), "tasks.train",
     r"expected at least 1 training task for the meta-learner 'learner' \(algorithm: test_learner\), got 0$"),
    ("duplicate agent name", _set("const", "agents", 2, "name"), "agents[2].name",
     r"expected a unique agent name, got 'const' again \(first at agents\[0\]\)$"),
    ("agent name with a dash", _set("ucb-1", "agents", 0, "name"), "agents[0].name",
     r"expected an identifier \(letters, digits, _; not starting with a digit\) like ucb1_c2, got 'ucb-1'$"),
    ("agent name starting with a digit", _set("1st", "agents", 0, "name"), "agents[0].name",
     "expected an identifier .*, got '1st'$"),
    ("agent name a number", _set(7, "agents", 0, "name"), "agents[0].name",
     r"expected an identifier like ucb1_c2, got 7 \(an integer\)$"),
    ("both baseline and algorithm", _set("test_learner", "agents", 0, "algorithm"), "agents[0]",
     "expected exactly one of baseline: or algorithm: for agent 'const', got both$"),
    ("neither baseline nor algorithm", _delete("agents", 0, "baseline"), "agents[0]",
     "expected exactly one of baseline: or algorithm: for agent 'const', got neither$"),
    # expectations
    ("expectations a string", _set("a@1 > 0", "expectations"), "expectations",
     r"expected a list of strings like \"a@10 >= b@10\", got 'a@1 > 0' \(a string\)$"),
    ("expectation not a string", _set([{"a@1": 0}], "expectations"), "expectations[0]",
     r"expected a string like \"a@10 >= 1.1 \* b@10\" \(quote it in YAML\), got a mapping$"),
    ("expectation syntax error", _set(["const@10 > 0", "scaled_c2@10 >= 1.1 *"], "expectations"), "expectations[1]",
     r"column 22 of 'scaled_c2@10 >= 1.1 \*': expected a number, AGENT@BUDGET, '\(' or '-', "
     r"got end of expression$"),
    ("expectation with ==", _set(["const@10 == 1"], "expectations"), "expectations[0]",
     "column 10 of 'const@10 == 1': expected a comparison >=, <=, > or <, got '=='$"),
    ("expectation unknown agent", _set(["thompson@10 >= 1.1 * const@10"], "expectations"), "expectations[0]",
     r"'thompson@10 >= 1.1 \* const@10' refers to thompson@10: expected an agent of this scenario "
     r"\(const, scaled_c2, learner\), got 'thompson'$"),
    ("expectation unknown budget", _set(["const@1 < const@3"], "expectations"), "expectations[0]",
     r"'const@1 < const@3' refers to const@3: expected a budget listed in budgets \[1, 2, 5, 10\], got 3$"),
]


@pytest.mark.parametrize("mutate, field, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_errors_are_one_line_naming_file_and_field(scenario_data, write_yaml, mutate, field, pattern):
    mutate(scenario_data)
    assert_error(write_yaml(scenario_data), field, pattern)


def test_first_problem_in_file_order_is_reported(scenario_data, write_yaml):
    scenario_data["tasks"]["test"] = "many"
    scenario_data["budgets"] = [-1]
    assert_error(write_yaml(scenario_data), "tasks.test", "expected a positive integer")


def test_baseline_that_cannot_be_imported(scenario_data, write_yaml):
    registry.BASELINES.register("test_broken", "no_such_module_xyz:Thing")
    try:
        scenario_data["agents"][0]["baseline"] = "test_broken"
        assert_error(write_yaml(scenario_data), "agents[0].baseline",
                     "baseline 'test_broken' points at 'no_such_module_xyz:Thing', which cannot be imported")
    finally:
        del registry.BASELINES._targets["test_broken"]


def test_budget_beyond_the_real_bandit_trial(scenario_data, write_yaml):
    pytest.importorskip("metarl_apps.adapters.bandits")
    scenario_data["family"] = {"name": "bandits.bernoulli", "params": {"arms": 5, "pulls": 10}}
    scenario_data["budgets"] = [1, 20]
    assert_error(write_yaml(scenario_data), "budgets[1]",
                 r"expected a budget within the trial length of BernoulliBandits\(arms=5, pulls=10\) "
                 r"\(at most 10 pulls\), got 20")


# ---------------------------------------------------------------------------------------------- find_scenarios
def test_find_scenarios_lists_yaml_files_recursively_sorted(tmp_path):
    for rel in ["b.yaml", "a.yml", "sub/c.yaml", "sub/deeper/d.yml", "notes.md", "e.yaml.bak", "sub/x.json"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "dir.yaml").mkdir()
    found = find_scenarios(tmp_path)
    assert found == sorted(found)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a.yml", "b.yaml", "sub/c.yaml",
                                                                  "sub/deeper/d.yml"]
    assert find_scenarios(str(tmp_path / "sub")) == [tmp_path / "sub/c.yaml", tmp_path / "sub/deeper/d.yml"]


def test_find_scenarios_in_a_missing_directory(tmp_path):
    with pytest.raises(MetaRLInputError, match="nope: expected a directory of scenario files, got no such directory"):
        find_scenarios(tmp_path / "nope")
