"""A deliberately broken learner makes the relevant scenario's expectations fail with a readable message.

RL² whose policy forgets (its LSTM memory is reset before every step) is evaluated, through the scenario runner,
on the demo scenario (``scenarios/bandits/rl2_k5_n10.yaml``: 5000 held-out 5-armed bandits, 10 pulls) side by
side with the intact RL² — both restored from the same shipped model (``models/rl2-bandits-k5-n10``), so the
only difference is the memory. The intact learner passes the scenario's expectations; the broken one fails them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import tensorflow as tf

from metarl_apps.algorithms.rl2 import RL2, RL2Policy
from metarl_apps.core.registry import ALGORITHMS
from metarl_apps.scenario import load_scenario, parse_expectation
from metarl_apps.scenario.runner import run_scenario

ROOT = Path(__file__).resolve().parents[3]
SCENARIO = ROOT / "scenarios" / "bandits" / "rl2_k5_n10.yaml"
MODEL = ROOT / "models" / "rl2-bandits-k5-n10"


class AmnesicRL2Policy(RL2Policy):
    """RL²'s policy with its memory wiped before every step: it sees only the last action and reward."""

    def _distribution(self, time_step, policy_state):
        return super()._distribution(time_step, tf.nest.map_structure(tf.zeros_like, policy_state))


class AmnesicRL2(RL2):
    def _adapt(self, env, tasks, budget):
        intact = super()._adapt(env, tasks, budget)
        return AmnesicRL2Policy(self.net, intact.time_step_spec, intact.action_spec, greedy=self.config.greedy_eval,
                                adaptation=intact.adaptation)


@pytest.fixture
def amnesic_algorithm():
    ALGORITHMS.register("amnesic_rl2", AmnesicRL2)
    yield "amnesic_rl2"
    ALGORITHMS.unregister("amnesic_rl2")


def test_memory_reset_every_step_fails_the_demo_scenario(amnesic_algorithm, tmp_path):
    if not (MODEL / "card.json").exists():
        pytest.fail(f"{MODEL} is missing: it ships with the repository (rebuild it: metarl run {SCENARIO} "
                    f"--save-model --model-name rl2-bandits-k5-n10)")
    scenario = load_scenario(SCENARIO)
    (rl2,) = [a for a in scenario.agents if a.name == "rl2"]
    broken = dataclasses.replace(rl2, name="forgetful", target=amnesic_algorithm)
    learner_checks = [e.text for e in scenario.expectations if ("rl2", 10) in e.refs]
    assert learner_checks, "the demo scenario has no expectation about rl2@10"
    scenario = dataclasses.replace(
        scenario, tasks=dataclasses.replace(scenario.tasks, train=0), agents=(*scenario.agents, broken),
        expectations=(*scenario.expectations,
                      *(parse_expectation(t.replace("rl2@", "forgetful@")) for t in learner_checks)))
    log: list[str] = []
    result = run_scenario(scenario, tmp_path, progress=False, log=log.append,
                          models={"rl2": MODEL, "forgetful": MODEL})
    checks = {c["check"]: c for c in result.results["expectations"]}
    intact = [c for t, c in checks.items() if "forgetful" not in t]
    assert all(c["passed"] for c in intact), f"the intact RL² fails its scenario: {intact}"
    assert not result.passed
    failed = [t for t, c in checks.items() if not c["passed"]]
    assert "forgetful@10 >= greedy@10" in failed and "forgetful@10 >= 6.53" in failed
    # the readable message: what failed, both sides, and the paired CI of the gap on the same tasks
    line = next(x for x in log if "[FAIL] forgetful@10 >= greedy@10" in x)
    assert "lhs - rhs = -" in line and "paired 95% CI" in line and "over 5000 tasks" in line
    assert "| `forgetful@10 >= greedy@10` | FAIL |" in (tmp_path / "report.md").read_text()
