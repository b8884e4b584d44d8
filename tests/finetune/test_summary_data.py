"""Aligning ECTSum reference lines with transcript sentences on real calls, and Reuters headline pairs
(finetune/summary_data.py)."""

from __future__ import annotations

import re

from assistant.figures import numeric_precision
from finetune.summary_data import KEY, OTHER, align, headline_pairs, headline_target, rewrite_pairs, sentence_rows
from finetune.summary_recipes import HEADLINE_ARTICLES, HEADLINE_HELD_OUT, headline_split


def test_each_line_finds_the_sentence_that_states_its_figures(ectsum_val):
    lines = faithful = 0
    for record in ectsum_val[:20]:
        a = align(record["transcript"], record["summary"])
        assert len(a.sources) == len(a.lines) == len(a.faithful)
        for line, sources, ok in zip(a.lines, a.sources, a.faithful):
            lines += 1
            assert len(sources) <= 2 and all(0 <= i < len(a.sentences) for i in sources)
            if ok and sources:
                faithful += 1
                assert numeric_precision(line, " ".join(a.sentences[i] for i in sources)) in (None, 1.0)
    # most ECTSum lines restate figures said in the call (measured: 813 of 1003 val lines)
    assert faithful / lines > 0.7


def test_rewrite_pairs_never_teach_an_unstated_figure(ectsum_val):
    pairs = rewrite_pairs(ectsum_val[:10])
    assert len(pairs) >= 20
    for pair in pairs:
        assert numeric_precision(pair["target"], pair["input"]) in (None, 1.0)


def test_sentence_rows_sample_negatives_from_the_same_call(ectsum_val):
    rows = sentence_rows(ectsum_val[:5], negatives_per_positive=3, seed=0)
    keys = [r for r in rows if r["label"] == KEY]
    others = [r for r in rows if r["label"] == OTHER]
    assert keys and len(others) <= 3 * len(keys) + 5
    assert {r["document"] for r in rows} == {str(r["id"]) for r in ectsum_val[:5]}
    assert rows == sentence_rows(ectsum_val[:5], negatives_per_positive=3, seed=0)  # seeded


def test_headline_targets_take_the_articles_case_and_drop_tickers(reuters_headlines):
    by_id = {r["id"]: r for r in reuters_headlines}
    standard_oil = by_id["reuters_2"]
    assert standard_oil["headline"] == "STANDARD OIL <SRD> TO FORM FINANCIAL UNIT"
    target = headline_target(standard_oil["headline"], standard_oil["text"])
    assert target.startswith("Standard Oil to form") and "<" not in target and "SRD" not in target
    assert headline_target("OHIO MATTRESS <OMT> MAY HAVE LOWER 1ST QTR NET", by_id["reuters_12"]["text"]) == \
        "Ohio Mattress may have lower 1st qtr net"
    # headlines that are only a ticker make no pair; the others keep their words, in order
    pairs = headline_pairs(reuters_headlines[:200], lambda text: text[:50])
    kept = [r for r in reuters_headlines[:200] if headline_target(r["headline"], r["text"])]
    assert len(pairs) == len(kept) and all(p["input"] for p in pairs)
    for pair, record in zip(pairs, kept):
        words = " ".join(re.sub(r"<[^<>]*>", " ", record["headline"]).split()).lower()
        assert pair["target"].lower() == words


def test_the_headline_split_holds_500_articles_out_whole(reuters_headlines):
    held, chosen = headline_split(reuters_headlines)
    assert len(held) == HEADLINE_HELD_OUT == 500 and len(chosen) == HEADLINE_ARTICLES
    assert not {r["id"] for r in held} & {r["id"] for r in chosen}
    assert headline_split(reuters_headlines) == (held, chosen)  # the same draw every time
