"""``finassist eval classify``: a classifier's figures on labelled data, measured through the path a
user's request takes (``Assistant.classify``), so they are what a user gets.

A fine-tuned run serves its task in an ``Assistant`` (``classifiers={task: run}``), exactly as
``--classifier TASK=RUN_DIR`` makes it do; an encoder is evaluated zero-shot with the task's
label set. The scores are turned into a report by the pure evaluator
(``finetune.evaluation.classification``).
"""

from __future__ import annotations

import time
from pathlib import Path

from assistant.errors import InvalidParameterError
from assistant.machine import machine_info
from assistant.runs import is_run, read_run

from ..data import check_labels, labels_of, load_records, sample_records, text_of
from .classification import ClassificationEvaluator, ClassificationReport, apply_thresholds

#: Texts per call to ``Assistant.classify``: the progress bar's step (the engine batches inside it).
CHUNK = 256


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
) -> ClassificationReport:
    """Evaluate a classifier on labelled data; returns a ``ClassificationReport``.

    ``model``: a run directory (fine-tuned, either kind; ``task`` defaults to its task) or an
    encoder (preset, id or path) evaluated zero-shot with the task's label set
    (``prompts/labels/<task>.toml``). Either way the texts go through ``Assistant.classify``
    like a user's request.
    ``limit``: a seeded random sample of that many records (the same every time). ``out``:
    also write ``<name>.json``, ``.md`` and a chart there (``name`` defaults to the task).
    ``min_labels``: replaces a multi-label run's own floor on labels per text (0: thresholds only).
    ``int8``: a fine-tuned encoder's linear layers in int8 (default: as the assistant runs it, int8
    on a CPU); False measures the float model.
    """
    from tqdm.auto import tqdm

    from assistant import Assistant

    started = time.perf_counter()
    fine_tuned = is_run(model)
    if fine_tuned:
        info = read_run(model)
        task = task or info.task
        assistant = Assistant(encoder=info.base_model, device=device, classifiers={task: model},
                              shipped_classifiers=False)
        clf = assistant.engine.classifier(task)
        if int8 is not None:  # set before the first prediction loads the model
            clf.int8 = bool(int8)  # (a head run's encoder never is: the classifier decides)
        labels, run_multi, kind = clf.labels, clf.multi_label, clf.info.kind
    else:
        from assistant.prompts import load_label_set

        if not task:
            raise InvalidParameterError("task is required to evaluate an encoder zero-shot (e.g. sentiment)")
        clf = None
        assistant = Assistant(encoder=model, device=device)
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
    records = sample_records(load_records(data, split=split, required=(text_field, label_field)), limit, 0)
    check_labels(records, label_field, run_multi, labels)
    texts = [text_of(r, text_field) for r in records]
    gold = [labels_of(r, label_field, run_multi) for r in records]
    starts = tqdm(range(0, len(texts), CHUNK), desc=f"classifying {task}", disable=not progress, unit="chunk")
    results = [r for i in starts
               for r in assistant.classify(texts[i : i + CHUNK], task=task, zero_shot=not fine_tuned)]
    preds = [r.labels if run_multi else r.label for r in results]
    extra: dict = {"model": str(model), "kind": kind, "data": str(data), "split": split}
    if clf is not None and clf.info.kind != "classifier-head":
        extra["int8"] = clf.int8
        extra["dtype"] = clf.runtime.dtype_name  # bfloat16 on a CPU with AMX tiles (assistant.classifiers)
    if clf is not None and run_multi:
        floor = clf.min_labels if min_labels is None else min_labels
        if floor != clf.min_labels:  # the same scores, decided with another floor than the run's
            probs = [[scores[label] for label in labels] for scores in ({s.label: s.score for s in r.scores}
                                                                        for r in results)]
            preds = apply_thresholds(probs, labels, clf.thresholds, floor)
        extra["thresholds"] = clf.thresholds
        extra["min_labels"] = floor
    extra["seconds"] = round(time.perf_counter() - started, 2)
    extra["machine"] = machine_info()
    y_true = gold if run_multi else [g[0] for g in gold]
    report = ClassificationEvaluator(labels, multi_label=run_multi, task=task)(y_true, preds, **extra)
    if out:
        report.save(Path(out), name or task)
    return report
