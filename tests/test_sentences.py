"""Sentence splitting with spans (assistant/sentences.py)."""

from __future__ import annotations

from assistant.sentences import sentence_spans, split_sentences


def test_spans_point_at_the_sentences_in_the_text():
    text = "  Revenue rose 5.2% to $1.5 bn. Mr. Smith said Inc. results improved!\n\nQ3 guidance: up. \n"
    spans = sentence_spans(text)
    assert [s.text for s in spans] == ["Revenue rose 5.2% to $1.5 bn.", "Mr. Smith said Inc. results improved!",
                                       "Q3 guidance: up."]
    assert [s.index for s in spans] == [0, 1, 2]
    for s in spans:
        assert text[s.start:s.end] == s.text


def test_every_line_of_a_transcript_is_a_sentence(shortest_transcript):
    text = shortest_transcript["transcript"]
    spans = sentence_spans(text)
    assert len(spans) >= len([line for line in text.splitlines() if line.strip()])
    assert all(text[s.start:s.end] == s.text for s in spans)
    assert split_sentences(text) == [s.text for s in spans]


def test_decimals_and_initials_do_not_split():
    assert split_sentences("EPS was $1.24 per share. The U.S. unit grew 3.5%.") == [
        "EPS was $1.24 per share.", "The U.S. unit grew 3.5%."]
