"""Training a classifier (``finassist finetune classify``): ``train_classifier`` reads and checks
the data, then trains the head-only way (``finetune.train_head``) or fine-tunes the encoder, as
here: in full, or with LoRA adapters (peft).

Full fine-tuning trains ``AutoModelForSequenceClassification`` with the transformers
``Trainer`` (weighted loss for imbalanced labels and per-example weights, early stopping on the
validation metric, best checkpoint kept, exact resume from the last checkpoint) and saves it
with ``save_pretrained``, so the run directory is also a plain transformers model; a LoRA run
stores only the adapters and the classification head.

Texts longer than ``max_length`` tokens are cut into overlapping windows (``stride`` tokens of
overlap). At training time every window is an example carrying its text's label; at prediction
time window outputs are aggregated per text (mean logits for single-label, max probability for
multi-label) by the code the assistant uses (``assistant.classifiers.aggregate_windows``).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from assistant.classifiers import aggregate_windows
from assistant.errors import InvalidParameterError
from assistant.models import weights_fingerprint
from assistant.runs import ADAPTER_FILE

from .classification_data import ClassificationData, label_targets, load_classification_data
from .classifier_run import CHECKPOINTS, check_out_dir, finish_run, last_checkpoint
from .config import ClassifyTrainConfig
from .files import store_half
from .text_mix import fit_text_mix
from .train_head import train_head

log = logging.getLogger(__name__)

#: Cap on class weights / BCE pos_weight: a label with 26 positives in 13,000 sentences would
#: otherwise get a weight in the hundreds and make training unstable.
MAX_CLASS_WEIGHT = 10.0


def train_classifier(config: ClassifyTrainConfig, callbacks: Sequence = ()) -> Path:
    """Train a classifier as ``config`` says and write the run directory; returns its path.

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (full fine-tuning only).
    """
    started = time.perf_counter()
    out = check_out_dir(config)
    data = load_classification_data(config)  # before anything is written: bad data leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)
    log.info("%s: %d training and %d validation texts, labels %s", config.task, len(data.train_texts),
             len(data.val_texts), data.labels)
    if config.head_only:
        return train_head(config, out, data, started)
    return fine_tune_encoder(config, out, data, started, callbacks)


def _class_weights(data: ClassificationData, multi_label: bool) -> torch.Tensor:
    """Single-label: square root of sklearn's "balanced" weights (full balancing costs accuracy,
    the metric single-label runs are judged by). Multi-label: BCE ``pos_weight`` = negatives /
    positives per label, square-rooted for the same reason. Both capped at MAX_CLASS_WEIGHT."""
    n, k = len(data.train_labels), len(data.labels)
    counts = Counter(label for gold in data.train_labels for label in gold)
    if multi_label:
        raw = [(n - counts[x]) / counts[x] if counts[x] else 1.0 for x in data.labels]
    else:
        raw = [n / (k * counts[x]) if counts[x] else 1.0 for x in data.labels]
    return torch.tensor([min(math.sqrt(w), MAX_CLASS_WEIGHT) for w in raw], dtype=torch.float32)


def _tokenise(tokenizer, texts: list[str], targets: list, max_length: int, stride: int, progress: bool,
              weights: list[float] | None = None):
    """A ``datasets.Dataset`` of windows: every window carries its text's target, its text's
    index (``owner``) so window outputs can be aggregated per text, and, when ``weights`` are
    given, its text's loss weight (``weight``)."""
    import datasets

    def windows(batch: dict) -> dict:
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length, stride=stride,
                        return_overflowing_tokens=True)
        owner = enc.pop("overflow_to_sample_mapping")
        enc["labels"] = [batch["labels"][i] for i in owner]
        enc["owner"] = [batch["owner"][i] for i in owner]
        if "weight" in batch:
            enc["weight"] = [batch["weight"][i] for i in owner]
        return enc

    columns = {"text": texts, "labels": targets, "owner": list(range(len(texts)))}
    if weights is not None:
        columns["weight"] = weights
    ds = datasets.Dataset.from_dict(columns)
    if not progress:
        datasets.disable_progress_bars()
    try:
        return ds.map(windows, batched=True, remove_columns=ds.column_names, desc="tokenising")
    finally:
        if not progress:
            datasets.enable_progress_bars()


