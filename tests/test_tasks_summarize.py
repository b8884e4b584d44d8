"""Summarisation (assistant/tasks/summarize.py) on the tiny models: validation; extract-then-rewrite
(sources, the figure check, any length); and the chunked path: chunking without silent
truncation, map-reduce over long inputs, and the shape of each style's result."""

from __future__ import annotations

import json

import pytest

from assistant.types import Generation
from assistant.errors import EmptyInputError, InvalidParameterError, NotTextError
from assistant.prompts import load_prompt
from assistant.sentences import Sentence
from assistant.tasks.summarize import STYLES, Summary, SummarizePipeline, _Chunked

SHORT = (
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007. "
    "Net sales increased by 5.2 % to EUR 205.5 mn."
)


@pytest.fixture(scope="module")
def task(tiny_engine) -> SummarizePipeline:
    return SummarizePipeline(tiny_engine)


def _words(summary_text: str) -> list[str]:
    return [w for w in summary_text.replace("- ", " ").split() if w != "…"]


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("style", ["poem", "Bullets", "", None])
def test_unknown_style_is_refused(task, style):
    with pytest.raises(InvalidParameterError, match="style"):
        task(SHORT, style=style)


@pytest.mark.parametrize("max_words", [0, 2, 1001, "50", 12.5, True])
def test_max_words_out_of_range_is_refused(task, max_words):
    with pytest.raises(InvalidParameterError, match="max_words"):
        task(SHORT, style="paragraph", max_words=max_words)


@pytest.mark.parametrize("text", ["", "   \n ", b"  "])
def test_empty_text_is_refused(task, text):
    with pytest.raises(EmptyInputError):
        task(text)


def test_non_text_is_refused(task):
    with pytest.raises(NotTextError):
        task(b"\xff\xfe binary")


@pytest.mark.parametrize("style", STYLES)
def test_default_word_budget_comes_from_the_prompt_file(task, style):
    prepared = task.preprocess(SHORT, style=style)
    assert prepared.max_words == load_prompt("summarize")["styles"][style]["default_max_words"]
    assert prepared.text == SHORT


# ------------------------------------------------------------------ chunking


def _assert_chunks_cover(task, text, chunks, budget):
    for chunk in chunks:
        assert chunk.strip()
        assert task.engine.count_tokens(chunk) <= budget, f"chunk of {task.engine.count_tokens(chunk)} tokens"
    # nothing dropped, nothing duplicated, order kept
    assert " ".join(chunks).split() == text.split()


@pytest.mark.parametrize("budget", [150, 400])
def test_split_keeps_every_word_in_order_within_budget(task, shortest_transcript, budget):
    text = shortest_transcript["transcript"]
    chunks = task.split(text, budget)
    assert len(chunks) > 1
    _assert_chunks_cover(task, text, chunks, budget)


def test_split_cuts_an_overlong_sentence_by_words(task, phrasebank):
    # one paragraph, one "sentence" (no . ! ? followed by a space): only word cuts can split it
    text = " ".join(r["sentence"].replace(".", ",") for r in phrasebank[:40])
    assert task.engine.count_tokens(text) > 4 * 100
    chunks = task.split(text, 100)
    _assert_chunks_cover(task, text, chunks, 100)


def test_split_respects_the_budget_for_number_tables(task):
    """A table flattened to text (figures, no sentence ends) costs several tokens per word."""
    row = " ".join(f"{(i * 7919) % 1_000_003:,}" for i in range(300))
    assert task.engine.count_tokens(row) > 3 * len(row.split())  # many tokens per "word"
    chunks = task.split(row, 120)
    _assert_chunks_cover(task, row, chunks, 120)


def test_split_keeps_a_short_text_whole(task):
    assert task.split(SHORT, 400) == [SHORT]


def test_chunk_budget_leaves_room_for_prompt_and_answer(task):
    window = task.engine.context_window
    configured = load_prompt("summarize")["chunking"]["chunk_tokens"]
    for new_tokens in (48, 160, 256):
        budget = task.chunk_budget(new_tokens)
        assert 64 <= budget <= configured
        assert budget + new_tokens <= window


def test_long_text_is_summarised_chunk_by_chunk(task, shortest_transcript):
    text = shortest_transcript["transcript"].strip()
    budget = task.chunk_budget(max(task._final_tokens("bullets", 120), load_prompt("summarize")["map"]["max_new_tokens"]))
    result = task(text, style="bullets", method="chunked")
    assert isinstance(result, Summary) and result.method == "chunked"
    assert result.source_tokens == task.engine.count_tokens(text)
    assert result.source_tokens > budget
    assert result.chunks == len(task.split(text, budget)) > 1
    assert result.style == "bullets" and result.text and result.bullets


def test_short_text_is_summarised_in_one_pass(task):
    result = task(SHORT, style="paragraph", max_words=20, method="chunked")
    assert result.chunks == 1
    assert result.source_tokens == task.engine.count_tokens(SHORT)
    assert result.seconds >= 0


# ------------------------------------------------------- styles (end to end)


