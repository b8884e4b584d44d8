"""Fine-tuning an encoder classifier on a user's labelled data (``finassist finetune classify``),
and evaluating classifiers (``finassist eval classify``).

Two ways to train, one result: a run directory the assistant loads for the task
(``Assistant(classifiers={task: run_dir})``, ``--classifier TASK=RUN_DIR``).

* Full fine-tuning (default): ``AutoModelForSequenceClassification`` trained with the
  transformers ``Trainer`` (weighted loss for imbalanced labels, early stopping on the
  validation metric, best checkpoint kept, exact resume from the last checkpoint). Saved with
  ``save_pretrained``, so the run directory is also a plain transformers model.
* Head only (``head_only=True``): the encoder stays frozen; its sentence embeddings (the
  assistant's own pooling, ``Engine.encode``) train a scikit-learn logistic regression in
  about a minute on a laptop CPU. Saved as ``head.safetensors`` plus a copy of the encoder.

Texts longer than ``max_length`` tokens are cut into overlapping windows (``stride`` tokens of
overlap). At training time every window is an example carrying its text's label; at prediction
time window outputs are aggregated per text (mean logits for single-label, max probability for
multi-label), the same code as the assistant uses (``assistant.classifiers``).

After training, multi-label runs get per-label decision thresholds tuned on the validation split,
and the validation split is evaluated with the evaluator of ``finetune.evaluation``; the report
(JSON, Markdown, chart) goes to ``<out>/eval/``, the figures into the run file and model card.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from assistant.classifiers import (
    ENCODER_DIR,
    HEAD_FILE,
    TEXT_FEATURES,
    aggregate_windows,
    word_vectorizer,
    word_vectorizer_state,
)
from assistant.errors import InvalidParameterError
from assistant.models import weights_fingerprint
from assistant.runs import RUN_FILE, is_run

from .data import (
    DataError,
    check_field,
    check_labels,
    exclude,
    labels_of,
    load_records,
    split_validation,
    text_of,
    weight_of,
)
from .runs import config_command, write_run

log = logging.getLogger(__name__)

PROGRAM = "finassist finetune classify"
CHECKPOINTS = "checkpoints"
EVAL_DIR = "eval"
#: Cap on class weights / BCE pos_weight: a label with 26 positives in 13,000 sentences would
#: otherwise get a weight in the hundreds and make training unstable.
MAX_CLASS_WEIGHT = 10.0
#: Inverse-regularisation strengths tried for the head-only logistic regression (picked on
#: validation). Embeddings and TF-IDF rows are L2-normalised, so useful values are large.
HEAD_C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
#: Head-only inputs: the sentence embedding, plus TF-IDF text features (``assistant.classifiers.TEXT_FEATURES``).
HEAD_FEATURES = ("embedding", "embedding+words", "embedding+words+chars")
_TASK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class ClassifyTrainConfig:
    """Everything a classifier fine-tuning run needs; each field is a CLI option."""

    task: str = field(metadata={"help": "name of the classification task this model serves (sentiment, unfair-tos, ...)"})
    train: str = field(metadata={"help": "training data: a .jsonl/.json/.csv file or a Hugging Face dataset id"})
    out: str = field(metadata={"help": "run directory to write (the fine-tuned model, reports, model card)"})
    model: str = _opt("minilm-l6", "base encoder: preset, Hugging Face id or local path")
    text_field: str = _opt("text", "field holding the text")
    label_field: str = _opt("label", "field holding the label (a list, or ';'-separated, for multi-label)")
    weight_field: str | None = _opt(
        None, "field holding each training example's loss weight, a number 0 or more (e.g. annotator "
              "agreement, so ambiguous examples count less); default: every example weighs 1")
    val: str | None = _opt(None, "validation data (default: carved from the training data)")
    val_fraction: float = _opt(0.1, "share of the training data held out for validation when --val is not given")
    group_field: str | None = _opt(
        None, "hold out whole groups for validation (e.g. 'document'), so no document is in both splits")
    exclude: str | None = _opt(
        None, "a data file whose texts are removed from the training data (e.g. a held-out test set)")
    multi_label: bool = _opt(False, "each text has zero or more labels (default: exactly one)")
    head_only: bool = _opt(False, "freeze the encoder and train only a linear head on its embeddings (fast on CPU)")
    lora: bool = _opt(
        False, "train LoRA adapters on the encoder's linear layers and the classification head (peft); the run "
               "stores only those (a few MB) and loads the base model by name, checked by its fingerprint")
    lora_r: int = _opt(16, "LoRA rank")
    lora_alpha: int = _opt(32, "LoRA scaling (alpha)")
    lora_dropout: float = _opt(0.1, "dropout on the LoRA path")
    group_by_length: bool = _opt(
        False, "batch texts of similar length together (less padding: faster on CPU; the order stays seeded)")
    copy_encoder: bool = _opt(
        True, "head-only: copy the encoder into the run (self-contained); --no-copy-encoder stores a reference "
              "to the base model and its fingerprint instead (compact, for models shipped with the package)")
    features: str = _opt(
        "embedding", "head-only inputs: 'embedding' (sentence embeddings), 'embedding+words' (plus TF-IDF words "
                     "and bigrams: better for formulaic text such as legal clauses) or 'embedding+words+chars' "
                     "(plus character 3-5-grams too: slower to fit, best on contract clauses)")
    cv_folds: int = _opt(
        0, "head-only: pick the regularisation and the thresholds by K-fold cross-validation over all the "
           "training data (whole groups per fold with --group-field), then train on all of it; 0: use a "
           "validation split")
    head_c: str | None = _opt(
        None, "head-only: comma-separated regularisation strengths C to choose from (default: "
              + ",".join(f"{c:g}" for c in HEAD_C_GRID) + ")")
    max_word_features: int | None = _opt(
        None, "head-only: the most word/bigram columns kept (default: the text features' own setting)")
    max_char_features: int | None = _opt(
        None, "head-only: the most character n-gram columns kept (default: the text features' own setting)")
    min_labels: int | None = _opt(
        None, "multi-label: every text gets at least this many labels, its best-scoring ones when too few "
              "pass their thresholds (default: the fewest labels any training text has, so 1 when every "
              "training text has a label, as contract clauses do, and 0 when some have none)")
    labels: str | None = _opt(
        None, "comma-separated label set (default: the labels seen in the training data); "
              "multi-label texts with no label are negatives")
    epochs: float = _opt(5.0, "training epochs (early stopping may end sooner)")
    max_steps: int | None = _opt(None, "stop after this many optimiser steps (overrides --epochs)")
    batch_size: int = _opt(32, "training batch size")
    learning_rate: float = _opt(5e-5, "peak learning rate (linear warm-up then linear decay)")
    weight_decay: float = _opt(0.01, "AdamW weight decay")
    warmup_ratio: float = _opt(0.1, "share of the training steps spent warming the learning rate up")
    max_length: int = _opt(256, "tokens per window; longer texts are cut into overlapping windows")
    stride: int = _opt(64, "tokens of overlap between consecutive windows of a long text")
    class_weights: bool = _opt(
        True, "weight the loss against label imbalance (weighted cross-entropy / BCE pos_weight, capped)")
    early_stopping_patience: int = _opt(
        2, "stop after this many evaluations without improvement of the validation metric (0: never)")
    eval_steps: int | None = _opt(None, "evaluate every N steps (default: every epoch)")
    save_steps: int | None = _opt(None, "checkpoint every N steps (default: at every evaluation)")
    seed: int = _opt(0, "random seed (data split, initialisation, data order)")
    resume: bool = _opt(False, "continue from the last checkpoint in <out>/checkpoints")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    max_train_samples: int | None = _opt(None, "train on a seeded random subset of this many records")
    limit_val: int | None = _opt(None, "validate on a seeded random subset of this many records")
    progress: bool = _opt(True, "show progress bars")

    def __post_init__(self) -> None:
        def bad(message: str) -> None:
            raise InvalidParameterError(message)

        for name in ("task", "train", "out"):
            if not str(getattr(self, name) or "").strip():
                bad(f"{name} is required")
        if not _TASK_NAME.match(self.task):
            bad(f"task name {self.task!r} must be letters, digits, '-', '_' or '.'")
        if not 0 < self.val_fraction < 1:
            bad(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if not self.epochs > 0:
            bad(f"epochs must be positive, got {self.epochs}")
        if not self.learning_rate > 0:
            bad(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            bad(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        for name in ("batch_size", "max_steps", "eval_steps", "save_steps", "max_train_samples", "limit_val"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                bad(f"{name} must be a positive integer, got {value!r}")
        if self.early_stopping_patience < 0:
            bad(f"early_stopping_patience must be 0 or more, got {self.early_stopping_patience}")
        if self.max_length < 16:
            bad(f"max_length must be at least 16 tokens, got {self.max_length}")
        if not 0 <= self.stride <= self.max_length // 2:
            bad(f"stride must be between 0 and max_length/2 ({self.max_length // 2}), got {self.stride}")
        if self.features not in HEAD_FEATURES:
            bad(f"features must be one of {', '.join(HEAD_FEATURES)}, got {self.features!r}")
        if self.lora and self.head_only:
            bad("lora and head_only are two different ways to train: choose one")
        for name in ("lora_r", "lora_alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                bad(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= self.lora_dropout < 1:
            bad(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.copy_encoder and not self.head_only:
            bad("copy_encoder is a head-only setting (a full fine-tune changes the encoder; --lora stores only "
                "the adapter)")
        if (self.head_c or self.max_word_features or self.max_char_features) and not self.head_only:
            bad("head_c, max_word_features and max_char_features are head-only settings: add head_only (--head-only)")
        if self.head_c is not None:
            _c_grid(self.head_c)  # refused here, before any data is read
        for name in ("max_word_features", "max_char_features"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
                bad(f"{name} must be a positive integer, got {value!r}")
        if self.features != "embedding" and not self.head_only:
            bad(f"features {self.features!r} is a head-only setting: add head_only (--head-only)")
        if isinstance(self.cv_folds, bool) or int(self.cv_folds) != self.cv_folds or self.cv_folds == 1 \
                or self.cv_folds < 0:
            bad(f"cv_folds must be 0 (no cross-validation) or 2 or more, got {self.cv_folds!r}")
        if self.cv_folds and not self.head_only:
            bad("cv_folds is a head-only setting (a full fine-tune per fold would take K times as long): "
                "add head_only (--head-only)")
        if self.min_labels is not None:
            if isinstance(self.min_labels, bool) or int(self.min_labels) != self.min_labels or self.min_labels < 0:
                bad(f"min_labels must be 0 or more, got {self.min_labels!r}")
            if not self.multi_label:
                bad("min_labels is a multi-label setting (a single-label model always gives one label): "
                    "add multi_label (--multi-label) or leave it out")
        if self.cv_folds and self.val:
            bad("cv_folds replaces the validation split: give val or cv_folds, not both")
        if self.eval_steps and self.save_steps and self.save_steps % self.eval_steps:
            bad(f"save_steps ({self.save_steps}) must be a multiple of eval_steps ({self.eval_steps}): "
                "the best checkpoint is chosen at evaluations")

    @property
    def c_grid(self) -> tuple[float, ...]:
        """The regularisation strengths a head run chooses from."""
        return _c_grid(self.head_c) if self.head_c else HEAD_C_GRID

    def text_feature_settings(self, feature) -> dict:
        """A text feature's vectorizer settings, with this run's cap on its columns."""
        cap = {"words": self.max_word_features, "chars": self.max_char_features}.get(feature.name)
        return {**feature.settings, "max_features": cap} if cap else dict(feature.settings)

    @property
    def metric(self) -> str:
        """The validation metric the best checkpoint is chosen by."""
        return "macro_f1" if self.multi_label else "accuracy"


def _c_grid(spec: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in str(spec).split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or any(not (v > 0 and math.isfinite(v)) for v in values):
        raise InvalidParameterError(f"head_c must be comma-separated positive numbers, got {spec!r}")
    return values


# --------------------------------------------------------------------------- data


@dataclass
class _Data:
    """Texts and labels of both splits, with where they came from (for the model card)."""

    labels: list[str]
    train_texts: list[str]
    train_labels: list[list[str]]
    val_texts: list[str]
    val_labels: list[list[str]]
    sources: list[dict]
    #: Per-example training loss weights (``weight_field``); None: all 1.
    train_weights: list[float] | None = None
    #: Each training text's group (``group_field``), for cross-validation folds.
    train_groups: list[str] | None = None
    #: Validation weights (``weight_field``, when the validation records have it): the metric
    #: that picks the best checkpoint is weighted by them too.
    val_weights: list[float] | None = None
    #: Multi-label: the fewest labels a prediction has (``min_labels``, or learned from the training data).
    min_labels: int = 0


def _subset(records: list[dict], n: int | None, seed: int) -> list[dict]:
    if n is None or n >= len(records):
        return records
    keep = set(random.Random(seed).sample(range(len(records)), n))
    return [r for i, r in enumerate(records) if i in keep]


def _parse_labels(spec: str) -> list[str]:
    labels = [x.strip() for x in spec.split(",") if x.strip()]
    if len(set(labels)) != len(labels):
        raise InvalidParameterError(f"labels has duplicates: {spec!r}")
    return labels


def load_data(config: ClassifyTrainConfig) -> _Data:
    """Read, check and split the data. Every problem is a ``DataError`` naming file and line."""
    required = (config.text_field, config.label_field)
    train = load_records(config.train, split="train",
                         required=required + ((config.weight_field,) if config.weight_field else ()))
    for record in train if config.weight_field else ():
        # Parsed once, here: a bad weight is named by its line before anything else is checked.
        record[config.weight_field] = weight_of(record, config.weight_field)
    sources = [{"source": config.train, "role": "train", "records": len(train)}]
    if config.exclude:
        others = load_records(config.exclude, split="train", required=(config.text_field,))
        before = len(train)
        train = exclude(train, others, config.text_field)
        sources.append({"source": config.exclude, "role": f"excluded from train ({before - len(train)} records)",
                        "records": len(others)})
        if not train:
            raise DataError(f"{config.train}: no records left after excluding the texts of {config.exclude}")
    # The label set is what the training file holds, before any split: a label whose only examples
    # land in the validation split still belongs to the task.
    seen = sorted({label for r in train for label in labels_of(r, config.label_field, config.multi_label)})
    if config.val:
        val = load_records(config.val, split="validation", required=required)
        sources.append({"source": config.val, "role": "validation", "records": len(val)})
    elif config.cv_folds:
        val = []  # every record is validated out of fold
        how = f"whole {config.group_field!r} groups per fold" if config.group_field else "seeded folds"
        sources[0]["role"] = f"train, {config.cv_folds}-fold cross-validation ({how}, seed {config.seed})"
    else:
        stratify = None if config.multi_label or config.group_field else config.label_field
        train, val = split_validation(train, config.val_fraction, config.seed,
                                      group_field=config.group_field, stratify_field=stratify)
        how = f"by {config.group_field!r}" if config.group_field else ("stratified" if stratify else "random")
        sources[0]["role"] = f"train ({len(train)}) and validation ({len(val)}, {how}, seed {config.seed})"
    train = _subset(train, config.max_train_samples, config.seed)
    val = _subset(val, config.limit_val, config.seed)
    labels = _parse_labels(config.labels) if config.labels else seen
    if not labels:
        raise DataError(f"{config.train}: no labels found in field {config.label_field!r}")
    if len(labels) < 2 and not config.multi_label:
        raise DataError(f"{config.train}: a single-label classifier needs at least 2 labels, found {labels}")
    if not config.multi_label and len({labels_of(r, config.label_field, False)[0] for r in train}) < 2:
        raise DataError(f"{config.train}: the training split holds only one label: nothing to tell apart")
    check_labels(train, config.label_field, config.multi_label, labels)
    check_labels(val, config.label_field, config.multi_label, labels)
    groups = None
    if config.cv_folds and config.group_field:
        check_field(train, config.group_field)
        groups = [str(r[config.group_field]) for r in train]
        if len(set(groups)) < config.cv_folds:
            raise DataError(f"{config.train}: {len(set(groups))} {config.group_field!r} groups are too few for "
                            f"{config.cv_folds} folds")

    def texts(records: list[dict]) -> list[str]:
        return [text_of(r, config.text_field) for r in records]

    def golds(records: list[dict]) -> list[list[str]]:
        return [labels_of(r, config.label_field, config.multi_label) for r in records]

    weights = val_weights = None
    if config.weight_field:
        weights = [r[config.weight_field] for r in train]
        if not any(weights):
            raise DataError(f"{config.train}: every training example has weight 0 in field {config.weight_field!r}")
        if val and all(config.weight_field in r for r in val):
            val_weights = [weight_of(r, config.weight_field) for r in val]
            val_weights = val_weights if any(val_weights) else None
    train_labels = golds(train)
    min_labels = 0
    if config.multi_label:
        min_labels = config.min_labels if config.min_labels is not None else min(map(len, train_labels), default=0)
    return _Data(labels, texts(train), train_labels, texts(val), golds(val), sources, weights, groups, val_weights,
                 min_labels)


def _class_weights(data: _Data, multi_label: bool) -> torch.Tensor:
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


# ------------------------------------------------------------------------ helpers


def _check_out(config: ClassifyTrainConfig) -> Path:
    """The run directory, refused when it holds an earlier run that ``resume`` does not continue."""
    out = Path(config.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"out {out} exists and is not a directory")
    if not config.resume and (is_run(out) or _last_checkpoint(out / CHECKPOINTS)):
        raise InvalidParameterError(
            f"{out} already holds a run or its checkpoints: pass resume (--resume) to continue it, "
            "or choose another out folder"
        )
    return out


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (one killed while saving has no trainer state)."""
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    steps = [(int(p.name.rsplit("-", 1)[1]), p) for p in done if p.name.rsplit("-", 1)[1].isdigit()]
    return max(steps)[1] if steps else None


