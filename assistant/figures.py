"""Numbers in financial text, normalised so that "$1.5bn", "1.5 billion" and "1,500 million"
compare equal, and the share of a summary's numbers that its source supports (a cheap check
for invented figures, which ROUGE does not catch)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SCALES = {
    "trillion": 1e12, "tn": 1e12, "trn": 1e12, "t": 1e12,
    "billion": 1e9, "bn": 1e9, "bln": 1e9, "b": 1e9,
    "million": 1e6, "mn": 1e6, "mln": 1e6, "mm": 1e6, "m": 1e6,
    "thousand": 1e3, "k": 1e3,
}

_NUMBER = re.compile(
    r"""
    (?<![\w.])                                   # not inside a word, code (Q1) or another number
    (?P<open>\(\s*)?
    (?P<sign>[-+\u2212])?
    (?:(?:US\$|[$€£¥]|(?:USD|EUR|GBP|JPY|CHF|SEK|CAD|AUD)\s?)\s?)?   # currency, dropped
    (?P<sign2>[-\u2212])?
    (?<![\w.])
    (?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)
    (?!\d)
    (?:\s?(?P<word>trillion|billion|million|thousand|trn|tn|bln|bn|mln|mn|mm)\b
       |(?P<letter>[tbmk])\b)?                    # one-letter scales only when attached: 1.5B, $3m
    (?:\s?(?P<pct>%|percent\b|per\s?cent\b|pct\b))?
    (?P<close>\s*\))?
    (?!\w)                                        # not an ordinal or code: 4th, 5G, 10x
    """,
    re.IGNORECASE | re.VERBOSE,
)


#: A year as tables title their columns ("2019", "Fiscal 2019", "2019 €m", "April 27, 2019").
YEAR = re.compile(r"\b(?:19|20)\d\d\b")

#: A figure's digits as written, without sign, currency or scale word ("$41.8 million" -> "41.8").
FIGURE_DIGITS = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")


@dataclass(frozen=True)
class _Number:
    value: float
    #: The unit of the last digit shown ("1.5 billion" -> 1e8): how far rounding may move it.
    quantum: float


def _parse(text: str) -> list[_Number]:
    out = []
    for m in _NUMBER.finditer(text):
        digits = m["num"].replace(",", "")
        decimals = len(digits.split(".")[1]) if "." in digits else 0
        scale = 1.0
        if not m["pct"]:
            suffix = (m["word"] or m["letter"] or "").lower()
            scale = _SCALES.get(suffix, 1.0)
        value = float(digits) * scale
        signs = (m["sign"] or "") + (m["sign2"] or "")
        # A minus sign, or accounting parentheses: (2.3).
        negative = "-" in signs or "\u2212" in signs or bool(m["open"] and m["close"])
        out.append(_Number(-value if negative else value, 10.0 ** -decimals * scale))
    return out


def extract_numbers(text: str) -> list[float]:
    """The numbers in ``text``, in order, as floats in base units.

    Rules:

    * digits with optional thousands commas and decimals: ``1,500``, ``0.45``, ``.5``;
    * a scale word after the number multiplies it: trillion/tn/trn (1e12), billion/bn/bln
      (1e9), million/mn/mln/mm (1e6), thousand (1e3), with or without a space; one-letter
      scales T/B/M/K only when attached (``1.5B``, ``$1,500m``, ``3.4k``), so "5 m" stays 5;
    * currency before the number ($, €, £, ¥, US$, USD/EUR/GBP/...) is dropped;
    * percentages keep their number: ``12%``, ``12 percent``, ``12 per cent`` -> 12.0 (no scale);
    * a leading ``-``/``−`` or accounting parentheses ``(2.3)`` make it negative; a hyphen
      joined to a word or number is not a sign (``2020-2021`` -> 2020, 2021);
    * digits glued to letters are not numbers: ``Q1``, ``4th``, ``5G``, ``10x``;
    * years and other integers are plain numbers; spelled-out numbers ("two") are not read.
    """
    return [n.value for n in _parse(text)]


def _supported(number: _Number, source: list[_Number], rel_tol: float) -> bool:
    target = abs(number.value)
    half = number.quantum / 2 * (1 + 1e-9)
    for s in source:
        v = abs(s.value)
        # Within tolerance, or the source number rounded to the digits the output shows.
        if math.isclose(v, target, rel_tol=rel_tol, abs_tol=1e-12) or abs(v - target) <= half:
            return True
    return False


def numeric_precision(output: str, source: str, rel_tol: float = 0.005) -> float | None:
    """Share of the numbers in ``output`` that ``source`` contains; None when ``output`` has none.

    A number is supported when a source number equals it within ``rel_tol``, or rounds to it at
    the precision the output shows (source 1.534 billion supports "1.5 billion"; an output of
    "$2 billion" is supported by any source figure from 1.5 to 2.5 billion). Signs are ignored: prose states direction in words
    ("fell 5%") where the source may write -5% or (5). Each occurrence in ``output`` counts.
    """
    return stated_share(figures_of(output), figures_of(source), rel_tol)


def figures_of(text: str) -> list[_Number]:
    """The numbers ``text`` states (values with their scale), for ``stated_share``."""
    return _parse(text)


def stated_share(numbers: list[_Number], pool: list[_Number], rel_tol: float = 0.005) -> float | None:
    """Share of ``numbers`` that ``pool`` states (as ``numeric_precision`` counts); None when there
    are none."""
    if not numbers:
        return None
    return sum(_supported(n, pool, rel_tol) for n in numbers) / len(numbers)


def unstated(figures: list[str], source: str) -> list[str]:
    """The ``figures`` (each as written, such as an expression's operands "$1,452.4" or "15%") whose
    value ``source`` does not state exactly (signs ignored: "(9,819)" states 9,819). Stricter than
    ``numeric_precision``: a figure copied into a calculation must be the source's own, not a rounding.
    A figure may be copied without its scale word ("41.8" from "$41.8 million")."""
    stated = {abs(n.value) for n in _parse(source)}
    stated |= {float(m.replace(",", "")) for m in FIGURE_DIGITS.findall(source)}
    out = []
    for figure in figures:
        values = [abs(n.value) for n in _parse(figure)]
        if not values or not any(math.isclose(v, s, rel_tol=1e-9, abs_tol=1e-12) for v in values for s in stated):
            out.append(figure)
    return out


#: How documents state the unit their figures are counted in: "(in millions)", "$'000", "$m".
_UNIT_STATEMENTS = (
    ("thousand", r"\bin thousands\b|\(thousands\)|\bthousands of\b|['\u2018\u2019]000|\$\s?000s?\b|\bin \$?000s?\b"),
    ("million", r"\bin millions\b|\(millions\)|\bmillions of\b|\bin million\b"
                r"|(?:\$|€|£|¥|\bUS\$|\bRMB)\s?(?:m|mn|mln)\b"
                r"|\(\s?(?:\$|€|£)?\s?millions?\s?\)|(?:\$|€|£)\s?millions?\b|['\u2018\u2019]\s?millions?\b"),
    ("billion", r"\bin billions\b|\(billions\)|\bbillions of\b|(?:\$|€|£|¥|\bUS\$)\s?(?:bn|bln)\b"),
)
_UNIT = re.compile("|".join(f"(?P<{unit}>{pattern})" for unit, pattern in _UNIT_STATEMENTS), re.IGNORECASE)


def stated_unit(text: str) -> str:
    """The unit a document says its figures are counted in ("thousand", "million", "billion"), the
    first it states; "" when it states none. A table's figures are written bare ("1,452.4") under a
    caption such as "(in millions)" or a header cell "$'000": this is how an answer copied or computed
    from them gets its scale."""
    match = _UNIT.search(text)
    return match.lastgroup if match else ""
