"""The safe evaluator of grounded answers' calculations (assistant/calculator.py), on TAT-QA dev's
own derivations and on expressions that must be refused."""

from __future__ import annotations

import pytest

from assistant.calculator import MAX_EXPRESSION_CHARS, InvalidExpressionError, compute, format_figure
from assistant.errors import InvalidParameterError


@pytest.fixture(scope="module")
def arithmetic(data_file, read_jsonl) -> list[dict]:
    return [r for r in read_jsonl(data_file("qa", "tatqa", "dev.jsonl")) if r["answer_type"] == "arithmetic"]


def test_tatqa_derivations_compute_to_their_answers(arithmetic):
    """Each derivation as written, or times 100 for a percentage: 98% of the 718 give the annotated
    answer (the rest are annotation slips such as "3 + (13) + 26" for 16, or mix scales in words)."""
    right = 0
    for record in arithmetic:
        try:
            value = compute(record["derivation"]).value
        except InvalidExpressionError:
            continue
        answer = float(record["answer"])
        right += abs(round(value, 2) - answer) < 0.006 or abs(round(value * 100, 2) - answer) < 0.006
    assert len(arithmetic) == 718
    assert right / len(arithmetic) >= 0.98


@pytest.mark.parametrize(("expression", "value", "operands"), [
    ("(44.1 - 56.7) / 56.7 * 100", -22.2222, ("44.1", "56.7", "56.7", "100")),
    ("[(4,411 + 4,044) / 2] - [(4,044 + 3,316) / 2]", 547.5, ("4,411", "4,044", "2", "4,044", "3,316", "2")),
    ("53% * $23,406", 12405.18, ("53%", "$23,406")),
    ("$(290.2 + 239.6 + 190.4)", 720.2, ("290.2", "239.6", "190.4")),
    ("-114 - -71", -43.0, ("114", "71")),
    (".5 + 1", 1.5, (".5", "1")),
])
def test_figures_as_documents_write_them(expression, value, operands):
    result = compute(expression, "million")
    assert result.value == pytest.approx(value, abs=1e-3)
    assert result.operands == operands and result.scale == "million"
    assert result.to_dict()["result"] == format_figure(value, "million")


@pytest.mark.parametrize("expression", [
    '__import__("os").system("id")', "open('x')", "2 ** 1000", "7 // 2", "1 if 1 else 2", "[1, 2]",
    "x + 1", "1; 2", "(1 + 2", "1 +", "lambda: 1", "1e308 * 10", "3 % 2",
])
def test_anything_but_arithmetic_over_figures_is_refused(expression):
    with pytest.raises(InvalidExpressionError):
        compute(expression)


def test_refusals_name_the_problem():
    with pytest.raises(InvalidExpressionError, match="divides by zero"):
        compute("5 / (2 - 2)")
    with pytest.raises(InvalidExpressionError, match="holds no figure"):
        compute("abc")
    with pytest.raises(InvalidExpressionError, match="empty"):
        compute("  ")
    with pytest.raises(InvalidExpressionError, match=f"limit is {MAX_EXPRESSION_CHARS}"):
        compute("1 + " * 100 + "1")
    with pytest.raises(InvalidExpressionError, match="unknown scale"):
        compute("1 + 1", "dozens")
    assert issubclass(InvalidExpressionError, InvalidParameterError)  # a 4xx / a CLI line, never a traceback


@pytest.mark.parametrize(("value", "scale", "text"), [
    (-12.6, "million", "-12.6 million"), (-22.22222, "percent", "-22.22%"), (1234567.891, "", "1,234,567.89"),
    (-0.001, "", "0"), (3.0, "thousand", "3 thousand"), (0.1 + 0.2, "", "0.3"),
])
def test_results_are_written_with_two_decimals_and_their_scale(value, scale, text):
    assert format_figure(value, scale) == text
