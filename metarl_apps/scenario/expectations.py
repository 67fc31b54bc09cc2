"""Expectations: one-line checks on a scenario's results, e.g. ``"thompson@10 >= 1.1 * random@10"``.

``agent@K`` is the metric of ``agent`` after an adaptation budget of ``K`` (mean over held-out tasks). The
text is parsed by a hand-written tokenizer and recursive-descent parser (never ``eval``)::

    check  := expr CMP expr            CMP in  >=  <=  >  <
    expr   := term (('+'|'-') term)*
    term   := factor (('*'|'/') factor)*
    factor := NUMBER | ref | '(' expr ')' | '-' factor
    ref    := AGENT '@' INT            AGENT = [A-Za-z_][A-Za-z0-9_]*
    NUMBER  = decimal with optional fraction/exponent: 6, 6.6, .5, 1e-3

The result is a small AST of frozen dataclasses (:class:`Number`, :class:`Ref`, :class:`Neg`, :class:`BinOp`,
:class:`Comparison`) that other code can walk (:func:`walk`) or evaluate on scalars or, elementwise, on
per-task numpy arrays (:func:`evaluate_node`), e.g. for paired confidence intervals.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Iterator, Mapping, Union

import numpy as np

from metarl_apps.core.errors import MetaRLInputError

COMPARATORS = (">=", "<=", ">", "<")


class ExpectationSyntaxError(MetaRLInputError):
    """An expectation that does not parse: ``column C of 'TEXT': expected WHAT, got WHAT``.

    Attributes:
      text: the expectation as written.
      column: 1-based column of the offending token (``len(text) + 1`` for the end of the text).
      expected: what the parser was looking for.
      got: what it found.
    """

    def __init__(self, text: str, column: int, expected: str, got: str):
        self.text = text
        self.column = column
        self.expected = expected
        self.got = got
        super().__init__(f"column {column} of {text!r}: expected {expected}, got {got}")


# ------------------------------------------------------------------------------------------------ the AST
@dataclasses.dataclass(frozen=True)
class Number:
    """A numeric literal."""

    value: float

    def __str__(self) -> str:
        return repr(self.value)


@dataclasses.dataclass(frozen=True)
class Ref:
    """``agent@budget``: the metric of ``agent`` after ``budget`` units of adaptation."""

    agent: str
    budget: int

    def __str__(self) -> str:
        return f"{self.agent}@{self.budget}"


@dataclasses.dataclass(frozen=True)
class Neg:
    """Unary minus."""

    operand: "Node"

    def __str__(self) -> str:
        return f"-{self.operand}"


@dataclasses.dataclass(frozen=True)
class BinOp:
    """``left op right`` with ``op`` one of ``+ - * /``."""

    op: str
    left: "Node"
    right: "Node"

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``left op right`` with ``op`` one of ``>= <= > <``: the root of every expectation."""

    op: str
    left: "Node"
    right: "Node"

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


Node = Union[Number, Ref, Neg, BinOp]


def walk(node: Node | Comparison) -> Iterator[Node | Comparison]:
    """Every node of the tree, parents before children, left before right."""
    yield node
    if isinstance(node, Neg):
        yield from walk(node.operand)
    elif isinstance(node, (BinOp, Comparison)):
        yield from walk(node.left)
        yield from walk(node.right)


# ----------------------------------------------------------------------------------------------- tokenizer
@dataclasses.dataclass(frozen=True)
class _Token:
    kind: str  # "number" | "name" | "op" | "end"
    text: str
    column: int  # 1-based

    def describe(self) -> str:
        return "end of expression" if self.kind == "end" else repr(self.text)


_NUMBER = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")  # ASCII digits only
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER_TAIL = re.compile(r"[A-Za-z0-9_.]+")  # what may not directly follow a number (as in 1.2.3 or 3x)
_OPERATORS = (">=", "<=", ">", "<", "+", "-", "*", "/", "(", ")", "@")
_NOT_COMPARATORS = ("==", "!=", "=>", "=<", "=", "!")