def _trainer_class():
    from torch.utils.data import SequentialSampler
    from transformers import Trainer

    class ClassifierTrainer(Trainer):
        """Trainer whose loss may be weighted against label imbalance and by per-example weights,
        and whose evaluation keeps the validation windows in order."""

        #: The loss below is a per-batch mean: let the Trainer scale it for gradient accumulation.
        loss_is_scaled_for_ga = False

        def __init__(self, *args, loss_fn=None, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_fn = loss_fn

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.loss_fn is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs.pop("labels")
            weight = inputs.pop("weight", None)
            outputs = model(**inputs)
            loss = self.loss_fn(outputs.logits.float(), labels, weight)
            return (loss, outputs) if return_outputs else loss

        def _get_eval_sampler(self, eval_dataset):
            # Predictions are matched to texts by position (windows are aggregated per text): the
            # Trainer would otherwise reorder evaluation by length too under group_by_length.
            return SequentialSampler(eval_dataset)

    return ClassifierTrainer


def classification_loss(class_weights: torch.Tensor | None, multi_label: bool):
    """Loss from logits, targets and optional per-example weights. With all example weights 1 it
    is the usual mean loss (weighted cross-entropy normalises by the targets' class weights)."""
    from torch.nn import functional as F

    def loss(logits: torch.Tensor, labels: torch.Tensor, example_weights: torch.Tensor | None = None) -> torch.Tensor:
        w = class_weights.to(logits.device) if class_weights is not None else None
        if multi_label:
            per = F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=w, reduction="none").mean(1)
            return per.mean() if example_weights is None else (per * example_weights.to(per.dtype)).mean()
        targets = labels.long()
        per = F.cross_entropy(logits, targets, weight=w, reduction="none")
        denominator = w[targets].sum() if w is not None else torch.tensor(float(len(targets)), device=logits.device)
        if example_weights is not None:
            per = per * example_weights.to(per.dtype)
        return per.sum() / denominator

    return loss


def _check_resume_labels(checkpoint: Path, labels: list[str]) -> None:
    config = json.loads((checkpoint / "config.json").read_text()) if (checkpoint / "config.json").is_file() else {}
    saved = [config.get("id2label", {}).get(str(i)) for i in range(len(config.get("id2label", {})))]
    if saved and saved != labels:
        raise InvalidParameterError(
            f"cannot resume from {checkpoint}: it was trained on labels {saved}, this run has {labels}"
        )