@pytest.mark.parametrize("method", ["extract", "chunked"])
@pytest.mark.parametrize("max_words", [5, 40])
def test_bullets_result_shape(task, max_words, method):
    result = task(SHORT, style="bullets", max_words=max_words, method=method)
    assert result.style == "bullets" and result.method == method
    assert result.bullets
    assert result.text == "\n".join(f"- {b.text}" for b in result.bullets)
    assert len(_words(result.text)) <= max_words


@pytest.mark.parametrize("method", ["extract", "chunked"])
@pytest.mark.parametrize("max_words", [3, 8])
def test_headline_result_shape(task, max_words, method):
    result = task(SHORT, style="headline", max_words=max_words, method=method)
    assert result.style == "headline"
    assert result.bullets == []
    assert result.text and "\n" not in result.text
    assert len(_words(result.text)) <= max_words


@pytest.mark.parametrize("method", ["extract", "chunked"])
def test_paragraph_result_shape(task, method):
    result = task(SHORT, style="paragraph", max_words=30, method=method)
    assert result.style == "paragraph"
    assert result.text and "\n" not in result.text
    assert len(_words(result.text)) <= 30


def test_unknown_method_is_refused(task):
    with pytest.raises(InvalidParameterError, match="method"):
        task(SHORT, method="abstractive")


@pytest.mark.parametrize("style", STYLES)
def test_summary_serialises(task, style):
    result = task(SHORT, style=style)
    data = json.loads(json.dumps(result.to_dict()))
    assert set(data) == {"text", "style", "bullets", "chunks", "source_tokens", "seconds", "method", "sources"}
    assert data["text"] == str(result)
    for bullet in data["bullets"]:
        assert set(bullet) == {"text", "origin", "sources"} and bullet["sources"]
        for source in bullet["sources"]:
            assert SHORT[source["start"]:source["end"]] == source["text"]


# ------------------------------------------------------ extract, then rewrite


def test_every_bullet_cites_sentences_of_the_text(task, shortest_transcript):
    text = shortest_transcript["transcript"]
    result = task(text, style="bullets", max_words=120)
    assert result.method == "extract" and result.bullets
    positions = []
    for bullet in result.bullets:
        assert bullet.sources and bullet.origin in ("rewritten", "source")
        for s in bullet.sources:
            assert text[s.start:s.end] == s.text
            positions.append(s.index)
    assert positions == sorted(positions), "bullets follow the order of the text"


def test_no_bullet_states_a_figure_its_source_does_not(task, shortest_transcript):
    """The tiny random generator writes digits at random: whatever it writes, a bullet shown has
    only figures its sources state."""
    from assistant.figures import numeric_precision

    for style_words in (40, 120):
        for bullet in task(shortest_transcript["transcript"], max_words=style_words).bullets:
            assert numeric_precision(bullet.text, " ".join(s.text for s in bullet.sources)) in (None, 1.0)


def test_an_invented_figure_is_replaced_by_the_source(task):
    source = [Sentence("So, revenue rose 11.1% to $481.1 million in the quarter.", 0, 55, 0)]
    invented = task.checked_bullet("- q1 revenue rose 12 percent to $481.1 million.", source)
    assert invented.origin == "source"
    assert invented.text == "Revenue rose 11.1% to $481.1 million in the quarter."
    faithful = task.checked_bullet("q1 revenue rose 11.1 percent to $481.1 million.\nmore", source, period="q1")
    assert (faithful.origin, faithful.text) == ("rewritten", "q1 revenue rose 11.1 percent to $481.1 million.")
    assert task.checked_bullet("  \n", source).origin == "source"


def test_a_very_long_text_is_summarised_whole(task, ectsum_val):
    """A 50,000-word text (ECTSum calls end to end) is scored sentence by sentence: nothing is cut,
    and the picks may come from anywhere in it."""
    text = ""
    for record in ectsum_val:
        if len(text.split()) >= 50_000:
            break
        text += record["transcript"] + "\n"
    result = task(text, max_words=120)
    assert len(text.split()) >= 50_000
    assert result.bullets and result.source_tokens > 50_000
    for bullet in result.bullets:
        assert all(text[s.start:s.end] == s.text for s in bullet.sources)


# -------------------------------------------- postprocess on written outputs


def _post(task, raw: str, style: str, max_words: int, finish_reason: str = "stop") -> Summary:
    """Run the postprocess step on a hand-written model answer."""
    prepared = task.preprocess(SHORT, style=style, max_words=max_words, method="chunked")
    generation = Generation(text=raw, prompt_tokens=100, completion_tokens=50, finish_reason=finish_reason)
    return task.postprocess(_Chunked(prepared, generation, 1, 10))


def test_bullets_are_parsed_from_list_markers(task):
    raw = "Here are the key points:\n1. Revenue rose 5%.\n- Profit fell to $3 million.\n* Guidance kept.\n\n• Dividend $0.10."
    result = _post(task, raw, "bullets", 100)
    assert [b.text for b in result.bullets] == ["Revenue rose 5%.", "Profit fell to $3 million.", "Guidance kept.",
                                                "Dividend $0.10."]
    assert result.text.splitlines() == [f"- {b.text}" for b in result.bullets]
    assert all(b.origin == "generated" and b.sources == [] for b in result.bullets)


