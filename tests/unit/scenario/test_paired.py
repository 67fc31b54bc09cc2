"""Paired comparisons: the 95% CI of ``lhs - rhs`` over the same held-out tasks (hand-worked numbers)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from metarl_apps.scenario.expectations import is_linear, paired_difference, parse_expectation
from metarl_apps.scenario.runner import check_expectations, describe_check

A = np.array([6.0, 7.0, 5.0, 8.0])
B = np.array([5.0, 6.5, 4.0, 7.5])  # A - B = [1, 0.5, 1, 0.5]: mean 0.75, sd 0.288675


def test_paired_ci_by_hand():
    p = paired_difference(parse_expectation("a@10 >= b@10"), {("a", 10): A, ("b", 10): B})
    half = stats.t.ppf(0.975, 3) * 0.28867513459481287 / 2  # t_{0.975,3} * sd / sqrt(4) = 0.459333
    assert p["diff"] == pytest.approx(0.75) and p["ci95"] == pytest.approx(half) and p["n_tasks"] == 4
    assert p["low"] == pytest.approx(0.75 - half) and p["confident"] is True


def test_scaled_rhs_and_constants():
    per_task = {("a", 10): A, ("b", 10): B}
    p = paired_difference(parse_expectation("a@10 >= 1.05 * b@10"), per_task)
    assert p["diff"] == pytest.approx(np.mean(A - 1.05 * B))
    p = paired_difference(parse_expectation("a@10 <= 6"), per_task)  # a constant side: the CI of a@10 - 6
    assert p["diff"] == pytest.approx(0.5) and p["confident"] is False


def test_unpaired_sample_is_wider_than_paired():
    per_task = {("a", 10): A, ("b", 10): B}
    p = paired_difference(parse_expectation("a@10 > b@10"), per_task)
    unpaired = stats.t.ppf(0.975, 3) * np.sqrt(A.var(ddof=1) / 4 + B.var(ddof=1) / 4)
    assert p["ci95"] < unpaired / 3


@pytest.mark.parametrize("text, linear", [
    ("a@10 >= 1.05 * b@10", True), ("a@10 - b@10 / 2 > 0", True), ("-(a@10 + 1) * 3 < b@10", True),
    ("a@10 / b@10 >= 1.1", False), ("a@10 * b@10 > 1", False),
])
def test_linearity(text, linear):
    assert is_linear(parse_expectation(text).comparison) is linear


def test_no_paired_ci_for_ratios_or_missing_values():
    per_task = {("a", 10): A, ("b", 10): B}
    assert paired_difference(parse_expectation("a@10 / b@10 >= 1.1"), per_task) is None
    assert paired_difference(parse_expectation("a@10 >= c@10"), per_task) is None
    assert paired_difference(parse_expectation("3 >= 2"), per_task) is None


def test_check_expectations_keeps_point_rule_and_reports_the_ci():
    exps = [parse_expectation("a@10 >= b@10 + 0.7"), parse_expectation("a@10 / b@10 >= 1.1")]
    means = {("a", 10): A.mean(), ("b", 10): B.mean()}
    first, ratio = check_expectations(exps, means, {("a", 10): A, ("b", 10): B})
    assert first["passed"] is True and first["paired"]["confident"] is False  # 0.05 ± 0.46: not confirmed
    assert ratio["paired"] is None and ratio["passed"] is True
    line = describe_check(first)
    assert line.startswith("[PASS] a@10 >= b@10 + 0.7") and "not confirmed at 95%" in line
    assert check_expectations(exps, means) == [{**first, "paired": None}, {**ratio, "paired": None}]


def test_report_shows_the_spread_across_training_seeds():
    from metarl_apps.evaluation.evaluator import Curve
    from metarl_apps.scenario.runner import render_report

    values = np.array([[[2.0], [4.0]], [[3.0], [5.0]], [[4.0], [6.0]]])  # 3 seeds, 2 tasks, 1 budget
    rows = Curve("rl2", (10,), values).rows() + Curve("random", (10,), values[:1]).rows()
    report = render_report({"scenario": "s", "metric": "cumulative_reward", "budget_unit": "pulls",
                            "tasks": {"test": 2}, "rows": rows, "expectations": []})
    assert "Across training seeds" in report
    # seed means 3, 4, 5: mean 4, half-width t(0.975, 2) * 1 / sqrt(3) = 2.484
    assert "| rl2 | 4.000 ± 2.484 (3.000, 4.000, 5.000) |" in report
    assert "| random | 3.000" in report and "| random | 3.000 ± 0.000 (" not in report


def test_report_shows_reference_values_with_their_half_widths():
    from metarl_apps.evaluation.evaluator import Curve
    from metarl_apps.scenario.runner import render_report

    rows = Curve("rl2", (10,), np.array([[[2.0], [4.0]]])).rows()
    report = render_report({"scenario": "s", "metric": "cumulative_reward", "budget_unit": "pulls",
                            "tasks": {"test": 2}, "rows": rows, "expectations": [],
                            "references": {"oracle_exact": 83.3333333, "gittins_expected": 78.6452,
                                           "gittins_expected_ci": 0.0318}})
    assert ("Reference values (expected over the task prior): oracle_exact = 83.3333, "
            "gittins_expected = 78.6452 ± 0.0318") in report
    assert "gittins_expected_ci" not in report
