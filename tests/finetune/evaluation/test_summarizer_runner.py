"""``finassist eval summarize`` (finetune/evaluation/summarizer_runner.py): LEAD-3, the extractive
picks, extract-then-rewrite and the chunked path, the base model zero-shot and the fine-tuned run,
side by side on real ECTSum pairs with the tiny models, each summary made the way a user's
``Assistant.summarize`` makes it."""

from __future__ import annotations

import json

import pytest

from assistant import Assistant
from assistant.errors import InvalidParameterError
from finetune.evaluation.summarizer_runner import evaluate_summarizer


def test_evaluate_compares_lead3_zero_shot_and_fine_tuned(gpt2_run, tiny_gpt2_dir, pairs_file, tmp_path, pairs):
    reports = evaluate_summarizer(str(gpt2_run), str(pairs_file), limit=2, max_words=10, out=str(tmp_path),
                                  device="cpu", methods="chunked")
    assert [r.system for r in reports] == ["LEAD-3", f"chunked zero-shot {tiny_gpt2_dir}",
                                           f"chunked fine-tuned {gpt2_run}"]
    assert all(r.n == 2 for r in reports)
    lead = reports[0]
    assert lead.rouge1 > 0.1  # the first sentences of a call share words with its summary
    assert lead.per_example[0]["prediction"].splitlines()[0] == pairs[0]["transcript"].splitlines()[0]
    for report in reports[1:]:
        assert report.extra["failures"] == 0 and report.extra["generator"] in (str(tiny_gpt2_dir), str(gpt2_run))
    # What was scored is what a user gets from the same model (greedy decoding: the same text).
    user = Assistant(generator=str(gpt2_run), device="cpu")
    expected = [user.summarize(p["transcript"], style="bullets", max_words=10, method="chunked").text
                for p in pairs[:2]]
    assert [row["prediction"] for row in reports[2].per_example] == expected
    saved = json.loads((tmp_path / "summarization.json").read_text())
    assert [r["system"] for r in saved["reports"]] == [r.system for r in reports]
    assert (tmp_path / "summarization.md").is_file() and (tmp_path / "summarization.png").is_file()
    # Without baselines, only LEAD-3 and the model itself.
    only = evaluate_summarizer(str(gpt2_run), str(pairs_file), limit=1, max_words=10, baselines=False, device="cpu",
                               methods="chunked")
    assert [r.system for r in only] == ["LEAD-3", f"chunked fine-tuned {gpt2_run}"]


def test_extract_is_scored_with_its_picks_and_chunked_on_fewer(tiny_gpt2_dir, pairs_file, pairs):
    """With the default encoder (and its shipped scorer, when there is one) and the tiny GPT-2."""
    reports = evaluate_summarizer(str(tiny_gpt2_dir), str(pairs_file), limit=3, max_words=40, device="cpu",
                                  chunked_limit=1)
    assert [r.system for r in reports] == ["LEAD-3", "extractive picks (no rewrite)", f"extract {tiny_gpt2_dir}",
                                           f"chunked {tiny_gpt2_dir} (first 1)"]
    assert [r.n for r in reports] == [3, 3, 3, 1]
    picks, extract = reports[1], reports[2]
    for row, pair in zip(picks.per_example, pairs):
        # the picks are whole sentences of the call
        assert all(line in pair["transcript"] for line in row["prediction"].splitlines())
    assert extract.extra["method"] == "extract" and extract.extra["failures"] == 0
    # every figure a bullet shows is stated in the call
    assert extract.numeric_precision in (None, 1.0)


@pytest.mark.parametrize("option", [{"methods": "extract,abstractive"}, {"backends": "onnx,vllm"}, {"backends": " , "}])
def test_unknown_methods_or_backends_are_refused_before_any_data_is_read(tmp_path, option):
    with pytest.raises(InvalidParameterError, match=f"{next(iter(option))} must name some of"):
        evaluate_summarizer(None, str(tmp_path / "no-such-data.jsonl"), **option)


@pytest.mark.slow
def test_without_adapters_adds_the_plain_generator_on_the_same_picks(reuters_heldout, tmp_path):
    """Headlines of held-out Reuters articles by the default generator: with its shipped headliner,
    and without it (what the adapter adds), in one run."""
    data = tmp_path / "reuters.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in reuters_heldout[:3]))
    reports = evaluate_summarizer("smollm2-135m-instruct", str(data), input_field="text", target_field="headline",
                                  style="headline", methods="extract", without_adapters=True, device="cpu")
    systems = {r.system: r for r in reports}
    assert list(systems) == ["LEAD-3", "extractive picks (no rewrite)", "extract smollm2-135m-instruct",
                             "extract smollm2-135m-instruct without adapters"]
    tuned, plain = systems["extract smollm2-135m-instruct"], systems["extract smollm2-135m-instruct without adapters"]
    assert tuned.extra["fine_tuned_headliner"] and not plain.extra["fine_tuned_headliner"]
    assert [r["prediction"] for r in tuned.per_example] != [r["prediction"] for r in plain.per_example]
