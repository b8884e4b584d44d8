"""Sentences of a text with where each one lies in it: what the summariser scores and cites, and
what the evaluators' LEAD-n baseline takes.

Written here rather than taken from nltk/spaCy: their sentence models are downloads (punkt) or a
large dependency, and financial text needs only the rules below, tested on ECTSum and Reuters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Tokens ending in "." that do not end a sentence (compared lower-case).
_ABBREVIATIONS = frozenset([
    "inc.", "corp.", "co.", "ltd.", "llc.", "plc.", "mr.", "mrs.", "ms.", "dr.", "prof.", "sr.", "jr.", "st.",
    "vs.", "etc.", "e.g.", "i.e.", "approx.", "no.", "fig.", "dept.", "est.",
    "jan.", "feb.", "mar.", "apr.", "jun.", "jul.", "aug.", "sep.", "sept.", "oct.", "nov.", "dec.",
])
#: A sentence-ending punctuation run, optional closing quotes/brackets, then whitespace.
_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*\s+")
_LINE = re.compile(r"[^\r\n]+")


@dataclass(frozen=True)
class Sentence:
    """One sentence: its text (stripped) and its character span in the source (``source[start:end]``)."""

    text: str
    start: int
    end: int
    #: Its position among the document's sentences (0 = first).
    index: int = 0


def sentence_spans(text: str) -> list[Sentence]:
    """The sentences of ``text`` with their spans.

    Line breaks always end one (ECTSum transcripts put one sentence per line); inside a line,
    ``.!?`` followed by whitespace and an upper-case letter, digit or quote ends one, unless the
    word before is an abbreviation ("Inc.", "Mr.") or an initial. Decimals ("1.5") never split:
    no whitespace follows their dot."""
    spans: list[tuple[int, int]] = []
    for line in _LINE.finditer(text):
        offset, body = line.start(), line.group()
        start = 0
        for m in _BOUNDARY.finditer(body):
            end = m.end()
            if end >= len(body):
                break
            nxt = body[end]
            if not (nxt.isupper() or nxt.isdigit() or nxt in "\"'“‘([$€£"):
                continue
            word = body[start:m.start() + 1].rsplit(None, 1)[-1].lower()
            if word in _ABBREVIATIONS or re.fullmatch(r"(?:[a-z]\.)+", word):  # "Inc.", "J.", "U.S."
                continue
            spans.append((offset + start, offset + m.end()))
            start = end
        spans.append((offset + start, offset + len(body)))
    sentences: list[Sentence] = []
    for start, end in spans:
        raw = text[start:end]
        stripped = raw.strip()
        if stripped:
            lead = len(raw) - len(raw.lstrip())
            begin = start + lead
            sentences.append(Sentence(stripped, begin, begin + len(stripped), len(sentences)))
    return sentences


def split_sentences(text: str) -> list[str]:
    """The sentences of ``text`` (see ``sentence_spans``), as strings."""
    return [s.text for s in sentence_spans(text)]
