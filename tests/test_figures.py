"""Number extraction and numeric precision (assistant/figures.py)."""

from __future__ import annotations

import pytest

from assistant.figures import extract_numbers, numeric_precision, stated_unit, unstated


# ------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("$1.5bn", 1.5e9),
        ("1.5 billion", 1.5e9),
        ("1,500 million", 1.5e9),
        ("$1,500m", 1.5e9),
        ("1.5B", 1.5e9),
        ("1.5 bln", 1.5e9),
        ("€3.2 million", 3.2e6),
        ("EUR 3.2 mn", 3.2e6),
        ("3.2 mln", 3.2e6),
        ("1.2 trillion", 1.2e12),
        ("3.4k", 3400.0),
        ("3.4 thousand", 3400.0),
        ("12%", 12.0),
        ("12 percent", 12.0),
        ("$0.45", 0.45),
        ("(2.3)", -2.3),
        ("-2.3", -2.3),
        ("2021", 2021.0),
    ],
)
def test_extract_numbers_normalises(text, expected):
    assert extract_numbers(f"Revenue was {text} in the quarter.") == [pytest.approx(expected)]


def test_extract_numbers_in_context():
    text = "Q1 2021 EPS of $1.10, up 7.5% vs. the 4th quarter; guidance $3.00 to $3.25 for 2020-2021."
    assert extract_numbers(text) == pytest.approx([2021, 1.10, 7.5, 3.00, 3.25, 2020, 2021])
    assert extract_numbers("no figures here") == []


def test_numeric_precision():
    source = "Revenue rose to $1.534 billion; EPS was $0.45 and margin 8.3%."
    # 1.5 billion rounds from 1.534 billion, 0.45 is there, 9% is not -> 2/3
    assert numeric_precision("Revenue $1.5bn, EPS $0.45, margin 9%.", source) == pytest.approx(2 / 3)
    assert numeric_precision("Revenue of 1,534 million and EPS 0.45.", source) == pytest.approx(1.0)
    assert numeric_precision("Revenue of $1.6 billion.", source) == 0.0
    assert numeric_precision("Revenue rose.", source) is None
    assert numeric_precision("Margin fell 8.3%.", "margin of (8.3)%") == 1.0  # signs are ignored


def test_unstated_figures_must_be_the_sources_own():
    source = "Net profit/(loss) after tax | (9,819) | 6,639 | (248%)\nLess: interest income | (8,220) | (5,778) | 42%"
    assert unstated(["6,639", "$(9,819)", "-5,778", "42%", "9819"], source) == []
    assert unstated(["6,778", "6,640", "6.6", "248.1%", "n/a"], source) == ["6,778", "6,640", "6.6", "248.1%", "n/a"]
    # Copied without its scale word, as a calculation writes it.
    assert unstated(["41.8", "$41.8", "41,800,000", "5.7"], "credits of approximately $41.8 million and $5.7m") == []


@pytest.mark.parametrize("text, unit", [
    ("The table below presents total net sales disaggregated by contract type (in millions):", "million"),
    ("| $'000 | $'000", "thousand"),
    ("Amounts in thousands, except per share data", "thousand"),
    ("Revenue US$m 1,234", "million"),
    ("(in billions) 2019 2018", "billion"),
    (" | RMB\u2019Million | RMB\u2019Million", "million"),
    ("The company\u2019s million users", ""),
    ("We sold 5 m units and hired 300 people.", ""),
    ("in millions, except where noted; the facility is 40,000 square feet (in thousands of dollars below)", "million"),
])
def test_the_unit_a_document_states_for_its_figures(text, unit):
    assert stated_unit(text) == unit
