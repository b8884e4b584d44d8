"""``finassist eval classify`` (finetune/evaluation/classifier_runner.py): fine-tuned runs and
zero-shot encoders evaluated through ``Assistant.classify``, the path a user's request takes."""

from __future__ import annotations

import json

import pytest

from assistant import Assistant
from assistant.errors import InvalidParameterError
from assistant.runs import read_run
from finetune.data import DataError
from finetune.evaluation import apply_thresholds
from finetune.evaluation.classifier_runner import evaluate_classifier

FPB_LABELS = ["negative", "neutral", "positive"]


def test_evaluate_a_run_on_held_out_data(sentiment_run, classify_data, tmp_path):
    report = evaluate_classifier(str(sentiment_run), str(classify_data["fpb_heldout"]), text_field="sentence",
                                 out=str(tmp_path), progress=False, device="cpu")
    assert report.task == "sentiment" and report.labels == FPB_LABELS and report.n == 30
    assert report.extra["kind"] == "classifier"
    assert sum(map(sum, report.confusion)) == 30
    for name in ("sentiment.json", "sentiment.md", "sentiment-confusion.png"):
        assert (tmp_path / name).is_file(), name
    limited = evaluate_classifier(str(sentiment_run), str(classify_data["fpb_heldout"]), text_field="sentence",
                                  limit=7, progress=False, device="cpu")
    assert limited.n == 7


def test_evaluate_multi_label_run_uses_its_thresholds(unfair_run, classify_data):
    report = evaluate_classifier(str(unfair_run), str(classify_data["claudette"]), label_field="unfair_categories",
                                 progress=False, device="cpu")
    assert report.multi_label and report.extra["thresholds"] == read_run(unfair_run).thresholds
    with pytest.raises(InvalidParameterError, match="multi-label"):
        evaluate_classifier(str(unfair_run), str(classify_data["claudette"]), label_field="unfair_categories",
                            multi_label=False, progress=False)


def test_evaluate_an_encoder_zero_shot(tiny_bert_dir, classify_data):
    report = evaluate_classifier(str(tiny_bert_dir), str(classify_data["fpb_heldout"]), task="sentiment",
                                 text_field="sentence", limit=9, progress=False, device="cpu")
    with pytest.raises(InvalidParameterError, match="min_labels"):
        evaluate_classifier(str(tiny_bert_dir), str(classify_data["fpb_heldout"]), task="sentiment",
                            text_field="sentence", min_labels=1, progress=False)
    assert report.extra["kind"] == "zero-shot" and report.n == 9
    assert report.labels == ["positive", "negative", "neutral"]  # the label set's order


def test_evaluate_rejects_labels_outside_the_model(sentiment_run, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"sentence": "Shares rose.", "label": "bullish"}) + "\n")
    with pytest.raises(DataError, match=rf"{path}:1: label 'bullish'"):
        evaluate_classifier(str(sentiment_run), str(path), text_field="sentence", progress=False)


def test_figures_are_what_the_assistant_gives_a_user(sentiment_run, unfair_run, tiny_bert_dir, classify_data,
                                                     read_jsonl):
    """The report counts the labels ``Assistant(classifiers=...).classify`` gives, for a single-label
    run and for a multi-label one with its tuned thresholds and label floor."""
    rows = read_jsonl(classify_data["fpb_heldout"])
    report = evaluate_classifier(str(sentiment_run), str(classify_data["fpb_heldout"]), text_field="sentence",
                                 progress=False, device="cpu")
    user = Assistant(encoder=str(tiny_bert_dir), classifiers={"sentiment": sentiment_run}, shipped_classifiers=False,
                     device="cpu")
    labels = [r.label for r in user.classify([r["sentence"] for r in rows], task="sentiment")]
    assert report.accuracy == pytest.approx(sum(p == r["label"] for p, r in zip(labels, rows)) / len(rows))
    assert sum(map(sum, report.confusion)) == len(rows)

    clauses = read_jsonl(classify_data["claudette"])
    multi = evaluate_classifier(str(unfair_run), str(classify_data["claudette"]), label_field="unfair_categories",
                                progress=False, device="cpu")
    user = Assistant(encoder=str(tiny_bert_dir), classifiers={"unfair-tos": unfair_run}, shipped_classifiers=False,
                     device="cpu")
    results = user.classify([r["text"] for r in clauses], task="unfair-tos")
    gold = [set(r["unfair_categories"]) for r in clauses]
    exact = sum(set(r.labels) == g for r, g in zip(results, gold)) / len(clauses)
    assert multi.accuracy == pytest.approx(exact)  # multi-label accuracy is exact match
    # Another floor on labels per text decides the same scores again: every text then gets at least
    # that many labels, its best-scoring ones.
    info = read_run(unfair_run)
    floor = info.min_labels + 1
    other = evaluate_classifier(str(unfair_run), str(classify_data["claudette"]), label_field="unfair_categories",
                                min_labels=floor, progress=False, device="cpu")
    probs = [[{s.label: s.score for s in r.scores}[label] for label in info.labels] for r in results]
    decided = apply_thresholds(probs, info.labels, info.thresholds, floor)
    assert all(len(labels) >= floor for labels in decided)
    assert other.extra["min_labels"] == floor
    assert other.accuracy == pytest.approx(sum(set(d) == g for d, g in zip(decided, gold)) / len(clauses))
