"""The expectation grammar: parsing (precedence, parentheses, unary minus), syntax errors, refs, evaluation."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from metarl_apps.core.errors import MetaRLInputError
from metarl_apps.scenario.expectations import (
    BinOp,
    Comparison,
    Expectation,
    ExpectationResult,
    ExpectationSyntaxError,
    Neg,
    Number,
    Ref,
    evaluate_node,
    parse_expectation,
    walk,
)

A, B = Ref("a", 10), Ref("b", 10)


# ------------------------------------------------------------------------------------------------- parsing
def test_simple_check():
    exp = parse_expectation("thompson@10 >= 1.1 * random@10")
    assert isinstance(exp, Expectation)
    assert exp.text == "thompson@10 >= 1.1 * random@10"
    assert exp.comparison == Comparison(">=", Ref("thompson", 10), BinOp("*", Number(1.1), Ref("random", 10)))


def test_multiplication_binds_tighter_than_addition():
    assert parse_expectation("a@10 + 2 * b@10 > 0").comparison.left == BinOp("+", A, BinOp("*", Number(2), B))
    assert parse_expectation("a@10 * 2 + b@10 > 0").comparison.left == BinOp("+", BinOp("*", A, Number(2)), B)
    assert parse_expectation("a@10 - b@10 / 4 > 0").comparison.left == BinOp("-", A, BinOp("/", B, Number(4)))


def test_same_precedence_is_left_associative():
    assert parse_expectation("1 - 2 - 3 < 0").comparison.left == BinOp("-", BinOp("-", Number(1), Number(2)),
                                                                        Number(3))
    assert parse_expectation("8 / 4 / 2 < 0").comparison.left == BinOp("/", BinOp("/", Number(8), Number(4)),
                                                                        Number(2))


def test_parentheses_override_precedence():
    assert parse_expectation("(a@10 + 2) * b@10 > 0").comparison.left == BinOp("*", BinOp("+", A, Number(2)), B)
    assert parse_expectation("((a@10)) > 0").comparison.left == A


def test_unary_minus():
    assert parse_expectation("-a@10 < 0").comparison.left == Neg(A)
    assert parse_expectation("--1 > 0").comparison.left == Neg(Neg(Number(1)))
    assert parse_expectation("2 * -a@10 < 0").comparison.left == BinOp("*", Number(2), Neg(A))
    assert parse_expectation("-(1 + 2) < 0").comparison.left == Neg(BinOp("+", Number(1), Number(2)))
    # unary minus binds tighter than *: (-2) * 3
    assert parse_expectation("-2 * 3 < 0").comparison.left == BinOp("*", Neg(Number(2)), Number(3))


@pytest.mark.parametrize("op", [">=", "<=", ">", "<"])
def test_every_comparator(op):
    assert parse_expectation(f"a@10 {op} b@10").comparison == Comparison(op, A, B)


@pytest.mark.parametrize("text, value", [("6", 6.0), ("6.6", 6.6), ("1e-3", 1e-3), (".5", 0.5), ("5.", 5.0),
                                         ("2E+2", 200.0), ("0.25e1", 2.5)])
def test_numbers(text, value):
    assert parse_expectation(f"a@1 >= {text}").comparison.right == Number(value)


def test_whitespace_is_free_and_text_is_stripped():
    exp = parse_expectation("  a@10>=b@10\t")
    assert exp.text == "a@10>=b@10"
    assert exp.comparison == Comparison(">=", A, B)


def test_identifiers_with_digits_and_underscores():
    assert parse_expectation("_ucb1_c05@2 > eps_greedy@2").refs == {("_ucb1_c05", 2), ("eps_greedy", 2)}


def test_refs():
    exp = parse_expectation("(a@1 + a@1) / 2 - -b@5 >= 1.1 * c@10")
    assert exp.refs == {("a", 1), ("b", 5), ("c", 10)}
    assert parse_expectation("1 < 2").refs == set()


def test_walk_visits_every_node_parents_first():
    exp = parse_expectation("-a@1 * 2 >= b@2")
    kinds = [type(n).__name__ for n in walk(exp.comparison)]
    assert kinds == ["Comparison", "BinOp", "Neg", "Ref", "Number", "Ref"]


def test_not_a_string_is_a_type_error():
    with pytest.raises(TypeError, match="text must be a string"):
        parse_expectation(3)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------- syntax errors
@pytest.mark.parametrize(
    "text, column, expected, got",
    [
        ("", 1, "a number, AGENT@BUDGET", "end of expression"),
        ("a@10", 5, "a comparison >=, <=, > or <", "end of expression"),
        ("a@10 >=", 8, "a number, AGENT@BUDGET, '(' or '-'", "end of expression"),
        (">= 1", 1, "a number, AGENT@BUDGET", "'>='"),
        ("a@10 >= b@10 >= c@10", 14, "end of expression (one comparison per expectation)", "'>='"),
        ("a@10 >= 1 2", 11, "end of expression", "'2'"),
        ("a@10 == b@10", 6, "a comparison >=, <=, > or <", "'=='"),
        ("a@10 = b@10", 6, "a comparison >=, <=, > or <", "'='"),
        ("a@10 != 1", 6, "a comparison", "'!='"),
        ("a@10 => 1", 6, "a comparison", "'=>'"),
        ("a@10 >= 1 $", 11, "a number, AGENT@BUDGET, an operator", "'$'"),
        ("a@10 >= 1.2.3", 9, "a number like 6, 6.6, .5 or 1e-3", "'1.2.3'"),
        ("a@10 >= 3x", 9, "a number like", "'3x'"),
        ("a@10 >= 1e", 9, "a number like", "'1e'"),
        ("a@10x >= 1", 3, "a number like", "'10x'"),
        ("(a@10 >= 1", 7, "')' to close the '(' at column 1", "'>='"),
        ("a@10) >= 1", 5, "a comparison", "')'"),
        ("() >= 1", 2, "a number, AGENT@BUDGET, '(' or '-'", "')'"),
        ("a >= 1", 3, "'@' and a budget after agent name 'a' (a reference is AGENT@BUDGET)", "'>='"),
        ("a@ >= 1", 4, "an integer budget after 'a@'", "'>='"),
        ("a@2.5 >= 1", 3, "an integer budget after 'a@'", "'2.5'"),
        ("a@1e3 >= 1", 3, "an integer budget after 'a@'", "'1e3'"),
        ("a@b >= 1", 3, "an integer budget after 'a@'", "'b'"),
        ("@10 >= 1", 1, "a number, AGENT@BUDGET, '(' or '-'", "'@'"),
        ("+1 >= 1", 1, "a number, AGENT@BUDGET, '(' or '-'", "'+'"),
        ("a@10 >= 1 *", 12, "a number, AGENT@BUDGET, '(' or '-'", "end of expression"),
        ("a@\u00b2 >= 1", 3, "a number, AGENT@BUDGET, an operator", "'\u00b2'"),  # not an ASCII digit
        ("a@10 * * 2 >= 1", 8, "a number, AGENT@BUDGET, '(' or '-'", "'*'"),
    ],
)
def test_syntax_errors_name_the_column_and_what_was_expected(text, column, expected, got):
    with pytest.raises(ExpectationSyntaxError) as info:
        parse_expectation(text)
    err = info.value
    assert isinstance(err, MetaRLInputError)
    assert (err.column, err.got) == (column, got)
    assert err.expected.startswith(expected)
    assert re.match(rf"column {column} of {re.escape(repr(text))}: expected {re.escape(expected)}.*, got "
                    rf"{re.escape(got)}$", str(err))
    assert "\n" not in str(err)


def test_syntax_error_message_example():
    with pytest.raises(ExpectationSyntaxError,
                       match=r"^column 15 of 'thompson@10 >=': expected a number, AGENT@BUDGET, '\(' or '-', "
                             r"got end of expression$"):
        parse_expectation("thompson@10 >=")


def test_never_evaluates_python():
    with pytest.raises(ExpectationSyntaxError, match="column 11 of .*'@' and a budget after agent name '__import__'"):
        parse_expectation("__import__('os').system('true') > 0")


def test_the_leftmost_problem_is_reported():
    # a grammar error at column 6 comes before the bad character at column 11
    with pytest.raises(ExpectationSyntaxError, match="^column 6 of .*got '\\*'$"):
        parse_expectation("a@1 >* 1 $")


# ------------------------------------------------------------------------------------------------ evaluation
VALUES = {("thompson", 10): 5.7, ("random", 10): 5.0, ("oracle", 10): 7.5, ("zero", 10): 0.0}


def test_evaluate_pass_and_fail():
    res = parse_expectation("thompson@10 >= 1.1 * random@10").evaluate(VALUES)
    assert isinstance(res, ExpectationResult)
    assert res == ExpectationResult("thompson@10 >= 1.1 * random@10", True, 5.7, pytest.approx(5.5))
    res = parse_expectation("thompson@10 >= 1.2 * random@10").evaluate(VALUES)
    assert not res.passed and res.lhs == 5.7 and res.rhs == pytest.approx(6.0)


def test_evaluate_hand_worked_arithmetic():
    # (7.5 - 5.0) / (5.7 - 5.0) = 2.5 / 0.7 = 3.5714...; -(-2) * 3 = 6
    res = parse_expectation("(oracle@10 - random@10) / (thompson@10 - random@10) < --2 * 3").evaluate(VALUES)
    assert res.lhs == pytest.approx(2.5 / 0.7)
    assert res.rhs == 6.0
    assert res.passed


@pytest.mark.parametrize("op, lhs, rhs, passed", [
    (">=", 1, 1, True), (">=", 0, 1, False), ("<=", 1, 1, True), ("<=", 2, 1, False),
    (">", 1, 1, False), (">", 2, 1, True), ("<", 1, 1, False), ("<", 0, 1, True),
])
def test_every_comparator_evaluates(op, lhs, rhs, passed):
    res = parse_expectation(f"x@1 {op} y@1").evaluate({("x", 1): lhs, ("y", 1): rhs})
    assert (res.passed, res.lhs, res.rhs) == (passed, lhs, rhs)


def test_division_by_zero_fails_without_raising():
    res = parse_expectation("random@10 / zero@10 >= 1").evaluate(VALUES)
    assert res.passed is False and res.lhs == math.inf and res.rhs == 1.0
    # inf <= inf would hold; a division by zero still fails the check
    res = parse_expectation("-random@10 / zero@10 <= -1 / 0").evaluate(VALUES)
    assert res.passed is False and res.lhs == -math.inf and res.rhs == -math.inf
    res = parse_expectation("zero@10 / zero@10 < 1").evaluate(VALUES)
    assert res.passed is False and math.isnan(res.lhs)


def test_nan_values_fail():
    res = parse_expectation("x@1 <= 1").evaluate({("x", 1): float("nan")})
    assert not res.passed and math.isnan(res.lhs)


def test_missing_value_is_a_clear_error():
    with pytest.raises(MetaRLInputError, match=r"refers to ucb1@10, which has no result \(results: oracle@10, "):
        parse_expectation("ucb1@10 >= 1").evaluate(VALUES)


def test_evaluate_node_is_elementwise_on_arrays():
    exp = parse_expectation("a@1 - 2 * b@1 >= 0")
    values = {("a", 1): np.array([1.0, 4.0]), ("b", 1): np.array([0.5, 1.0])}
    np.testing.assert_allclose(evaluate_node(exp.comparison.left, values), [0.0, 2.0])
