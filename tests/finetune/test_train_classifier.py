"""Classifier fine-tuning, full and LoRA (finetune/train_classifier.py), on the tiny random BERT and
real data: the run directory (a transformers model with its run file, card and validation report),
multi-label thresholds, example and class weights in the loss, exact resume, and data errors that
leave no run folder behind.

The runs themselves are session fixtures (tests/conftest.py: ``sentiment_run``, ``unfair_run``),
trained once and shared with tests/test_classifiers.py. Weights are random, so tests check
structure and invariants.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, TrainerCallback

from assistant.errors import InvalidParameterError
from assistant.runs import RUN_FILE, read_run
from finetune.config import ClassifyTrainConfig
from finetune.data import DataError
from finetune.train_classifier import classification_loss, train_classifier


FPB_LABELS = ["negative", "neutral", "positive"]


CLAUDETTE_LABELS = {
    "Arbitration", "Unilateral change", "Content removal", "Jurisdiction", "Choice of law",
    "Limitation of liability", "Unilateral termination", "Contract by using", "Privacy included",
}


def _run_file(run) -> dict:
    return json.loads((run / RUN_FILE).read_text())


def test_single_label_run_is_a_transformers_model(sentiment_run):
    run = _run_file(sentiment_run)
    assert run["kind"] == "classifier" and run["task"] == "sentiment" and run["multi_label"] is False
    assert run["labels"] == FPB_LABELS and run["thresholds"] is None
    m = run["metrics"]
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
    assert report["n"] == m["validation_records"] and sum(map(sum, report["confusion"])) == report["n"]
    # The run's figures are the validation report's, and its accuracy is the confusion matrix's diagonal.
    correct = sum(report["confusion"][i][i] for i in range(len(FPB_LABELS)))
    assert m["accuracy"] == pytest.approx(report["accuracy"]) == pytest.approx(correct / report["n"])
    assert m["macro_f1"] == pytest.approx(report["macro_f1"])
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


def test_loss_weights_examples():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.3, -2.0]])
    labels = torch.tensor([0, 2])
    plain = classification_loss(None, multi_label=False)
    ce = torch.nn.functional.cross_entropy
    assert plain(logits, labels) == pytest.approx(ce(logits, labels).item())
    assert plain(logits, labels, torch.ones(2)) == pytest.approx(ce(logits, labels).item())
    # A weight-0 example adds nothing; the mean stays over the batch.
    assert plain(logits, labels, torch.tensor([2.0, 0.0])) == pytest.approx(ce(logits[:1], labels[:1]).item())
    class_weighted = classification_loss(torch.tensor([1.0, 2.0, 3.0]), multi_label=False)
    expected = ce(logits, labels, weight=torch.tensor([1.0, 2.0, 3.0])).item()
    assert class_weighted(logits, labels, torch.ones(2)) == pytest.approx(expected)
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    multi = classification_loss(None, multi_label=True)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    assert multi(logits, targets, torch.tensor([0.0, 2.0])) == pytest.approx(bce(logits[1:], targets[1:]).item())


def test_example_weights_reach_the_trainer_loss(tiny_bert_dir, classify_data, tmp_path, read_jsonl,
                                                weighted_copy):
    rows = read_jsonl(classify_data["fpb_train"])
    common = {"task": "sentiment", "model": str(tiny_bert_dir), "text_field": "sentence", "batch_size": 8,
              "max_steps": 1, "progress": False, "device": "cpu", "early_stopping_patience": 0}
    plain = train_classifier(ClassifyTrainConfig(train=str(classify_data["fpb_train"]),
                                                 out=str(tmp_path / "plain"), **common))
    doubled = train_classifier(ClassifyTrainConfig(
        train=weighted_copy(rows, tmp_path / "w.jsonl", lambda r: 2), weight_field="w",
        out=str(tmp_path / "doubled"), **common))
    # Same seed, same first batch: every example counting twice doubles the first step's loss.
    first, second = (read_run(r).metrics["train_loss"] for r in (plain, doubled))
    assert second == pytest.approx(2 * first, rel=1e-4)
    assert read_run(doubled).config["weight_field"] == "w"
    # The validation split carries the weights too, and the checkpoint is chosen on the weighted metric.
    assert read_run(plain).metrics["selected_by"] == "validation accuracy"
    assert read_run(doubled).metrics["selected_by"] == "validation weighted_accuracy"


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


def _config(train, out, **kw) -> ClassifyTrainConfig:
    return ClassifyTrainConfig(task="sentiment", train=str(train), out=str(out), text_field="sentence",
                               progress=False, **kw)


def test_bad_weight_names_file_and_line(tmp_path, classify_data, read_jsonl, weighted_copy):
    rows = read_jsonl(classify_data["fpb_train"])[:6]
    path = tmp_path / "train.jsonl"
    weighted_copy(rows, path, lambda r: -1 if r is rows[3] else 0.5)
    with pytest.raises(DataError, match=rf"{path}:4: field 'w' must be a number, 0 or more, got -1"):
        train_classifier(_config(path, tmp_path / "out", weight_field="w"))
    weighted_copy(rows, path, lambda r: "high")
    with pytest.raises(DataError, match=rf"{path}:1: field 'w' must be a number"):
        train_classifier(_config(path, tmp_path / "out", weight_field="w"))
    assert not (tmp_path / "out").exists()


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


def test_finished_run_is_not_overwritten(sentiment_run, classify_data):
    with pytest.raises(InvalidParameterError, match="already holds a run"):
        train_classifier(_config(classify_data["fpb_train"], sentiment_run))