def _tokenize(text: str) -> Iterator[_Token]:
    """Tokens left to right, produced lazily so the leftmost problem (lexical or grammatical) is reported."""
    pos = 0
    while pos < len(text):
        char = text[pos]
        column = pos + 1
        if char.isspace():
            pos += 1
            continue
        number = _NUMBER.match(text, pos)
        if number:
            tail = _NUMBER_TAIL.match(text, number.end())
            if tail:
                bad = text[pos:tail.end()]
                raise ExpectationSyntaxError(text, column, "a number like 6, 6.6, .5 or 1e-3", repr(bad))
            yield _Token("number", number.group(), column)
            pos = number.end()
            continue
        name = _NAME.match(text, pos)
        if name:
            yield _Token("name", name.group(), column)
            pos = name.end()
            continue
        op = next((o for o in _OPERATORS if text.startswith(o, pos)), None)
        if op:
            yield _Token("op", op, column)
            pos += len(op)
            continue
        wrong = next((o for o in _NOT_COMPARATORS if text.startswith(o, pos)), None)
        if wrong:
            raise ExpectationSyntaxError(text, column, "a comparison >=, <=, > or <", repr(wrong))
        raise ExpectationSyntaxError(
            text, column, "a number, AGENT@BUDGET, an operator + - * / >= <= > < or a parenthesis", repr(char)
        )
    yield _Token("end", "", len(text) + 1)


# ------------------------------------------------------------------------------------------------- parser
_OPERAND = "a number, AGENT@BUDGET, '(' or '-'"


class _Parser:
    """Recursive descent with one token of lookahead; one method per grammar rule."""

    def __init__(self, text: str):
        self.text = text
        self._tokens = _tokenize(text)
        self.token = next(self._tokens)  # one token of lookahead

    def _advance(self) -> _Token:
        token = self.token
        if token.kind != "end":
            self.token = next(self._tokens)
        return token

    def _at(self, *ops: str) -> bool:
        return self.token.kind == "op" and self.token.text in ops

    def _fail(self, expected: str, token: _Token | None = None) -> ExpectationSyntaxError:
        token = token or self.token
        return ExpectationSyntaxError(self.text, token.column, expected, token.describe())

    def check(self) -> Comparison:
        left = self.expr()
        if not self._at(*COMPARATORS):
            raise self._fail("a comparison >=, <=, > or < (or an operator + - * /)")
        op = self._advance().text
        right = self.expr()
        if self.token.kind != "end":
            raise self._fail("end of expression (one comparison per expectation)")
        return Comparison(op, left, right)

    def expr(self) -> Node:
        node = self.term()
        while self._at("+", "-"):
            op = self._advance().text
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.factor()
        while self._at("*", "/"):
            op = self._advance().text
            node = BinOp(op, node, self.factor())
        return node

    def factor(self) -> Node:
        token = self.token
        if token.kind == "number":
            self._advance()
            return Number(float(token.text))
        if token.kind == "name":
            return self.ref()
        if self._at("("):
            self._advance()
            node = self.expr()
            if not self._at(")"):
                raise self._fail(f"')' to close the '(' at column {token.column}")
            self._advance()
            return node
        if self._at("-"):
            self._advance()
            return Neg(self.factor())
        raise self._fail(_OPERAND)

    def ref(self) -> Ref:
        agent = self._advance()
        if not self._at("@"):
            raise self._fail(f"'@' and a budget after agent name {agent.text!r} (a reference is AGENT@BUDGET)")
        self._advance()
        budget = self.token
        if budget.kind != "number" or not budget.text.isdigit():
            raise self._fail(f"an integer budget after '{agent.text}@'")
        self._advance()
        return Ref(agent.text, int(budget.text))


# ------------------------------------------------------------------------------------------------ evaluation
def evaluate_node(node: Node, values: Mapping[tuple[str, int], Any]) -> Any:
    """The value of ``node`` with each ``agent@budget`` looked up in ``values``.

    Values may be floats or numpy arrays of equal shape (per-task results); arithmetic is elementwise and
    follows IEEE rules, so dividing by zero gives ``inf``/``nan`` instead of raising.

    Raises:
      MetaRLInputError: a referenced ``(agent, budget)`` has no value.
    """
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Ref):
        key = (node.agent, node.budget)
        if key not in values:
            known = ", ".join(f"{a}@{b}" for a, b in sorted(values)) or "none"
            raise MetaRLInputError(f"expectation refers to {node}, which has no result (results: {known})")
        return values[key]
    if isinstance(node, Neg):
        return -evaluate_node(node.operand, values)
    if isinstance(node, BinOp):
        left = evaluate_node(node.left, values)
        right = evaluate_node(node.right, values)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if node.op == "+":
                return np.add(left, right)
            if node.op == "-":
                return np.subtract(left, right)
            if node.op == "*":
                return np.multiply(left, right)
            return np.true_divide(left, right)
    raise TypeError(f"evaluate_node: not an expression node: {node!r}")


