"""The grounded answerer's training targets (finetune/answer_data.py) on real TAT-QA dev records."""

from __future__ import annotations

import pytest

from assistant.calculator import compute
from assistant.library import Passage
from assistant.tasks.ask import ShortAnswer
from finetune.answer_data import NOT_FOUND, answer_target, expression_for, figures_in
from finetune.evaluation.retrieval import tatqa_document


@pytest.fixture(scope="module")
def records(data_file, read_jsonl) -> list[dict]:
    return read_jsonl(data_file("qa", "tatqa", "dev.jsonl"))


def passages_of(record: dict, other: dict | None = None) -> list[Passage]:
    texts = [tatqa_document(r) for r in (other, record) if r is not None]
    return [Passage(i, f"doc-{i}.txt", 1, 0, len(t), t, 0.03, 0.6) for i, t in enumerate(texts)]


def test_expressions_give_the_annotated_answers(records):
    arithmetic = [r for r in records if r["answer_type"] == "arithmetic"]
    written = [(r, expression_for(r)) for r in arithmetic]
    assert sum(e is not None for _, e in written) / len(arithmetic) >= 0.98
    for record, expression in written:
        if expression is not None:
            assert round(compute(expression).value, 2) == pytest.approx(float(record["answer"]), abs=0.006)
    percentage = next(r for r in arithmetic if r["derivation"] == "(44.1-56.7)/56.7")
    assert expression_for(percentage) == "((44.1-56.7)/56.7) * 100"  # the answer is -22.22 percent


def test_targets_parse_back_into_the_answer_and_cite_the_passage_that_holds_it(records):
    other = records[-1]
    for kind in ("span", "multi-span", "arithmetic"):
        record = next(r for r in records if r["answer_type"] == kind and r["context_uid"] != other["context_uid"]
                      and (kind != "arithmetic" or expression_for(r)))
        target = answer_target(record, passages_of(record, other))
        short = ShortAnswer.parse(target)
        assert short.sources == (2,), target  # the record's own document is the second passage
        assert short.scale == record["scale"]
        if kind == "arithmetic":
            assert round(compute(short.expression).value, 2) == pytest.approx(float(record["answer"]), abs=0.006)
        else:
            assert list(short.parts) == [" ".join(a.split()) for a in record["answer"]]


def test_no_target_when_the_passages_lack_the_evidence(records):
    record = next(r for r in records if r["answer_type"] == "arithmetic" and expression_for(r))
    other = next(r for r in records if r["context_uid"] != record["context_uid"]
                 and not figures_in(expression_for(record)) <= figures_in(tatqa_document(r)))
    assert answer_target(record, passages_of(other)) is None
    assert ShortAnswer.parse(NOT_FOUND).kind == "not_found"
