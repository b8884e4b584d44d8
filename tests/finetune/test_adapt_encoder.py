"""A head-only run's encoder adapted for its task first (finetune/adapt_encoder.py,
``--encoder-epochs``): the probe its head starts from, and a run on the tiny random BERT and real
CLAUDETTE sentences, saved, reloaded with its adapter merged, and refused when the adapter is damaged.
The shipped unfair-tos model is this kind of run (tests/test_shipped.py checks its quality)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from assistant import Assistant
from assistant.classifiers import FineTunedClassifier
from assistant.errors import ModelLoadError
from assistant.runs import read_run
from finetune.adapt_encoder import probe
from finetune.config import ClassifyTrainConfig
from finetune.train_classifier import train_classifier


def test_the_probe_ranks_what_it_was_fitted_on_and_keeps_absent_labels_off():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype(np.float32)
    y = np.stack([(x[:, 0] > 0.5), np.zeros(200, dtype=bool), np.ones(200, dtype=bool)], 1).astype(np.float32)
    weight, bias = probe(x, y, 3, multi_label=True, weights=None)
    logits = x @ weight.T + bias
    assert weight.shape == (3, 8) and weight[0, 0] > 0 and abs(weight[0, 0]) > abs(weight[0, 1:]).max()
    assert (logits[:, 1] < -5).all() and (logits[:, 2] > 5).all()  # never and always: constants
    single = probe(x, (x[:, 0] > 0).astype(int), 2, multi_label=False, weights=None)
    assert ((x @ single[0].T + single[1]).argmax(1) == (x[:, 0] > 0)).mean() > 0.95


def test_head_over_an_encoder_adapted_for_the_task(tiny_bert_dir, classify_data, tmp_path):
    """--encoder-epochs: LoRA adapters trained through the encoder's own pooling are stored beside the
    head (no copy of the encoder); the loaded run embeds with them merged, with an encoder of its own,
    and a damaged adapter is refused by name."""
    out = train_classifier(ClassifyTrainConfig(
        task="unfair-tos", train=str(classify_data["claudette"]), out=str(tmp_path / "run"),
        model=str(tiny_bert_dir), label_field="unfair_categories", multi_label=True, head_only=True,
        copy_encoder=False, encoder_epochs=4, lora_r=4, lora_alpha=8, learning_rate=1e-2, cv_folds=3,
        group_field="document", progress=False, device="cpu"))
    info = read_run(out)
    assert info.metrics["encoder_epochs"] == 4 and info.metrics["encoder_lora_r"] == 4
    assert (out / "adapter_model.safetensors").is_file() and not (out / "encoder").exists()
    texts = [json.loads(line)["text"] for line in classify_data["claudette"].read_text().splitlines()[:6]]
    clf = FineTunedClassifier(out, device="cpu")
    adapted = clf.sentence_encoder.encode(texts)
    frozen = Assistant(encoder=str(tiny_bert_dir), device="cpu").engine.encode(texts)
    assert adapted.shape == frozen.shape and (adapted - frozen).abs().max() > 1e-3  # the adapter is merged
    assert clf.predict_scores(texts).shape == (6, len(info.labels))
    assert "LoRA-adapted encoder" in clf.describe()["architecture"]
    assert "LoRA-adapted (`adapter_model.safetensors`" in (out / "README.md").read_text()  # the card says so
    damaged = tmp_path / "damaged"
    shutil.copytree(out, damaged)
    (damaged / "adapter_model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelLoadError, match="adapter_model.safetensors"):
        FineTunedClassifier(damaged, device="cpu").load()
