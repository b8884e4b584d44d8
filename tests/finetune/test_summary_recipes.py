"""The summariser's recipes (finetune/summary_recipes.py): the headliner's data is carved and built as
the summariser reads at inference, from real Reuters-21578 articles."""

from __future__ import annotations

import json

import pytest

import finetune.summary_recipes as recipes
from assistant import Assistant

pytestmark = pytest.mark.slow


def test_headline_pairs_are_built_exactly_as_the_summariser_reads_and_never_from_held_out_articles(
        shared_data, tmp_path, monkeypatch, reuters_headlines):
    monkeypatch.setattr(recipes, "HEADLINE_ARTICLES", 20)
    files = recipes.prepare_headlines(shared_data, tmp_path, progress=False)
    held = [json.loads(line) for line in files["heldout"].read_text().splitlines()]
    pairs = [json.loads(line) for line in files["headlines"].read_text().splitlines()]
    assert len(held) == recipes.HEADLINE_HELD_OUT and 0 < len(pairs) <= 20
    assert {"id", "text", "headline"} <= set(held[0])
    assert not {p["document"] for p in pairs} & {r["id"] for r in held}
    by_id = {r["id"]: r for r in reuters_headlines}
    pipeline = Assistant(audit=False).pipeline("summarize")
    k = pipeline.config["extract"]["headline_sentences"]
    for pair in pairs[:5]:
        text = by_id[pair["document"]]["text"]
        assert pair["input"] == pipeline.headline_source(pipeline.pick(text, k, lead=True)[0])
        assert "<" not in pair["target"] and not pair["target"].isupper()


def test_every_summary_recipe_names_a_known_data_source_and_part():
    from assistant.shipped import SUMMARY_HEADLINER, SUMMARY_REWRITER, SUMMARY_SCORER

    assert {r.part for r in recipes.SUMMARY_RECIPES.values()} == {SUMMARY_SCORER, SUMMARY_REWRITER, SUMMARY_HEADLINER}
    assert {r.data for r in recipes.SUMMARY_RECIPES.values()} == {"ectsum", "reuters"}