def fine_tune_encoder(config: ClassifyTrainConfig, out: Path, data: ClassificationData, started: float,
                      callbacks: Sequence = ()) -> Path:
    """Fine-tune the encoder with a classification head (all weights, or LoRA adapters with
    ``config.lora``) on ``data`` with the transformers Trainer, then finish the run in ``out``."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        EarlyStoppingCallback,
        TrainingArguments,
        set_seed,
    )

    from assistant.device import resolve_runtime
    from assistant.models import ENCODER, resolve_model

    runtime = resolve_runtime(config.device, None)
    resolved = resolve_model(config.model, ENCODER)
    labels, multi = data.labels, config.multi_label
    set_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(resolved.location, local_files_only=resolved.local_files_only)
    model = AutoModelForSequenceClassification.from_pretrained(
        resolved.location,
        local_files_only=resolved.local_files_only,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        problem_type="multi_label_classification" if multi else "single_label_classification",
    )
    if config.lora:
        model = _apply_lora(model, config)
    positions = getattr(model.config, "max_position_embeddings", config.max_length)
    max_length = min(config.max_length, positions)
    stride = min(config.stride, max_length // 2)
    if max_length < config.max_length:
        log.warning("max_length %d is longer than the model's %d positions: using %d", config.max_length,
                    positions, max_length)
    weighted = data.train_weights is not None
    train_ds = _tokenise(tokenizer, data.train_texts, label_targets(data.train_labels, labels, multi), max_length,
                         stride, config.progress, data.train_weights)
    # Validation examples carry their own weights (1 where they have none): the eval loss is weighted
    # like the training loss; the reported metrics stay unweighted.
    val_weights = (data.val_weights or [1.0] * len(data.val_texts)) if weighted else None
    val_ds = _tokenise(tokenizer, data.val_texts, label_targets(data.val_labels, labels, multi), max_length, stride,
                       config.progress, val_weights)
    val_owner = torch.tensor(list(val_ds["owner"]))
    n_val = len(data.val_texts)

    def val_probs(logits) -> np.ndarray:
        logits = logits[0] if isinstance(logits, tuple) else logits
        return aggregate_windows(torch.as_tensor(np.asarray(logits)), val_owner, n_val, multi).numpy()

    def compute_metrics(prediction) -> dict:
        from .evaluation import ClassificationEvaluator, apply_thresholds, weighted_metrics

        probs = val_probs(prediction.predictions)
        evaluator = ClassificationEvaluator(labels, multi_label=multi, task=config.task)
        if multi:  # thresholds are tuned once, after training; model selection uses 0.5
            gold, preds = data.val_labels, apply_thresholds(probs, labels, 0.5, data.min_labels)
        else:
            gold, preds = [g[0] for g in data.val_labels], [labels[i] for i in probs.argmax(axis=1)]
        report = evaluator(gold, preds)
        metrics = {"accuracy": report.accuracy, "micro_f1": report.micro_f1, "macro_f1": report.macro_f1}
        if data.val_weights:
            metrics.update(weighted_metrics(gold, preds, labels, multi, data.val_weights))
        return metrics

    # With validation weights, the checkpoint kept is the best on the weighted metric.
    selection = f"weighted_{config.metric}" if data.val_weights else config.metric

    cuda = runtime.device.type == "cuda"
    if cuda and runtime.device.index is not None:
        torch.cuda.set_device(runtime.device)
    strategy = "steps" if (config.eval_steps or config.save_steps) else "epoch"
    eval_steps = config.eval_steps or config.save_steps
    args = TrainingArguments(
        output_dir=str(out / CHECKPOINTS),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size * 2,
        learning_rate=config.effective_learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float below 1 is a ratio of the training steps
        lr_scheduler_type="linear",
        eval_strategy=strategy,
        eval_steps=eval_steps,
        save_strategy=strategy,
        save_steps=config.save_steps or eval_steps,
        save_total_limit=2,  # the newest checkpoint (resume) and the best one (load_best_model_at_end)
        load_best_model_at_end=True,
        metric_for_best_model=selection,
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=max(1, min(50, eval_steps or 50)),
        report_to="none",
        seed=config.seed,
        data_seed=config.seed,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        use_cpu=not cuda,
        disable_tqdm=not config.progress,
        dataloader_num_workers=0,
        # "weight" is not a model input: naming it a label keeps the Trainer from dropping the column.
        label_names=["labels", "weight"] if weighted else None,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )
    trainer_callbacks = list(callbacks)
    if config.early_stopping_patience:
        trainer_callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    common = {"model": model, "args": args, "train_dataset": train_ds, "eval_dataset": val_ds,
              "processing_class": tokenizer, "compute_metrics": compute_metrics, "callbacks": trainer_callbacks}
    loss_fn = None
    if config.class_weights or weighted:
        loss_fn = classification_loss(_class_weights(data, multi) if config.class_weights else None, multi)
    trainer = _trainer_class()(**common, loss_fn=loss_fn)
    checkpoint = last_checkpoint(out / CHECKPOINTS) if config.resume else None
    if config.resume and checkpoint is None:
        log.warning("nothing to resume in %s: training from the start", out / CHECKPOINTS)
    if checkpoint is not None:
        _check_resume_labels(checkpoint, labels)
        log.info("resuming from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.save_model(str(out))  # the best model (load_best_model_at_end), with its tokenizer; LoRA: the adapter
    if config.lora:
        store_half(out / ADAPTER_FILE)  # a compact run is package data: its adapter in half the bytes
    probs = val_probs(trainer.predict(val_ds).predictions)
    state = trainer.state
    extra = {
        "train_windows": len(train_ds),
        "validation_windows": len(val_ds),
        "steps": state.global_step,
        "epochs_trained": round(float(state.epoch or 0), 3),
        "best_checkpoint": Path(state.best_model_checkpoint).name if state.best_model_checkpoint else None,
        "resumed_from": checkpoint.name if checkpoint else None,
        "train_loss": round(float(result.training_loss), 6),
        "selected_by": f"validation {selection}",
    }
    if config.lora:
        extra["trainable_parameters"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    mix = 0.0
    if config.text_mix:
        probs, mix, mix_metrics = fit_text_mix(config, data, probs, out)
        extra.update(mix_metrics)
    # The effective window goes into the run's config: the assistant predicts with it.
    return finish_run(config, out, data, "classifier-lora" if config.lora else "classifier", probs, started, extra,
                   {"max_length": max_length, "stride": stride, "learning_rate": config.effective_learning_rate},
                   base_fingerprint=weights_fingerprint(resolved) if config.lora else None, text_mix=mix)


#: The BERT-class modules LoRA adapts: attention projections and every dense layer (the
#: feed-forward ones and the pooler); the classification head is trained in full (peft's SEQ_CLS
#: task saves it beside the adapter).
LORA_TARGETS = ("query", "key", "value", "dense")


def _apply_lora(model, config: ClassifyTrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(task_type="SEQ_CLS", r=config.lora_r, lora_alpha=config.lora_alpha,
                      lora_dropout=config.lora_dropout, target_modules=list(LORA_TARGETS))
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # an encoder whose layers have other names
        raise InvalidParameterError(f"LoRA cannot adapt {config.model}: {exc}") from exc