def _evaluate_predictions(config: ClassifyTrainConfig, data: _Data, probs: np.ndarray, **extra):
    """Validation report from per-text probabilities; multi-label thresholds tuned here."""
    from .evaluation import ClassificationEvaluator, apply_thresholds, tune_thresholds

    evaluator = ClassificationEvaluator(data.labels, multi_label=config.multi_label, task=config.task)
    if not config.multi_label:
        preds = [data.labels[i] for i in probs.argmax(axis=1)]
        return evaluator([g[0] for g in data.val_labels], preds, **extra), None, {}
    thresholds = tune_thresholds(data.val_labels, probs, data.labels)
    report = evaluator(data.val_labels, apply_thresholds(probs, data.labels, thresholds, data.min_labels),
                       thresholds=thresholds, thresholds_tuned_on="this validation split",
                       min_labels=data.min_labels, **extra)
    at_half = evaluator(data.val_labels, apply_thresholds(probs, data.labels, 0.5, data.min_labels))
    untuned = {"micro_f1": at_half.micro_f1, "macro_f1": at_half.macro_f1, "accuracy": at_half.accuracy}
    return report, thresholds, {"validation_at_threshold_0.5": untuned}


def _finish(config: ClassifyTrainConfig, out: Path, data: _Data, kind: str, probs: np.ndarray, started: float,
            extra_metrics: dict, effective: dict | None = None, base_fingerprint: str | None = None) -> Path:
    """Evaluate validation, write the report and the run. ``effective``: settings that differ from
    the config as run (a window fitted to the model); the run file records those, the command
    line records what was asked for."""
    report, thresholds, more = _evaluate_predictions(config, data, probs, model=str(out), split="validation")
    report.save(out / EVAL_DIR, "validation")
    metrics = {
        "accuracy": report.accuracy,
        "micro_f1": report.micro_f1,
        "macro_f1": report.macro_f1,
        "validation_records": len(data.val_texts),
        "train_records": len(data.train_texts),
        **extra_metrics,
        **more,
    }
    seconds = time.perf_counter() - started
    write_run(out, kind=kind, task=config.task, base_model=config.model,
              config={**asdict(config), **(effective or {})}, data=data.sources, metrics=metrics,
              command=config_command(PROGRAM, config), labels=data.labels, multi_label=config.multi_label,
              thresholds=thresholds, min_labels=data.min_labels, seconds=seconds, base_fingerprint=base_fingerprint)
    log.info("%s run written to %s: %s %.4f", config.task, out, config.metric, metrics[config.metric])
    return out


