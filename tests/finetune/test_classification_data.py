"""A classification run's data (finetune/classification_data.py): group splits, excluded held-out
texts, and the multi-label floor learned from the training data."""

from __future__ import annotations

import json


from finetune.classification_data import load_classification_data
from finetune.config import ClassifyTrainConfig


def test_group_split_keeps_documents_apart(classify_data):
    config = ClassifyTrainConfig(task="unfair-tos", train=str(classify_data["claudette"]), out="unused",
                                 label_field="unfair_categories", multi_label=True, group_field="document",
                                 val_fraction=0.3)
    data = load_classification_data(config)
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
    data = load_classification_data(config)
    held = {r["sentence"] for r in heldout}
    assert not held & set(data.train_texts + data.val_texts)
    assert len(data.train_texts) + len(data.val_texts) == 48


def test_fair_sentences_mean_no_label_floor(classify_data):
    data = load_classification_data(ClassifyTrainConfig(task="unfair-tos", train=str(classify_data["claudette"]), out="unused",
                                         label_field="unfair_categories", multi_label=True))
    assert data.min_labels == 0
