"""TAT-QA's exact match and numeracy-focused F1 (Zhu et al., ACL 2021, section 5.1).

Written from the paper's definition and the behaviour of its evaluation script, because no kept
package ships them (``evaluate`` has SQuAD and DROP-style F1, not TAT-QA's scale handling):

- The gold answer is the sorted list of its spans (a span or multi-span question), or the number (an
  arithmetic or count question). Each part is written as one string: a number as ``%.4f`` of its value
  rounded to 2 decimals times its scale (so "-12.6" in millions is ``-12600000.0000``); text is
  followed by the scale word when there is one. A predicted answer is written the same way with the
  predicted scale, so a wrong scale makes a number wrong.
- Both strings are normalised token by token: lower case, punctuation removed (except in numbers),
  numbers as their value, articles dropped.
- Exact match: the two token lists are equal as multisets. F1: the token-level F1 of the two bags.
  For arithmetic and count questions F1 equals exact match (a number is right or wrong).
- A lone number predicted without a scale also counts as its plain value ("0.2342" may match
  "23.42" percent).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_SCALE_WORDS = (("hundred", 100.0), ("thousand", 1e3), ("million", 1e6), ("billion", 1e9), ("percent", 0.01))
_NUMBER_NOISE = str.maketrans("", "", "'\"\\$€£¥%(),[]")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?|[+-]?\.\d+")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def scale_factor(scale: str) -> float:
    """What one unit of ``scale`` is worth ("million" -> 1e6; "" -> 1)."""
    scale = (scale or "").lower()
    return next((value for word, value in _SCALE_WORDS if word in scale), 1.0)


def is_number(text: str) -> bool:
    """Whether ``text`` is a number, optionally followed by a scale word ("1,234", "(5.2)", "3 million")."""
    words = " ".join(w.translate(_NUMBER_NOISE) for w in str(text).split()).split()
    if not words:
        return False
    try:
        value = float(words[0])
    except ValueError:
        return False
    if value != value:  # NaN
        return False
    return len(words) < 2 or scale_factor(words[1]) != 1.0


def to_number(text: str) -> float | None:
    """The value of a number as documents write it: "(134)" is negative, "12%" a hundredth, "1.5
    million" scaled; None when there is no number."""
    text = str(text)
    match = _NUMBER.search(text.translate(_NUMBER_NOISE))
    if not match:
        return None
    value = float(match.group(0))
    word = re.search(r"[\d.]+\s?([a-zA-Z]+)", text)
    if word:
        value *= scale_factor(word.group(1))
    if re.search(r"\([\d.\s,]+\)", text.strip()):
        value = -value
    if re.search(r"[\d.\s]+%", text.strip()):
        value *= 0.01
    return round(value, 4)


def _normalise_token(token: str) -> str:
    token = token.lower()
    if not is_number(token):
        token = "".join(ch for ch in token if ch not in string.punctuation)
    elif (value := to_number(token)) is not None:
        token = str(value)
    return " ".join(_ARTICLES.sub(" ", token).split())


def normalise(text: str) -> list[str]:
    """The answer's tokens as the metric compares them."""
    return [part for token in str(text).split(" ") if (part := _normalise_token(token))]


def answer_string(answers: Sequence[str], scale: str) -> str:
    """An answer (its parts) written as one string with its scale (see the module's docstring)."""
    parts = []
    for answer in sorted(str(a) for a in answers):
        value = to_number(answer) if is_number(answer) else None
        if value is None:
            parts.append(f"{answer} {scale}" if scale else answer)
        elif "%" in answer:
            parts.append("%.4f" % value)
        else:
            parts.append("%.4f" % (round(value, 2) * scale_factor(scale)))
    return " ".join(parts)


def gold_answers(record: dict) -> list[str]:
    """A TAT-QA record's answer as a list of strings."""
    kind, answer = record.get("answer_type"), record.get("answer")
    if kind in ("span", "multi-span"):
        return [str(a) for a in (answer if isinstance(answer, list) else [answer])]
    if kind == "count":
        return [str(int(float(answer)))]
    return [str(answer)]


def _f1(predicted: list[str], gold: list[str]) -> float:
    common = sum((Counter(predicted) & Counter(gold)).values())
    if not predicted and not gold:
        return 1.0
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def em_f1(record: dict, prediction: Sequence[str] | str | None, scale: str = "") -> tuple[float, float]:
    """Exact match and F1 of ``prediction`` (its parts, or one string) with ``scale`` against a TAT-QA
    record; (0, 0) for no prediction."""
    if prediction is None or prediction == "" or prediction == []:
        return 0.0, 0.0
    parts = [prediction] if isinstance(prediction, str) else [str(p) for p in prediction]
    candidates = [answer_string(parts, scale)]
    if len(parts) == 1 and not scale and "%" not in parts[0] and is_number(parts[0]):
        value = to_number(parts[0])
        if value is not None:
            candidates.append("%.4f" % value)
    gold = normalise(answer_string(gold_answers(record), record.get("scale") or ""))
    em = f1 = 0.0
    for candidate in candidates:
        tokens = normalise(candidate)
        em = max(em, float(Counter(tokens) == Counter(gold)))
        f1 = max(f1, _f1(tokens, gold))
    if record.get("answer_type") in ("arithmetic", "count"):
        f1 = em
    return em, f1
