"""Training data for extract-then-rewrite summaries, from ECTSum (transcript -> bullet lines), and for
the headliner, from Reuters-21578 (article -> headline; at the end of this file).

ECTSum gives each earnings call a handful of reference lines ("q1 revenue rose 11.1 percent to
$481.1 million.") but no link to the sentences they came from. ``align`` supplies it, as the
ECTSum paper's ECT-BPS did, by similarity plus figures:

* every transcript sentence S is scored against a reference line L as
  ``ROUGE-2 recall + 0.5 * ROUGE-1 recall + share of L's figures that S states``
  (ROUGE over rouge-score's tokens with its Porter stemmer; figures compared by
  ``assistant.figures``, so "11.1%" supports "11.1 percent");
* the best sentence is L's source; if L has figures it does not cover, the sentence among the
  next best that covers the most of the rest is added (a line may join two sentences);
* the scorer's positives ("key") are the sources of any line whose best score reaches
  ``MIN_SCORE``; every other sentence is "other";
* a rewrite pair (source sentence(s) -> L) is kept only when its sources state every figure
  of L, so the rewriter is never taught to write a figure it was not given.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from assistant.figures import _parse, _supported
from assistant.sentences import sentence_spans

#: Below this alignment score a reference line has no source in the transcript (a figure or a
#: phrase the call never states): it labels nothing and makes no pair.
MIN_SCORE = 0.5
KEY, OTHER = "key", "other"


@lru_cache(maxsize=1)
def _tokenizer():
    from rouge_score import tokenizers

    return tokenizers.DefaultTokenizer(use_stemmer=True)


@lru_cache(maxsize=200_000)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_tokenizer().tokenize(text))


def _grams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(zip(*(tokens[i:] for i in range(n))))


def _recall(reference: Counter, candidate: Counter) -> float:
    total = sum(reference.values())
    return sum((reference & candidate).values()) / total if total else 0.0


@dataclass
class Alignment:
    """One transcript aligned with its reference lines."""

    sentences: list[str]
    #: Per reference line: the indices of its source sentences (empty: no source found).
    sources: list[list[int]]
    lines: list[str]
    #: Per reference line: whether its sources state all its figures.
    faithful: list[bool]

    @property
    def key(self) -> set[int]:
        return {i for s in self.sources for i in s}


def align(transcript: str, summary: str) -> Alignment:
    sentences = [s.text for s in sentence_spans(transcript)]
    toks = [_tokens(s) for s in sentences]
    uni = [_grams(t, 1) for t in toks]
    bi = [_grams(t, 2) for t in toks]
    nums = [_parse(s) for s in sentences]
    lines = [line.strip() for line in summary.splitlines() if line.strip()]
    sources: list[list[int]] = []
    faithful: list[bool] = []
    for line in lines:
        lt = _tokens(line)
        l1, l2, ln = _grams(lt, 1), _grams(lt, 2), _parse(line)

        def covered(idx: int) -> list[bool]:
            return [_supported(n, nums[idx], 0.005) for n in ln]

        scores = []
        for i in range(len(sentences)):
            cover = covered(i)
            share = sum(cover) / len(cover) if cover else 0.0
            scores.append(_recall(l2, bi[i]) + 0.5 * _recall(l1, uni[i]) + share)
        if not scores:
            sources.append([])
            faithful.append(False)
            continue
        order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
        best = order[0]
        if scores[best] < MIN_SCORE:
            sources.append([])
            faithful.append(False)
            continue
        chosen = [best]
        missing = [not c for c in covered(best)]
        if any(missing):
            def adds(j: int) -> int:
                return sum(m and c for m, c in zip(missing, covered(j)))

            second = max(order[1:20], key=adds, default=None)
            if second is not None and adds(second) > 0:
                chosen = sorted([best, second])
                missing = [m and not c for m, c in zip(missing, covered(second))]
        sources.append(chosen)
        faithful.append(not any(missing))
    return Alignment(sentences, sources, lines, faithful)


def sentence_rows(records: Sequence[dict], negatives_per_positive: int | None = 6, seed: int = 0) -> list[dict]:
    """Scorer training rows ``{text, label, document}``: every key sentence, and (when
    ``negatives_per_positive`` is set) that many "other" sentences per key one from the same call,
    drawn at random with ``seed`` (all of a call's sentences when None)."""
    rng = random.Random(seed)
    rows: list[dict] = []
    for record in records:
        a = align(record["transcript"], record["summary"])
        key = a.key
        others = [i for i in range(len(a.sentences)) if i not in key]
        if negatives_per_positive is not None:
            others = rng.sample(others, min(len(others), negatives_per_positive * max(len(key), 1)))
        doc = str(record.get("id", ""))
        rows += [{"text": a.sentences[i], "label": KEY, "document": doc} for i in sorted(key)]
        rows += [{"text": a.sentences[i], "label": OTHER, "document": doc} for i in sorted(others)]
    return rows


def rewrite_pairs(records: Sequence[dict]) -> list[dict]:
    """Rewriter training pairs ``{input, target, document}``: the source sentence(s) of each
    reference line (one per line) and the line, where the sources state all its figures."""
    pairs: list[dict] = []
    for record in records:
        a = align(record["transcript"], record["summary"])
        for line, src, ok in zip(a.lines, a.sources, a.faithful):
            if src and ok:
                pairs.append({"input": "\n".join(a.sentences[i] for i in src), "target": line,
                              "document": str(record.get("id", ""))})
    return pairs


# ------------------------------------------------------------------------------ headlines
# Reuters-21578 headlines are in capitals ("STANDARD OIL <SRD> TO FORM FINANCIAL UNIT") and name the
# company's ticker, which the article body never states. The headliner is taught headlines as a
# reader wants them: in the case the article itself writes each word ("Standard Oil to form
# financial unit"), with no ticker, so it never learns to write a symbol it was not given.

_TICKER = re.compile(r"\s*<[^<>]*>")
_WORD = re.compile(r"[A-Za-z][A-Za-z.'&-]*")


def headline_target(headline: str, text: str) -> str:
    """``headline`` without tickers and in the article's own case: a word in lower case where ``text``
    writes it so (other than at the start of a sentence), else as ``text`` most often writes it, else
    in lower case; the first letter capital."""
    forms: dict[str, Counter] = {}
    for m in _WORD.finditer(text):
        before = text[:m.start()].rstrip()
        if not before or before[-1] in ".!?\n":
            continue  # a sentence's first word is capitalised whatever it is
        forms.setdefault(m[0].lower(), Counter())[m[0]] += 1

    def cased(m: re.Match) -> str:
        seen = forms.get(m[0].lower())
        return m[0].lower() if not seen or m[0].lower() in seen else seen.most_common(1)[0][0]

    cleaned = " ".join(_TICKER.sub(" ", headline).split())
    out = _WORD.sub(cased, cleaned.lower() if cleaned.isupper() else cleaned)
    out = re.sub(r"\b(\d+)(ST|ND|RD|TH)\b", lambda m: m[1] + m[2].lower(), out)
    return out[:1].upper() + out[1:]


def headline_pairs(records: Sequence[dict], source_of) -> list[dict]:
    """Headliner training pairs ``{input, target, document}``: what the summariser writes a headline
    from (``source_of(text)``: ``SummarizePipeline.headline_source`` of its picks) and the record's
    headline as ``headline_target`` gives it. Records whose headline is left empty are skipped."""
    pairs = []
    for record in records:
        target = headline_target(record["headline"], record["text"])
        if target:
            pairs.append({"input": source_of(record["text"]), "target": target, "document": str(record.get("id", ""))})
    return pairs
