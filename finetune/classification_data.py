"""A classification run's data: the training and validation texts with their labels, read from
the files a ``ClassifyTrainConfig`` names, checked and split (``load_classification_data``).

Every problem is a ``DataError`` naming file and line, raised before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistant.errors import InvalidParameterError

from .config import ClassifyTrainConfig
from .data import (
    DataError,
    check_field,
    check_labels,
    exclude,
    labels_of,
    load_records,
    sample_records,
    split_validation,
    text_of,
    weight_of,
)


@dataclass
class ClassificationData:
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


def _parse_label_list(spec: str) -> list[str]:
    labels = [x.strip() for x in spec.split(",") if x.strip()]
    if len(set(labels)) != len(labels):
        raise InvalidParameterError(f"labels has duplicates: {spec!r}")
    return labels


def load_classification_data(config: ClassifyTrainConfig) -> ClassificationData:
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
    train = sample_records(train, config.max_train_samples, config.seed)
    val = sample_records(val, config.limit_val, config.seed)
    labels = _parse_label_list(config.labels) if config.labels else seen
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
    return ClassificationData(labels, texts(train), train_labels, texts(val), golds(val), sources, weights, groups, val_weights,
                 min_labels)


def label_targets(data_labels: list[list[str]], labels: list[str], multi_label: bool) -> list:
    """Training targets in ``labels`` order: a label index per text (single-label), or a row of
    0.0 / 1.0 per text (multi-label)."""
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
