"""Zero-shot classification (assistant/tasks/classify.py) on the tiny BERT: result types,
probabilities, ordering, multi-label thresholds, batching and errors."""

from __future__ import annotations

import json

import pytest
import torch

from assistant.errors import EmptyInputError, NotTextError, UnknownTaskError
from assistant.prompts import load_label_set
from assistant.tasks.classify import Classification, ClassifyPipeline, LabelScore

SENTENCES = [
    "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007.",
    "The company reported a net loss and will cut 150 jobs.",
    "The annual general meeting will be held on 3 April in Helsinki.",
]
CLAUSE = (
    "This Agreement shall be governed by and construed in accordance with the laws of the State of New York, "
    "without regard to its conflict of laws principles."
)


@pytest.fixture(scope="module")
def task(tiny_engine) -> ClassifyPipeline:
    return ClassifyPipeline(tiny_engine)


def _assert_sorted(scores: list[LabelScore]) -> None:
    values = [s.score for s in scores]
    assert values == sorted(values, reverse=True)


def test_single_label_result(task):
    result = task(SENTENCES[0], task="sentiment")
    assert isinstance(result, Classification)
    assert result.task == "sentiment" and result.multi_label is False
    assert all(isinstance(s, LabelScore) for s in result.scores)
    assert sorted(s.label for s in result.scores) == sorted(load_label_set("sentiment").names)
    _assert_sorted(result.scores)
    assert sum(s.score for s in result.scores) == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= s.score <= 1.0 for s in result.scores)
    assert result.labels == [result.scores[0].label]
    assert result.label == result.scores[0].label


def test_default_task_is_sentiment(task):
    assert task(SENTENCES[1]).task == "sentiment"


def test_list_input_gives_a_list_of_the_same_length_matching_single_calls(task):
    results = task(SENTENCES, task="sentiment")
    assert isinstance(results, list) and len(results) == len(SENTENCES)
    for text, batched in zip(SENTENCES, results):
        single = task(text, task="sentiment")
        assert [s.label for s in batched.scores] == [s.label for s in single.scores]
        assert [s.score for s in batched.scores] == pytest.approx([s.score for s in single.scores], abs=1e-5)


def test_one_element_list_still_returns_a_list(task):
    results = task([SENTENCES[0]])
    assert isinstance(results, list) and len(results) == 1


def test_utf8_bytes_are_classified_like_text(task):
    as_bytes = task(SENTENCES[2].encode(), task="sentiment")
    as_text = task(SENTENCES[2], task="sentiment")
    assert as_bytes.labels == as_text.labels
    assert [s.score for s in as_bytes.scores] == pytest.approx([s.score for s in as_text.scores])


def test_different_texts_get_different_scores(task):
    a, b = task(SENTENCES[:2])
    assert [s.score for s in a.scores] != pytest.approx([s.score for s in b.scores], abs=1e-6)


def _expected_multi_labels(scores: list[LabelScore], threshold: float, margin: float | None) -> list[str]:
    """The documented rule: at least the threshold and, where the label set has a margin,
    within that margin of the best label; best first."""
    floor = threshold if margin is None else max(threshold, scores[0].score - margin)
    return [s.label for s in scores if s.score >= floor]


def test_multi_label_scores_are_cosines_over_all_41_labels(task):
    ls = load_label_set("contract-clause")
    result = task(CLAUSE, task="contract-clause")
    assert result.multi_label is True
    assert len(result.scores) == 41
    assert sorted(s.label for s in result.scores) == sorted(ls.names)
    _assert_sorted(result.scores)
    assert all(-1.0 - 1e-5 <= s.score <= 1.0 + 1e-5 for s in result.scores)
    assert result.labels == _expected_multi_labels(result.scores, ls.threshold, ls.margin)


def test_multi_label_returns_exactly_the_labels_that_pass(task):
    ls = load_label_set("contract-clause")
    scores = task(CLAUSE, task="contract-clause", threshold=-1.0).scores
    # thresholds between consecutive scores, and beyond both ends
    cuts = [-1.0, 1.01] + [(a.score + b.score) / 2 for a, b in zip(scores[:8], scores[1:9])]
    for threshold in cuts:
        result = task(CLAUSE, task="contract-clause", threshold=threshold)
        assert result.labels == _expected_multi_labels(scores, threshold, ls.margin), threshold
    # the threshold binds: between the 1st and 2nd score only the best label is left
    top = task(CLAUSE, task="contract-clause", threshold=(scores[0].score + scores[1].score) / 2)
    assert top.labels == [scores[0].label]


def test_multi_label_can_return_no_label(task):
    result = task(CLAUSE, task="contract-clause", threshold=1.01)
    assert result.labels == [] and result.label is None
    assert len(result.scores) == 41
    assert "(no label)" in str(result)


def test_margin_keeps_only_labels_close_to_the_best(task):
    ls = load_label_set("contract-clause")
    if ls.margin is None:
        pytest.skip("contract-clause has no margin")
    results = task([CLAUSE, *SENTENCES], task="contract-clause", threshold=-1.0)
    for result in results:
        best = result.scores[0].score
        assert result.labels[0] == result.scores[0].label  # the best label always passes a low threshold
        assert all(s.score >= best - ls.margin for s in result.scores if s.label in result.labels)
        assert all(s.score < best - ls.margin for s in result.scores if s.label not in result.labels)


def test_label_embeddings_are_normalised_and_cached(task):
    ls = load_label_set("contract-clause")
    emb = task.label_embeddings(ls)
    assert emb.shape == (41, task.engine.encoder.model.config.hidden_size)
    assert torch.allclose(emb.norm(dim=-1), torch.ones(41), atol=1e-5)
    assert task.label_embeddings(ls) is emb


def test_result_serialises(task):
    result = task(SENTENCES[0])
    data = json.loads(json.dumps(result.to_dict()))
    assert data["task"] == "sentiment" and data["multi_label"] is False
    assert data["labels"] == result.labels
    assert [s["label"] for s in data["scores"]] == [s.label for s in result.scores]
    assert result.label in str(result)


@pytest.mark.parametrize("name", ["nope", "summarize"])
def test_unknown_task_is_refused(task, name):
    with pytest.raises(UnknownTaskError):
        task(SENTENCES[0], task=name)


@pytest.mark.parametrize("inputs", ["", "   ", [], ["ok", ""]])
def test_empty_input_is_refused(task, inputs):
    with pytest.raises(EmptyInputError):
        task(inputs)


@pytest.mark.parametrize("inputs", [None, 42, [None], b"\xff\xfe"])
def test_non_text_is_refused(task, inputs):
    with pytest.raises(NotTextError):
        task(inputs)