def test_bullets_stop_at_the_word_budget(task):
    raw = "- one two three four\n- five six seven eight\n- nine ten eleven twelve"
    result = _post(task, raw, "bullets", 9)
    assert [b.text for b in result.bullets] == ["one two three four", "five six seven eight"]


def test_repeated_bullets_are_dropped(task):
    raw = "- Revenue rose 5%.\n- Profit fell.\n- Revenue rose 5%.\n- Profit fell."
    assert [b.text for b in _post(task, raw, "bullets", 100).bullets] == ["Revenue rose 5%.", "Profit fell."]


def test_unfinished_last_bullet_is_dropped_when_cut_off(task):
    raw = "- Revenue rose 5%.\n- Profit fell to EUR 3 mn.\n- Guidance for the full"
    assert [b.text for b in _post(task, raw, "bullets", 100, "length").bullets] == ["Revenue rose 5%.",
                                                                                    "Profit fell to EUR 3 mn."]
    assert len(_post(task, raw, "bullets", 100, "stop").bullets) == 3


def test_unfinished_last_sentence_is_dropped_when_cut_off(task):
    raw = "Revenue rose 5%. Profit fell to EUR 3 mn. Guidance for the"
    assert _post(task, raw, "paragraph", 100, "length").text == "Revenue rose 5%. Profit fell to EUR 3 mn."
    assert _post(task, raw, "paragraph", 100, "stop").text == raw


def test_headline_takes_the_first_line_without_label_or_quotes(task):
    result = _post(task, '\nHeadline: "Nokia profit jumps 40% on strong phone sales"\nMore text.', "headline", 16)
    assert result.text == "Nokia profit jumps 40% on strong phone sales"


def test_headline_skips_a_preamble_line(task):
    """Small models often introduce the answer ("The headline for the text is:") and put the
    headline on the next line; like the bullets parser, a line ending in ":" is not content.
    (SmolLM2-135M does this on ECTSum KEY_q2_2022, see the integration test.)"""
    raw = 'The headline for the text is:\n"Nokia profit jumps 40% on strong phone sales"'
    assert _post(task, raw, "headline", 16).text == "Nokia profit jumps 40% on strong phone sales"


def test_headline_is_cut_to_the_word_budget(task):
    result = _post(task, "one two three four five six seven", "headline", 4)
    assert result.text == "one two three four …"


def test_paragraph_keeps_whole_sentences_within_budget(task):
    raw = "Revenue rose 5%.\nProfit fell to EUR 3 mn. Guidance was kept for the full year."
    assert _post(task, raw, "paragraph", 9).text == "Revenue rose 5%. Profit fell to EUR 3 mn."
    assert _post(task, raw, "paragraph", 8).text == "Revenue rose 5%."


def test_a_bullets_quarter_is_the_one_its_source_or_the_text_names(task):
    said = [Sentence("Fourth quarter revenue grew 14% to $1.7 billion.", 0, 49, 0)]
    assert task.checked_bullet("q2 revenue rose 14% to $1.7 billion.", said).text == \
        "q4 revenue rose 14% to $1.7 billion."
    unsaid = [Sentence("Revenue for the quarter was $1.5 billion.", 0, 41, 0)]
    assert task.checked_bullet("q3 revenue $1.5 billion.", unsaid, period="q1").text == "q1 revenue $1.5 billion."
    assert task.checked_bullet("q3 revenue $1.5 billion.", unsaid).text == "revenue $1.5 billion."


def test_the_datasets_company_placeholder_is_never_shown(task):
    source = [Sentence("Ongoing earnings per share were $1.40.", 0, 38, 0)]
    assert task.checked_bullet("compname reports q1 earnings per share $1.40.", source, "q1").text == \
        "q1 earnings per share $1.40."
    assert "compname" not in task.checked_bullet("compname sees earnings per share $1.40.", source).text


def test_the_period_is_the_quarter_named_most():
    from assistant.tasks.summarize import quarter_of

    assert quarter_of("In the third quarter ... 3Q sales ... unlike the second quarter ... Q3") == "q3"
    assert quarter_of("Full-year results.") is None


# ------------------------------------------------------------------ cutting


def test_a_cut_never_parts_a_figure_from_its_scale():
    """A real Reuters results table cut at a headline's budget: "Sales 109.4" alone would state
    another number than "109.4 mln"."""
    from assistant.figures import numeric_precision
    from assistant.tasks.summarize import shorten

    table = ("Shr loss six cts vs profit 55 cts Net loss 414,000 vs profit 3,936,000 Sales 109.4 mln vs "
             "126.8 mln")
    cut = shorten(table, 16)
    assert cut.endswith("Sales …") and numeric_precision(cut, table) == 1.0
    assert shorten(table, 20) == table or numeric_precision(shorten(table, 20), table) == 1.0
