"""A fine-tuned classifier mixed with a TF-IDF head (``finassist finetune classify --text-mix words+chars``).

A LoRA adapter of a small encoder, trained on a CPU, blurs wording that decides a label: a ticker's
"cut to underweight", "EUR mn" tables, an analyst's verb. A logistic regression over TF-IDF words and
character n-grams keeps that wording, errs elsewhere, and costs almost nothing to run. Their
probabilities are mixed, ``(1 - w) * model + w * text head``; the text head's C, its class weighting and
the weight ``w`` are chosen on the run's validation split by the metric that chose its checkpoint.

The text head is the head-only trainer's (``finetune.train_head.HeadFitter``) with no embedding
columns; it is stored the same way: ``text_head.safetensors`` (weights per feature and a bias, in
float16 for a compact run) and each feature's vocabulary and IDF as JSON (``words.json``, ``chars.json``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from assistant.classifiers import TEXT_HEAD_FILE, word_vectorizer_state

from .classification_data import ClassificationData
from .config import ClassifyTrainConfig
from .data import DataError
from .evaluation import weighted_metrics
from .train_head import HeadFitter

log = logging.getLogger(__name__)

#: The text head's shares of each score tried (0: the model alone).
MIX_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))


def _selection_score(config: ClassifyTrainConfig, data: ClassificationData, probs: np.ndarray) -> float:
    """The metric the run's checkpoint was chosen by: accuracy, weighted by the validation weights when
    the data has them (``fine_tune_encoder``'s ``selection``); with none, every text weighs 1."""
    gold = [g[0] for g in data.val_labels]
    preds = [data.labels[i] for i in probs.argmax(axis=1)]
    weights = data.val_weights or [1.0] * len(gold)
    return weighted_metrics(gold, preds, data.labels, False, weights)["weighted_accuracy"]


def fit_text_mix(config: ClassifyTrainConfig, data: ClassificationData, model_probs: np.ndarray,
                 out: Path) -> tuple[np.ndarray, float, dict]:
    """Fit the text head on ``data``'s training texts, choose its C and the mix weight on validation
    (``model_probs``: the fine-tuned model's validation probabilities), and save the head in ``out``
    when its weight is above 0. Returns (the mixed validation probabilities, the weight, metrics)."""
    from safetensors.torch import save_file

    from .files import write_vocabulary

    if not data.val_texts:
        raise DataError(f"{config.train}: text_mix needs validation texts to choose its weight, and the split "
                        "has none (a larger val_fraction, or val)")
    # The head-only trainer's fitter, on text features alone (no embedding columns)
    no_embedding = replace(config, head_only=True, lora=False, text_mix=None, features=f"embedding+{config.text_mix}")
    fitter = HeadFitter(no_embedding, data, np.zeros((len(data.train_texts), 0), dtype=np.float32))
    everything = np.arange(len(data.train_texts))
    inputs = fitter.inputs(everything)
    val_columns = np.zeros((len(data.val_texts), 0), dtype=np.float32)
    alone = _selection_score(config, data, model_probs)
    best = (alone, 0.0, None, None, None, model_probs)  # (score, weight, C, balanced, head, probs): the model alone
    scores: dict[str, float] = {}
    # The head's own class weighting is chosen too: the model's loss may weigh classes against imbalance,
    # but a mix only needs the head's probabilities to add what the model misses.
    for balanced in (True, False):
        fitter.config = replace(no_embedding, class_weights=balanced)
        for c in config.c_grid:
            head = fitter.fit(inputs, everything, c)
            text_probs = fitter.probs(head, val_columns, data.val_texts)
            for weight in MIX_WEIGHTS[1:]:
                mixed = (1 - weight) * model_probs + weight * text_probs
                score = _selection_score(config, data, mixed)
                setting = f"C={c:g}{' balanced' if balanced else ''}"  # each setting's best weight is recorded
                scores[setting] = max(scores.get(setting, 0.0), round(score, 4))
                if score > best[0]:  # ties keep the earlier setting (the model alone first)
                    best = (score, weight, c, balanced, head, mixed)
    score, weight, c, balanced, head, mixed = best
    log.info("text mix: validation %.4f with the text head at weight %g (C=%s, classes balanced: %s); the model "
             "alone %.4f", score, weight, c, balanced, alone)
    metrics = {"text_mix_weight": weight, "validation_without_text_mix": round(alone, 4),
               "text_mix_scores": scores}
    if weight == 0:
        return model_probs, 0.0, metrics
    metrics["text_mix_balanced"] = balanced
    head_weight, bias, vectorizers = head
    dtype = torch.float16 if config.lora else torch.float32  # a compact run keeps its many text weights in half
    tensors = {"bias": torch.from_numpy(bias)}
    start = 0
    for feature, vectorizer in zip(fitter.text_features, vectorizers, strict=True):
        size = len(vectorizer.vocabulary_)
        tensors[feature.tensor] = torch.from_numpy(head_weight[:, start : start + size].copy()).to(dtype)
        write_vocabulary(word_vectorizer_state(vectorizer, config.text_feature_settings(feature)), out / feature.file)
        metrics[feature.tensor.removesuffix("_weight") + "_features"] = size
        start += size
    save_file(tensors, str(out / TEXT_HEAD_FILE), metadata={"labels": json.dumps(data.labels)})
    metrics["text_mix_C"] = c
    return mixed, weight, metrics
