"""Arithmetic over figures copied from documents, computed here and never by the language model.

A grounded answer that needs a calculation (a change, a ratio, a percentage, a sum, an average) comes
from the generator as an expression over operands it copied from the evidence, in the style of
TAT-QA's ``derivation`` field: ``(44.1 - 56.7) / 56.7 * 100``, ``[(4,411 + 4,044) / 2]``, ``53% *
$23,406``. This module checks and computes it.

Why our own evaluator: the expression is model output, so it must never reach ``eval``; libraries
such as ``simpleeval`` evaluate a far larger language (names, calls, comparisons, attribute access)
that we would then have to switch off piece by piece. Python's own ``ast`` parser gives the tree;
only numbers, the four operations, unary signs and brackets are accepted, and anything else is an
``InvalidExpressionError`` naming it.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from dataclasses import dataclass

from .errors import InvalidParameterError

#: Longest expression accepted (TAT-QA dev's longest derivation is under 120 characters).
MAX_EXPRESSION_CHARS = 300

#: TAT-QA's scales and what a figure in each is worth.
SCALES = {"": 1.0, "thousand": 1e3, "million": 1e6, "billion": 1e9, "percent": 0.01}

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_SIGNS = {ast.UAdd: operator.pos, ast.USub: operator.neg}

#: A figure as documents write it: an optional currency sign, digits with thousands commas, decimals,
#: an optional percent sign ("$1,452.4", "15%", ".5").
_FIGURE = re.compile(r"[$€£¥]?\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)\s*(%?)")


class InvalidExpressionError(InvalidParameterError):
    """An expression that is not plain arithmetic over figures, or cannot be computed."""


@dataclass(frozen=True)
class Computation:
    """A calculation as an answer shows it: the expression as written, the figures it used, the result."""

    expression: str
    #: The figures of the expression, as written there ("$1,452.4", "15%"), in order.
    operands: tuple[str, ...]
    value: float
    #: The answer's scale ("", thousand, million, billion, percent): what the value is counted in.
    scale: str = ""

    def to_dict(self) -> dict:
        return {"expression": self.expression, "operands": list(self.operands), "value": self.value,
                "scale": self.scale, "result": format_figure(self.value, self.scale)}


def _python(expression: str) -> tuple[str, tuple[str, ...]]:
    """The expression in Python's arithmetic syntax (brackets as parentheses, figures as plain numbers,
    "15%" as (15/100)) and the figures it holds as written."""
    operands: list[str] = []

    def number(match: re.Match) -> str:
        operands.append(match.group(0).strip())
        digits = match.group(1).replace(",", "")
        return f"({digits}/100)" if match.group(2) else digits

    text = _FIGURE.sub(number, expression.replace("[", "(").replace("]", ")").replace("×", "*")
                       .replace("÷", "/").replace("−", "-"))
    # A currency sign before a bracket ("$(290.2 + 239.6)") says what the figures count, nothing more.
    return re.sub(r"[$€£¥]", "", text), tuple(operands)


def _value(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _value(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise InvalidExpressionError("the expression divides by zero")
        return _OPERATORS[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _SIGNS:
        return _SIGNS[type(node.op)](_value(node.operand))
    raise InvalidExpressionError(f"only figures, + - * / and brackets are allowed; found {ast.dump(node)[:60]}")


def compute(expression: str, scale: str = "") -> Computation:
    """Compute an arithmetic expression over figures (see the module's docstring).

    Raises ``InvalidExpressionError`` for anything but figures, + - * / and brackets, for a division
    by zero, for an expression with no figure, or longer than ``MAX_EXPRESSION_CHARS``."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidExpressionError("the expression is empty")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise InvalidExpressionError(f"the expression has {len(expression)} characters; the limit is {MAX_EXPRESSION_CHARS}")
    if scale not in SCALES:
        raise InvalidExpressionError(f"unknown scale {scale!r}; use one of {', '.join(repr(s) for s in SCALES)}")
    text, operands = _python(expression.strip())
    if not operands:
        raise InvalidExpressionError(f"the expression {expression!r} holds no figure")
    # Only what _python writes may remain: digits, the operators, brackets, dots and spaces. This
    # refuses names, calls and strings before the parser sees them.
    stray = sorted(set(re.sub(r"[\d.+\-*/() ]", "", text)))
    if stray or "**" in text or "//" in text:
        found = "".join(stray) or ("**" if "**" in text else "//")
        raise InvalidExpressionError(f"only figures, + - * / and brackets are allowed; {expression!r} has {found!r}")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise InvalidExpressionError(f"{expression!r} is not a complete arithmetic expression") from None
    value = _value(tree)
    if not math.isfinite(value):
        raise InvalidExpressionError(f"{expression!r} has no finite value")
    return Computation(expression.strip(), operands, value, scale)


def format_figure(value: float, scale: str = "") -> str:
    """A computed value as an answer states it: two decimals at most (TAT-QA's precision), the scale
    after it ("-12.6 million", "-22.22%")."""
    rounded = round(value, 2)
    text = f"{rounded:,.2f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    if scale == "percent":
        return text + "%"
    return f"{text} {scale}" if scale else text