def _divides_by_zero(node: Node | Comparison, values: Mapping[tuple[str, int], Any]) -> bool:
    return any(
        isinstance(n, BinOp) and n.op == "/" and np.any(np.asarray(evaluate_node(n.right, values)) == 0)
        for n in walk(node)
    )


@dataclasses.dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation: ``passed`` iff ``lhs CMP rhs`` held (and nothing divided by zero)."""

    check: str
    passed: bool
    lhs: float
    rhs: float


@dataclasses.dataclass(frozen=True)
class Expectation:
    """A parsed expectation: its text as written and its :class:`Comparison` tree."""

    text: str
    comparison: Comparison

    def __str__(self) -> str:
        return self.text

    @property
    def refs(self) -> set[tuple[str, int]]:
        """Every ``(agent, budget)`` the expectation refers to."""
        return {(n.agent, n.budget) for n in walk(self.comparison) if isinstance(n, Ref)}

    def evaluate(self, values: Mapping[tuple[str, int], float]) -> ExpectationResult:
        """Check the expectation against ``values[(agent, budget)]``.

        A division by zero does not raise: ``lhs``/``rhs`` are the IEEE results (``inf``/``nan``) and the
        check fails. A NaN on either side fails every comparison.
        """
        lhs = float(evaluate_node(self.comparison.left, values))
        rhs = float(evaluate_node(self.comparison.right, values))
        if _divides_by_zero(self.comparison, values) or math.isnan(lhs) or math.isnan(rhs):
            passed = False
        else:
            passed = {">=": lhs >= rhs, "<=": lhs <= rhs, ">": lhs > rhs, "<": lhs < rhs}[self.comparison.op]
        return ExpectationResult(self.text, bool(passed), lhs, rhs)


def is_linear(node: Node | Comparison) -> bool:
    """True if ``node`` is linear in its ``agent@budget`` references (no ref times ref, nothing divided by a ref).

    For a linear check the mean over tasks of the per-task difference ``lhs - rhs`` equals the difference of
    the means, so the paired confidence interval of that difference is about exactly the point estimate.
    """
    def has_ref(n: Node) -> bool:
        return any(isinstance(m, Ref) for m in walk(n))

    for n in walk(node):
        if isinstance(n, BinOp) and n.op == "*" and has_ref(n.left) and has_ref(n.right):
            return False
        if isinstance(n, BinOp) and n.op == "/" and has_ref(n.right):
            return False
    return True


def paired_difference(expectation: "Expectation", per_task: Mapping[tuple[str, int], np.ndarray]) -> dict | None:
    """The paired 95% CI of ``lhs - rhs`` over held-out tasks, or None when it is not defined.

    ``per_task[(agent, budget)]`` is that agent's metric on each held-out task, ``[N]``, the tasks in the same
    order for every agent (the evaluator runs every agent on the same tasks with the same per-task randomness).
    Returns ``{"diff", "ci95", "low", "high", "n_tasks", "confident"}``: ``diff`` is the mean of the per-task
    ``lhs - rhs`` (equal to ``lhs - rhs`` of the means), ``confident`` says the whole interval satisfies the
    comparison (``low > 0`` for ``>``/``>=``, ``high < 0`` for ``<``/``<=``). None when the check is not linear
    in its references (e.g. ``a@10 / b@10 >= 1.1``) or a reference has no per-task values.
    """
    from metarl_apps.evaluation.stats import mean_ci95

    comp = expectation.comparison
    if not is_linear(comp) or not expectation.refs or not all(r in per_task for r in expectation.refs):
        return None
    sizes = {np.asarray(per_task[r]).shape for r in expectation.refs}
    if len(sizes) != 1:
        return None
    diff = np.asarray(evaluate_node(comp.left, per_task), dtype=np.float64) - np.asarray(
        evaluate_node(comp.right, per_task), dtype=np.float64)
    diff = np.broadcast_to(diff, sizes.pop())
    if diff.size == 0 or not np.all(np.isfinite(diff)):
        return None
    mean, ci = mean_ci95(diff)
    low, high = mean - ci, mean + ci
    confident = low > 0 if comp.op in (">", ">=") else high < 0
    return {"diff": mean, "ci95": ci, "low": low, "high": high, "n_tasks": int(diff.size),
            "confident": bool(confident)}


def parse_expectation(text: str) -> Expectation:
    """Parse ``text`` (see the module docstring for the grammar).

    Raises:
      ExpectationSyntaxError: naming the 1-based column and what was expected there.
      TypeError: ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_expectation(text={text!r}): text must be a string like 'a@10 >= b@10'")
    text = text.strip()
    return Expectation(text, _Parser(text).check())
