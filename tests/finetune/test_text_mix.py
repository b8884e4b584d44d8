"""A fine-tuned classifier mixed with a TF-IDF text head (finetune/text_mix.py, ``--text-mix``): the
weight is chosen on validation, the head is saved as safetensors with its vocabularies, the assistant
mixes exactly that share in, and a damaged or missing text head is an error naming its file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from assistant.classifiers import TEXT_HEAD_FILE, FineTunedClassifier
from assistant.errors import InvalidParameterError, ModelLoadError
from assistant.runs import RUN_FILE, read_run
from finetune.classification_data import load_classification_data
from finetune.config import ClassifyTrainConfig
from finetune.text_mix import fit_text_mix

pytestmark = pytest.mark.slow


def _config(classify_data, out: Path, **changes) -> ClassifyTrainConfig:
    options = {"task": "sentiment", "train": str(classify_data["fpb_train"]), "out": str(out), "text_field": "sentence",
               "val_fraction": 0.25, "lora": True, "text_mix": "words+chars", "progress": False, "device": "cpu"}
    return ClassifyTrainConfig(**{**options, **changes})


@pytest.mark.parametrize("changes, message", [
    ({"text_mix": "embedding"}, "text_mix must be one of"),
    ({"lora": False, "head_only": True}, "head-only run reads text features itself"),
    ({"multi_label": True, "label_field": "label"}, "single-label"),
    ({"text_mix": None, "head_c": "1,10"}, "settings of a head"),
])
def test_bad_text_mix_settings_are_refused(classify_data, tmp_path, changes, message):
    with pytest.raises(InvalidParameterError, match=message):
        _config(classify_data, tmp_path / "run", **changes)


def test_the_weight_is_chosen_on_validation_and_the_head_saved(classify_data, tmp_path):
    """A model that knows nothing (the same probabilities for every text) loses to the text head on
    real sentences, so a weight above 0 is chosen; the head and both vocabularies are written."""
    config = _config(classify_data, tmp_path, head_c="1,10", max_word_features=300, max_char_features=500)
    data = load_classification_data(config)
    clueless = np.full((len(data.val_texts), len(data.labels)), 1 / len(data.labels), dtype=np.float32)
    mixed, weight, metrics = fit_text_mix(config, data, clueless, tmp_path)
    assert weight > 0 and metrics["text_mix_weight"] == weight and metrics["text_mix_C"] in (1.0, 10.0)
    assert max(metrics["text_mix_scores"].values()) > metrics["validation_without_text_mix"]
    assert mixed.shape == clueless.shape and np.allclose(mixed.sum(1), 1, atol=1e-5)
    assert {p.name for p in tmp_path.iterdir()} >= {TEXT_HEAD_FILE, "words.json", "chars.json"}
    assert 0 < metrics["word_features"] <= 300 and 0 < metrics["char_features"] <= 500


def test_a_model_that_needs_no_mix_keeps_its_scores(classify_data, tmp_path):
    """Validation probabilities that are already right: no weight improves on them, nothing is saved."""
    config = _config(classify_data, tmp_path, head_c="1")
    data = load_classification_data(config)
    perfect = np.eye(len(data.labels), dtype=np.float32)[[data.labels.index(g[0]) for g in data.val_labels]]
    mixed, weight, _ = fit_text_mix(config, data, perfect, tmp_path)
    assert weight == 0 and mixed is perfect and not (tmp_path / TEXT_HEAD_FILE).exists()


def test_no_validation_texts_is_a_data_error(classify_data, tmp_path):
    from dataclasses import replace

    from finetune.data import DataError

    config = _config(classify_data, tmp_path, head_c="1")
    data = replace(load_classification_data(config), val_texts=[], val_labels=[])
    with pytest.raises(DataError, match="text_mix needs validation texts"):
        fit_text_mix(config, data, np.zeros((0, 3), dtype=np.float32), tmp_path)


def test_training_with_a_text_mix_records_it(classify_data, tiny_bert_dir, tmp_path):
    from finetune.train_classifier import train_classifier

    config = _config(classify_data, tmp_path / "run", model=str(tiny_bert_dir), lora_r=4, lora_alpha=8,
                     learning_rate=1e-3, epochs=1, batch_size=8, max_length=32, stride=8, head_c="1")
    run = train_classifier(config)
    info = read_run(run)
    metrics = info.metrics
    assert info.text_mix == metrics["text_mix_weight"] and "validation_without_text_mix" in metrics
    assert sorted(metrics["text_mix_scores"]) == ["C=1", "C=1 balanced"]  # each at its best weight
    assert (run / TEXT_HEAD_FILE).is_file() == (info.text_mix > 0)
    if info.text_mix > 0:
        assert "mixed with a logistic regression over TF-IDF" in (run / "README.md").read_text()


def _with_text_head(source: Path, target: Path, classify_data, weight: float) -> Path:
    """A copy of a LoRA run with a text head fitted beside it, mixed in at ``weight``."""
    shutil.copytree(source, target)
    config = _config(classify_data, target, head_c="10")
    data = load_classification_data(config)
    clueless = np.full((len(data.val_texts), len(data.labels)), 1 / len(data.labels), dtype=np.float32)
    fit_text_mix(config, data, clueless, target)
    _set_mix(target, weight)
    return target


def _set_mix(run: Path, weight) -> None:
    data = json.loads((run / RUN_FILE).read_text())
    data["text_mix"] = weight
    (run / RUN_FILE).write_text(json.dumps(data))


def test_the_assistant_mixes_in_the_share_its_run_file_names(sentiment_lora_run, classify_data, tmp_path, read_jsonl):
    run = _with_text_head(sentiment_lora_run, tmp_path / "mixed", classify_data, 0.3)
    texts = [r["sentence"] for r in read_jsonl(classify_data["fpb_train"])]
    alone = FineTunedClassifier(sentiment_lora_run, device="cpu", int8=False).predict_scores(texts)
    mixed_clf = FineTunedClassifier(run, device="cpu", int8=False)
    mixed = mixed_clf.predict_scores(texts)
    assert "mixed with a linear head over TF-IDF words" in mixed_clf.describe()["architecture"]
    _set_mix(run, 1.0)
    head = FineTunedClassifier(run, device="cpu", int8=False).predict_scores(texts)
    assert torch.allclose(mixed, 0.7 * alone + 0.3 * head, atol=1e-5)
    assert torch.allclose(mixed.sum(1), torch.ones(len(texts)), atol=1e-5)
    # the text head learned its training sentences: it is read as trained, not as noise
    clf = FineTunedClassifier(run, device="cpu", int8=False)
    gold = [r["label"] for r in read_jsonl(classify_data["fpb_train"])]
    right = sum(clf.labels[int(i)] == g for i, g in zip(head.argmax(1), gold, strict=True))
    assert right / len(gold) >= 0.8


def test_a_damaged_text_head_is_named(sentiment_lora_run, classify_data, tmp_path):
    run = _with_text_head(sentiment_lora_run, tmp_path / "damaged", classify_data, 0.5)
    data = (run / TEXT_HEAD_FILE).read_bytes()
    (run / TEXT_HEAD_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=TEXT_HEAD_FILE):
        FineTunedClassifier(run, device="cpu").predict_scores(["Profit rose."])
    (run / TEXT_HEAD_FILE).write_bytes(data)
    (run / "words.json").unlink()
    with pytest.raises(ModelLoadError, match="words.json is missing"):
        FineTunedClassifier(run, device="cpu").predict_scores(["Profit rose."])
    (run / TEXT_HEAD_FILE).unlink()
    with pytest.raises(ModelLoadError, match=f"{TEXT_HEAD_FILE} is missing"):
        FineTunedClassifier(run, device="cpu").predict_scores(["Profit rose."])
    _set_mix(run, 1.5)
    with pytest.raises(ModelLoadError, match="text_mix must be a number from 0 to 1"):
        FineTunedClassifier(run, device="cpu")