# ------------------------------------------------------------------ full fine-tuning


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


def _targets(data_labels: list[list[str]], labels: list[str], multi_label: bool) -> list:
    index = {label: i for i, label in enumerate(labels)}
    if not multi_label:
        return [index[g[0]] for g in data_labels]
    rows = []
    for gold in data_labels:
        row = [0.0] * len(labels)
        for label in gold:
            row[index[label]] = 1.0
        rows.append(row)
    return rows


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


def _loss_fn(class_weights: torch.Tensor | None, multi_label: bool):
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


def _weighted_metrics(gold: list, preds: list, labels: list[str], multi_label: bool,
                      weights: list[float]) -> dict[str, float]:
    """Accuracy and F1 with each validation example counted by its weight (scikit-learn's
    ``sample_weight``): examples annotators agreed on can count more in model selection."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    if multi_label:
        binarizer = MultiLabelBinarizer(classes=labels)
        gold, preds, scored = binarizer.fit_transform(gold), binarizer.transform(preds), None
    else:
        scored = labels
    f1 = partial(f1_score, gold, preds, labels=scored, sample_weight=weights, zero_division=0)
    return {"weighted_accuracy": float(accuracy_score(gold, preds, sample_weight=weights)),
            "weighted_micro_f1": float(f1(average="micro")), "weighted_macro_f1": float(f1(average="macro"))}


def _check_resume_labels(checkpoint: Path, labels: list[str]) -> None:
    config = json.loads((checkpoint / "config.json").read_text()) if (checkpoint / "config.json").is_file() else {}
    saved = [config.get("id2label", {}).get(str(i)) for i in range(len(config.get("id2label", {})))]
    if saved and saved != labels:
        raise InvalidParameterError(
            f"cannot resume from {checkpoint}: it was trained on labels {saved}, this run has {labels}"
        )


def _train_full(config: ClassifyTrainConfig, out: Path, data: _Data, started: float,
                callbacks: Sequence = ()) -> Path:
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
    train_ds = _tokenise(tokenizer, data.train_texts, _targets(data.train_labels, labels, multi), max_length,
                         stride, config.progress, data.train_weights)
    # Validation examples carry their own weights (1 where they have none): the eval loss is weighted
    # like the training loss; the reported metrics stay unweighted.
    val_weights = (data.val_weights or [1.0] * len(data.val_texts)) if weighted else None
    val_ds = _tokenise(tokenizer, data.val_texts, _targets(data.val_labels, labels, multi), max_length, stride,
                       config.progress, val_weights)
    val_owner = torch.tensor(list(val_ds["owner"]))
    n_val = len(data.val_texts)

    def val_probs(logits) -> np.ndarray:
        logits = logits[0] if isinstance(logits, tuple) else logits
        return aggregate_windows(torch.as_tensor(np.asarray(logits)), val_owner, n_val, multi).numpy()

    def compute_metrics(prediction) -> dict:
        from .evaluation import ClassificationEvaluator, apply_thresholds

        probs = val_probs(prediction.predictions)
        evaluator = ClassificationEvaluator(labels, multi_label=multi, task=config.task)
        if multi:  # thresholds are tuned once, after training; model selection uses 0.5
            gold, preds = data.val_labels, apply_thresholds(probs, labels, 0.5, data.min_labels)
        else:
            gold, preds = [g[0] for g in data.val_labels], [labels[i] for i in probs.argmax(axis=1)]
        report = evaluator(gold, preds)
        metrics = {"accuracy": report.accuracy, "micro_f1": report.micro_f1, "macro_f1": report.macro_f1}
        if data.val_weights:
            metrics.update(_weighted_metrics(gold, preds, labels, multi, data.val_weights))
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
        learning_rate=config.learning_rate,
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
        loss_fn = _loss_fn(_class_weights(data, multi) if config.class_weights else None, multi)
    trainer = _trainer_class()(**common, loss_fn=loss_fn)
    checkpoint = _last_checkpoint(out / CHECKPOINTS) if config.resume else None
    if config.resume and checkpoint is None:
        log.warning("nothing to resume in %s: training from the start", out / CHECKPOINTS)
    if checkpoint is not None:
        _check_resume_labels(checkpoint, labels)
        log.info("resuming from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    trainer.save_model(str(out))  # the best model (load_best_model_at_end), with its tokenizer; LoRA: the adapter
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
    # The effective window goes into the run's config: the assistant predicts with it.
    return _finish(config, out, data, "classifier-lora" if config.lora else "classifier", probs, started, extra,
                   {"max_length": max_length, "stride": stride},
                   base_fingerprint=weights_fingerprint(resolved) if config.lora else None)


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


# ------------------------------------------------------------------------ head only


def _encode(engine, texts: list[str], progress: bool, desc: str) -> np.ndarray:
    from tqdm.auto import tqdm

    chunk = 256  # progress granularity; the engine batches inside each chunk
    parts = [engine.encode(texts[i : i + chunk], batch_size=64)
             for i in tqdm(range(0, len(texts), chunk), desc=desc, disable=not progress, unit="chunk")]
    return torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32)


def _head_weights(clf, labels: list[str], dim: int, multi_label: bool) -> tuple[np.ndarray, np.ndarray]:
    """(weight (n_labels, dim), bias (n_labels,)) in ``labels`` order from a fitted sklearn model,
    so prediction needs only a matrix product (no pickled scikit-learn objects in the run)."""
    weight = np.zeros((len(labels), dim), dtype=np.float32)
    bias = np.full(len(labels), -30.0, dtype=np.float32)  # a label never seen in training is never predicted
    if multi_label:
        for j, est in enumerate(clf.estimators_):
            if hasattr(est, "coef_"):
                weight[j], bias[j] = est.coef_[0], est.intercept_[0]
            else:  # a label that is always or never present: sklearn keeps a constant
                bias[j] = 30.0 if float(np.ravel(est.predict(np.zeros((1, dim))))[0]) > 0.5 else -30.0
        return weight, bias
    classes = list(clf.classes_)
    index = [labels.index(c) for c in classes]
    if len(classes) == 2:  # sklearn's binary model has one row: softmax([0, z]) == sigmoid(z)
        weight[index[0]], bias[index[0]] = 0.0, 0.0
        weight[index[1]], bias[index[1]] = clf.coef_[0], clf.intercept_[0]
    else:
        for row, j in enumerate(index):
            weight[j], bias[j] = clf.coef_[row], clf.intercept_[row]
    return weight, bias


def _head_probs(x, weight: np.ndarray, bias: np.ndarray, multi_label: bool) -> np.ndarray:
    logits = torch.from_numpy(np.asarray(x @ weight.T + bias, dtype=np.float32))
    return (torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)).numpy()


def _save_encoder(engine, target: Path) -> None:
    """A self-contained copy of the encoder: weights, tokenizer and the sentence-transformers
    files that decide pooling and window (so the run embeds exactly as it was trained)."""
    enc = engine.encoder
    enc.model.save_pretrained(target)
    enc.tokenizer.save_pretrained(target)
    source = Path(enc.resolved.location)
    for name in ("sentence_bert_config.json", "modules.json", "config_sentence_transformers.json"):
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    if (source / "1_Pooling").is_dir():
        shutil.copytree(source / "1_Pooling", target / "1_Pooling", dirs_exist_ok=True)


class _HeadFitter:
    """Fits the head-only logistic regression on embeddings (and TF-IDF text features) of chosen texts.

    ``inputs(rows)`` builds the feature matrix of the texts at ``rows`` (text features fitted on
    those rows only, so a cross-validation fold never sees the vocabulary of the texts it is
    scored on); ``fit`` trains a head on it for one C; ``probs`` scores other texts.
    A head is (weight over the feature columns, bias, the fitted text vectorizers in
    ``text_features`` order).
    """

    def __init__(self, config: ClassifyTrainConfig, data: _Data, embeddings: np.ndarray) -> None:
        from sklearn.preprocessing import MultiLabelBinarizer

        self.config, self.data, self.embeddings = config, data, embeddings
        self.multi, self.labels = config.multi_label, data.labels
        self.text_features = [TEXT_FEATURES[name] for name in config.features.split("+")[1:]]
        if self.multi:
            self.y = MultiLabelBinarizer(classes=self.labels).fit_transform(data.train_labels)
        else:
            self.y = np.array([g[0] for g in data.train_labels])
        self.weights = None if data.train_weights is None else np.asarray(data.train_weights)

    def inputs(self, rows: np.ndarray):
        """(feature matrix of the texts at ``rows``, the text vectorizers fitted on them)."""
        texts = [self.data.train_texts[i] for i in rows]
        vectorizers = [word_vectorizer(self.config.text_feature_settings(f)).fit(texts) for f in self.text_features]
        return self.features(self.embeddings[rows], texts, vectorizers), vectorizers

    def features(self, embeddings: np.ndarray, texts: list[str], vectorizers: list):
        if not vectorizers:
            return embeddings
        from scipy import sparse

        blocks = [sparse.csr_matrix(embeddings)] + [v.transform(texts) for v in vectorizers]
        return sparse.hstack(blocks, format="csr")

    def fit(self, inputs, rows: np.ndarray, c: float):
        import joblib
        import sklearn
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier

        x, vectorizers = inputs
        fit_params = {} if self.weights is None else {"sample_weight": self.weights[rows]}
        weighting = "balanced" if self.config.class_weights else None
        # liblinear suits the one-vs-rest binary problems (sparse word columns too); lbfgs the multinomial one.
        solver = "liblinear" if self.multi else "lbfgs"
        # Metadata routing is how scikit-learn passes sample weights through OneVsRestClassifier.
        # The per-label fits run in threads: liblinear releases the GIL, so they use every core, and
        # its primal L2 logistic solver is deterministic, so the result does not depend on the order.
        with warnings.catch_warnings(), sklearn.config_context(enable_metadata_routing=True), \
                joblib.parallel_config(backend="threading"):
            warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
            base = LogisticRegression(C=c, class_weight=weighting, max_iter=3000, solver=solver,
                                      random_state=self.config.seed)
            base.set_fit_request(sample_weight=True)
            clf = (OneVsRestClassifier(base, n_jobs=-1) if self.multi else base).fit(x, self.y[rows], **fit_params)
        weight, bias = _head_weights(clf, self.labels, x.shape[1], self.multi)
        return weight, bias, vectorizers

    def probs(self, head, embeddings: np.ndarray, texts: list[str]) -> np.ndarray:
        weight, bias, vectorizers = head
        return _head_probs(self.features(embeddings, texts, vectorizers), weight, bias, self.multi)

    def score(self, gold: list[list[str]], probs: np.ndarray) -> float:
        """The validation metric, at thresholds tuned on these predictions for multi-label (as the
        saved run will be): C is chosen for the metric the run will actually get."""
        from .evaluation import ClassificationEvaluator, apply_thresholds, tune_thresholds

        evaluator = ClassificationEvaluator(self.labels, multi_label=self.multi, task=self.config.task)
        if self.multi:
            thresholds = tune_thresholds(gold, probs, self.labels)
            return evaluator(gold, apply_thresholds(probs, self.labels, thresholds, self.data.min_labels)).macro_f1
        return evaluator([g[0] for g in gold], [self.labels[i] for i in probs.argmax(1)]).accuracy


def _cv_folds(config: ClassifyTrainConfig, data: _Data) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold, KFold, StratifiedKFold

    n = len(data.train_texts)
    if data.train_groups is not None:
        splits = GroupKFold(n_splits=config.cv_folds).split(np.zeros(n), groups=data.train_groups)
    elif config.multi_label:
        splits = KFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed).split(np.zeros(n))
    else:
        y = [g[0] for g in data.train_labels]
        splits = StratifiedKFold(n_splits=config.cv_folds, shuffle=True, random_state=config.seed).split(np.zeros(n), y)
    try:
        return [(np.asarray(a), np.asarray(b)) for a, b in splits]
    except ValueError as exc:  # fewer texts than folds
        raise DataError(f"{config.train}: cannot make {config.cv_folds} folds: {exc}") from exc


def _train_head(config: ClassifyTrainConfig, out: Path, data: _Data, started: float) -> Path:
    from dataclasses import replace

    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from assistant.engine import Engine

    from .evaluation.report import write_json

    engine = Engine(encoder=config.model, device=config.device)
    x_train = _encode(engine, data.train_texts, config.progress, "embedding train")
    dim = x_train.shape[1]
    fitter = _HeadFitter(config, data, x_train)
    everything = np.arange(len(data.train_texts))
    bar = partial(tqdm, desc="fitting head", unit="fit", disable=not config.progress)
    scores: dict[float, float] = {}
    if config.cv_folds:
        # Every training text is scored by a head that did not see it (nor its group): C and the
        # thresholds are chosen on all the data, then the head is refitted on all of it.
        folds = _cv_folds(config, data)
        grid = config.c_grid
        oof = {c: np.zeros((len(everything), len(data.labels)), dtype=np.float32) for c in grid}
        with bar(total=len(folds) * len(grid)) as progress:
            for fit_rows, held_rows in folds:
                held_texts = [data.train_texts[i] for i in held_rows]
                inputs = fitter.inputs(fit_rows)
                for c in grid:
                    head = fitter.fit(inputs, fit_rows, c)
                    oof[c][held_rows] = fitter.probs(head, x_train[held_rows], held_texts)
                    progress.update()
        scores = {c: fitter.score(data.train_labels, oof[c]) for c in grid}
        c = max(scores, key=scores.get)
        head, probs = fitter.fit(fitter.inputs(everything), everything, c), oof[c]
        reported = replace(data, val_texts=data.train_texts, val_labels=data.train_labels)
    else:
        x_val = _encode(engine, data.val_texts, config.progress, "embedding validation")
        best, inputs = None, fitter.inputs(everything)
        for c in bar(config.c_grid):  # a small search on validation: cheap, and C matters here
            head = fitter.fit(inputs, everything, c)
            probs = fitter.probs(head, x_val, data.val_texts)
            scores[c] = fitter.score(data.val_labels, probs)
            if best is None or scores[c] > scores[best[0]]:
                best = (c, head, probs)
        c, head, probs = best
        reported = data
    for value, score in scores.items():
        log.info("head C=%g: validation %s %.4f", value, config.metric, score)
    weight, bias, vectorizers = head
    tensors = {"weight": torch.from_numpy(weight[:, :dim].copy()), "bias": torch.from_numpy(bias)}
    extra: dict = {}
    start = dim  # each text feature's columns follow the embedding's, in order
    for feature, vectorizer in zip(fitter.text_features, vectorizers, strict=True):
        size = len(vectorizer.vocabulary_)
        columns = torch.from_numpy(weight[:, start : start + size].copy())
        # A compact run (shipped with the package) keeps its many text-feature weights in float16:
        # half the size, and the scores move by far less than the thresholds' resolution.
        tensors[feature.tensor] = columns if config.copy_encoder else columns.half()
        write_json(word_vectorizer_state(vectorizer, config.text_feature_settings(feature)), out / feature.file)
        extra[feature.tensor.removesuffix("_weight") + "_features"] = size  # word_features, char_features
        start += size
    save_file(tensors, str(out / HEAD_FILE),
              metadata={"labels": json.dumps(data.labels), "multi_label": str(config.multi_label)})
    fingerprint = None
    if config.copy_encoder:
        _save_encoder(engine, out / ENCODER_DIR)
    else:  # the run names its base model (config.model) and the fingerprint of the weights it was fitted on
        fingerprint = weights_fingerprint(engine.encoder.resolved)
    extra.update(head_C=c, embedding_dim=dim, head_C_scores={str(k): round(v, 4) for k, v in scores.items()})
    if config.cv_folds:
        extra["validation"] = f"{config.cv_folds}-fold cross-validation, out-of-fold predictions"
    return _finish(config, out, reported, "classifier-head", probs, started, extra, base_fingerprint=fingerprint)


# ------------------------------------------------------------------------- public


def train_classifier(config: ClassifyTrainConfig, callbacks: Sequence = ()) -> Path:
    """Train a classifier as ``config`` says and write the run directory; returns its path.

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (full fine-tuning only).
    """
    started = time.perf_counter()
    out = _check_out(config)
    data = load_data(config)  # before anything is written: bad data leaves no folder behind
    out.mkdir(parents=True, exist_ok=True)
    log.info("%s: %d training and %d validation texts, labels %s", config.task, len(data.train_texts),
             len(data.val_texts), data.labels)
    if config.head_only:
        return _train_head(config, out, data, started)
    return _train_full(config, out, data, started, callbacks)


def evaluate_classifier(
    model: str,
    data: str,
    task: str | None = None,
    text_field: str = "text",
    label_field: str = "label",
    multi_label: bool | None = None,
    out: str | None = None,
    limit: int | None = None,
    split: str = "validation",
    device: str = "auto",
    name: str | None = None,
    progress: bool = True,
    min_labels: int | None = None,
    int8: bool | None = None,
):
    """Evaluate a classifier on labelled data; returns a ``ClassificationReport``.

    ``model``: a run directory (fine-tuned, either kind; ``task`` defaults to its task) or an
    encoder (preset, id or path) evaluated zero-shot with the task's label set
    (``prompts/labels/<task>.toml``), through ``Assistant.classify`` like a user's request.
    ``limit``: a seeded random sample of that many records (the same every time). ``out``:
    also write ``<name>.json``, ``.md`` and a chart there (``name`` defaults to the task).
    ``min_labels``: replaces a multi-label run's own floor on labels per text (0: thresholds only).
    ``int8``: a fine-tuned encoder's linear layers in int8 (default: as the assistant runs it, int8
    on a CPU); False measures the float model.
    """
    from tqdm.auto import tqdm

    from assistant.classifiers import FineTunedClassifier
    from assistant.runs import read_run

    from .evaluation import ClassificationEvaluator, apply_thresholds

    started = time.perf_counter()
    if is_run(model):
        clf = FineTunedClassifier(read_run(model), device=device, int8=int8)
        task = task or clf.task
        labels, run_multi, kind = clf.labels, clf.multi_label, clf.info.kind
    else:
        from assistant.prompts import load_label_set

        if not task:
            raise InvalidParameterError("task is required to evaluate an encoder zero-shot (e.g. sentiment)")
        clf = None
        label_set = load_label_set(task)
        labels, run_multi, kind = label_set.names, label_set.multi_label, "zero-shot"
    if min_labels is not None and (clf is None or not run_multi):
        raise InvalidParameterError("min_labels applies to multi-label fine-tuned runs only")
    if min_labels is not None and (isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 0):
        raise InvalidParameterError(f"min_labels must be 0 or more, got {min_labels!r}")
    if multi_label is not None and multi_label != run_multi:
        raise InvalidParameterError(
            f"{model} is a {'multi' if run_multi else 'single'}-label classifier, but multi_label={multi_label} "
            "was asked for"
        )
    records = load_records(data, split=split, required=(text_field, label_field))
    records = _subset(records, limit, 0)
    check_labels(records, label_field, run_multi, labels)
    texts = [text_of(r, text_field) for r in records]
    gold = [labels_of(r, label_field, run_multi) for r in records]
    chunk = 256
    starts = tqdm(range(0, len(texts), chunk), desc=f"classifying {task}", disable=not progress, unit="chunk")
    extra: dict = {"model": str(model), "kind": kind, "data": str(data), "split": split}
    if clf is not None and clf.info.kind != "classifier-head":
        extra["int8"] = clf.int8
    if clf is not None:
        probs = torch.cat([clf.predict_scores(texts[i : i + chunk]) for i in starts]).numpy()
        if run_multi:
            floor = clf.min_labels if min_labels is None else min_labels
            preds = apply_thresholds(probs, labels, clf.thresholds, floor)
            extra["thresholds"] = clf.thresholds
            extra["min_labels"] = floor
        else:
            preds = [labels[i] for i in probs.argmax(axis=1)]
    else:
        from assistant import Assistant

        assistant = Assistant(encoder=model, device=device)
        results = [r for i in starts for r in assistant.classify(texts[i : i + chunk], task=task, zero_shot=True)]
        preds = [r.labels if run_multi else r.label for r in results]
    extra["seconds"] = round(time.perf_counter() - started, 2)
    try:
        from .evaluation.report import machine_info

        extra["machine"] = machine_info()
    except ImportError:
        pass
    y_true = gold if run_multi else [g[0] for g in gold]
    report = ClassificationEvaluator(labels, multi_label=run_multi, task=task)(y_true, preds, **extra)
    if out:
        report.save(Path(out), name or task)
    return report


__all__ = ["RUN_FILE", "ClassifyTrainConfig", "evaluate_classifier", "load_data", "train_classifier"]
