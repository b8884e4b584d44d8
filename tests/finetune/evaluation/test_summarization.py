"""Summarisation scoring (finetune/evaluation/summarization.py): sentence splitting, ROUGE bounds on
real ECTSum data, LEAD-3, and the side-by-side reports."""

from __future__ import annotations

import json

import pytest

from finetune.evaluation import SummarizationEvaluator, compare_markdown, lead_n, save_reports, split_sentences


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------- sentences


def test_lead_n_keeps_decimals_and_abbreviations():
    text = ("Acme Inc. reported revenue of $1.5 billion. Mr. Smith said margins rose 3.2% in the U.S. market. "
            "Costs fell. Guidance was raised.")
    assert split_sentences(text) == [
        "Acme Inc. reported revenue of $1.5 billion.",
        "Mr. Smith said margins rose 3.2% in the U.S. market.",
        "Costs fell.",
        "Guidance was raised.",
    ]
    assert lead_n(text, 3).splitlines() == split_sentences(text)[:3]
    assert lead_n("One.\nTwo. Three.\nFour.", 2) == "One.\nTwo."
    with pytest.raises(ValueError):
        lead_n(text, 0)


# ---------------------------------------------------------------------- ROUGE


def test_rouge_identical_and_disjoint():
    ev = SummarizationEvaluator()
    same = ev(["revenue grew ten percent"], ["revenue grew ten percent"])
    assert (same.rouge1, same.rouge2, same.rougeL) == (pytest.approx(1.0),) * 3
    apart = ev(["alpha beta gamma"], ["delta epsilon zeta"])
    assert (apart.rouge1, apart.rouge2, apart.rougeL) == (0.0, 0.0, 0.0)
    assert apart.numeric_precision is None and apart.words_mean == 3.0


def test_summarization_bad_inputs():
    ev = SummarizationEvaluator()
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        ev(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="empty"):
        ev([], [])
    with pytest.raises(ValueError, match="sources"):
        ev(["a"], ["a"], sources=["x", "y"])
    with pytest.raises(ValueError, match="rouge_types"):
        SummarizationEvaluator(rouge_types=["rouge9"])


def test_lead3_on_real_ectsum(ectsum_val, tmp_path):
    rows = ectsum_val[:3]
    sources = [r["transcript"] for r in rows]
    refs = [r["summary"] for r in rows]
    ids = [r["id"] for r in rows]
    ev = SummarizationEvaluator()
    lead = ev([lead_n(s, 3) for s in sources], refs, sources=sources, ids=ids, system="LEAD-3")
    assert 0.05 < lead.rouge1 < 0.6
    assert 0.0 <= lead.rouge2 <= lead.rouge1
    # Every number of a lead is copied from its transcript.
    assert lead.numeric_precision in (None, pytest.approx(1.0))
    assert [e["id"] for e in lead.per_example] == ids
    oracle = ev(refs, refs, sources=sources, ids=ids, system="reference")
    assert oracle.rouge1 == pytest.approx(1.0)

    table = compare_markdown([lead, oracle])
    assert table.count("\n") == 4 and "| LEAD-3 |" in table and "| reference |" in table
    paths = save_reports([lead, oracle], tmp_path)
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    data = json.loads(paths["json"].read_text())
    assert [r["system"] for r in data["reports"]] == ["LEAD-3", "reference"]
    assert "LEAD-3" in paths["md"].read_text()
