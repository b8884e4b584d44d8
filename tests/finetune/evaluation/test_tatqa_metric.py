"""TAT-QA's exact match and numeracy-focused F1 (finetune/evaluation/tatqa_metric.py)."""

from __future__ import annotations

import pytest

from finetune.evaluation.tatqa_metric import em_f1, is_number, normalise, to_number

PERCENT = {"answer_type": "arithmetic", "answer": -22.22, "scale": "percent"}
MILLIONS = {"answer_type": "arithmetic", "answer": -12.6, "scale": "million"}
TYPES = {"answer_type": "multi-span", "answer": ["fixed-price type", "cost-plus type", "time-and-material type"],
         "scale": ""}
SALES = {"answer_type": "span", "answer": ["$1,496.5"], "scale": "million"}


@pytest.mark.parametrize(("record", "prediction", "scale", "expected"), [
    (PERCENT, "-22.22", "percent", (1.0, 1.0)),
    (PERCENT, "-0.2222", "", (1.0, 1.0)),        # a bare ratio matches its percentage
    (PERCENT, "-22.22", "", (0.0, 0.0)),         # ... but a percentage without its scale does not
    (PERCENT, "-22.2", "percent", (0.0, 0.0)),   # numbers are right or wrong: F1 = EM
    (MILLIONS, "-12.60", "million", (1.0, 1.0)),
    (MILLIONS, "-12.6", "thousand", (0.0, 0.0)),  # the wrong scale makes a number wrong
    (TYPES, ["cost-plus type", "time-and-material type", "fixed-price type"], "", (1.0, 1.0)),  # order is free
    (TYPES, ["fixed-price type"], "", (0.0, 0.5)),  # 2 of 6 gold tokens, all predicted right
    (SALES, "1,496.5", "million", (1.0, 1.0)),
    (SALES, "$1,496.5", "", (0.0, 0.0)),
    ({"answer_type": "span", "answer": ["the Company"], "scale": ""}, "Company.", "", (1.0, 1.0)),
    ({"answer_type": "count", "answer": "2", "scale": ""}, "2", "", (1.0, 1.0)),
])
def test_scores_follow_the_papers_definition(record, prediction, scale, expected):
    assert em_f1(record, prediction, scale) == expected


@pytest.mark.parametrize("prediction", [None, "", []])
def test_no_prediction_scores_zero(prediction):
    assert em_f1(SALES, prediction) == (0.0, 0.0)


def test_numbers_as_documents_write_them():
    assert to_number("(134)") == -134 and to_number("12%") == 0.12 and to_number("1.5 million") == 1_500_000
    assert is_number("$1,452.4") and is_number("3 million") and not is_number("3 apples") and not is_number("n/a")
    assert normalise("The $1,496.5 sales.") == ["1496.5", "sales"]


def test_every_gold_answer_of_tatqa_dev_matches_itself(data_file, read_jsonl):
    """The metric's own consistency on real records: the gold answer, predicted with the gold scale,
    scores 1 for every one of the 1,668 questions."""
    records = read_jsonl(data_file("qa", "tatqa", "dev.jsonl"))
    for record in records:
        answer = record["answer"] if isinstance(record["answer"], list) else [str(record["answer"])]
        assert em_f1(record, answer, record["scale"]) == (1.0, 1.0), record["id"]
