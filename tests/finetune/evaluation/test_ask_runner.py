"""``finassist eval ask`` (finetune/evaluation/ask_runner.py) on real TAT-QA dev questions with the shipped
answerer: the answers scored with TAT-QA's metric, the same questions answered without the table reader
in the same run, and the reports written."""

from __future__ import annotations

import json

import pytest

from finetune.evaluation.ask_runner import evaluate_ask
from finetune.evaluation.retrieval import part_of

pytestmark = pytest.mark.slow


def test_the_reader_and_the_answerer_alone_are_scored_in_one_run(tatqa_dev, tmp_path):
    # The report half's first two documents and their questions: a small library, real questions.
    report = [r for r in tatqa_dev if part_of(r["context_uid"]) == "report"]
    contexts = list(dict.fromkeys(r["context_uid"] for r in report))[:2]
    records = [r for r in report if r["context_uid"] in contexts]
    data = tmp_path / "dev.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = evaluate_ask(str(data), limit=8, absent=False, without_tables=True, scoped=True,
                          out=str(tmp_path / "out"))
    with_tables, of_own, alone = result.scores
    assert (with_tables.name, of_own.name, alone.name) == (
        "answerer", "answerer, asked of its own document", "answerer, no table read")
    assert with_tables.questions == of_own.questions == alone.questions == 8 and result.documents == 2
    # Asked of its own document, an answer cites nothing else, and no question of it was answered worse
    # for that here (the other document's tables have other rows).
    assert of_own.cited_own_document == 1.0 and of_own.em >= with_tables.em and of_own.declined_absent is None
    assert of_own.other_documents_answer == 0  # asked of one document, no other answers otherwise
    for scores in result.scores:  # every table reading either says other documents answer otherwise or not
        assert (scores.other_documents_answer_em is None) == (scores.other_documents_answer == 0)
        assert (scores.read_alone_em is None) == (scores.read_from_table == scores.other_documents_answer)
    assert with_tables.read_from_table > 0 and alone.read_from_table == 0 and alone.read_from_table_em is None
    assert 0 < with_tables.read_from_table_em <= 1
    # Scored as written too: only the answers snapped to the passages' words can score differently.
    for scores in result.scores:
        assert abs(scores.as_written_em - scores.em) <= scores.snapped + 1e-9
    written = json.loads((tmp_path / "out" / "ask.json").read_text())
    assert written["scores"][0]["read_from_table"] == with_tables.read_from_table
    assert "read from a table" in (tmp_path / "out" / "ask.md").read_text()
    assert "says others answer otherwise" in (tmp_path / "out" / "ask.md").read_text()
    assert "(as written)" in (tmp_path / "out" / "ask.md").read_text()
    assert (tmp_path / "out" / "ask.png").stat().st_size > 0
