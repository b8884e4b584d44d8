"""What every classifier training run shares, whichever way it trains: the run directory it may
write (``check_out_dir``), its checkpoints folder, and its end (``finish_run``): the validation
report (multi-label thresholds tuned on it), written to ``<out>/eval/``, and the run file and
model card (``finetune.runs.write_run``) that make the directory a model.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from assistant.errors import InvalidParameterError
from assistant.runs import is_run

from .classification_data import ClassificationData
from .config import ClassifyTrainConfig
from .runs import config_command, write_run

log = logging.getLogger(__name__)

#: The command a run's file records (with the options that reproduce its configuration).
PROGRAM = "finassist finetune classify"
#: Where the Trainer keeps checkpoints inside the run directory (full and LoRA runs).
CHECKPOINTS = "checkpoints"
#: Where the validation report goes inside the run directory.
EVAL_DIR = "eval"


def check_out_dir(config: ClassifyTrainConfig) -> Path:
    """The run directory, refused when it holds an earlier run that ``resume`` does not continue."""
    out = Path(config.out).expanduser()
    if out.exists() and not out.is_dir():
        raise InvalidParameterError(f"out {out} exists and is not a directory")
    if not config.resume and (is_run(out) or last_checkpoint(out / CHECKPOINTS)):
        raise InvalidParameterError(
            f"{out} already holds a run or its checkpoints: pass resume (--resume) to continue it, "
            "or choose another out folder"
        )
    return out


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (one killed while saving has no trainer state)."""
    if not folder.is_dir():
        return None
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    steps = [(int(p.name.rsplit("-", 1)[1]), p) for p in done if p.name.rsplit("-", 1)[1].isdigit()]
    return max(steps)[1] if steps else None


def validation_report(config: ClassifyTrainConfig, data: ClassificationData, probs: np.ndarray, **extra):
    """(validation report, tuned thresholds or None, extra metrics) from per-text probabilities.
    Multi-label thresholds are tuned here, and the figures at 0.5 kept beside the tuned ones."""
    from .evaluation import ClassificationEvaluator, apply_thresholds, tune_thresholds

    evaluator = ClassificationEvaluator(data.labels, multi_label=config.multi_label, task=config.task)
    if not config.multi_label:
        preds = [data.labels[i] for i in probs.argmax(axis=1)]
        return evaluator([g[0] for g in data.val_labels], preds, **extra), None, {}
    thresholds = tune_thresholds(data.val_labels, probs, data.labels, min_labels=data.min_labels)
    report = evaluator(data.val_labels, apply_thresholds(probs, data.labels, thresholds, data.min_labels),
                       thresholds=thresholds, thresholds_tuned_on="this validation split",
                       min_labels=data.min_labels, **extra)
    at_half = evaluator(data.val_labels, apply_thresholds(probs, data.labels, 0.5, data.min_labels))
    untuned = {"micro_f1": at_half.micro_f1, "macro_f1": at_half.macro_f1, "accuracy": at_half.accuracy}
    return report, thresholds, {"validation_at_threshold_0.5": untuned}


def finish_run(config: ClassifyTrainConfig, out: Path, data: ClassificationData, kind: str, probs: np.ndarray,
               started: float, extra_metrics: dict, effective: dict | None = None,
               base_fingerprint: str | None = None, text_mix: float = 0.0) -> Path:
    """Evaluate validation, write the report and the run. ``effective``: settings that differ from
    the config as run (a window fitted to the model); the run file records those, the command
    line records what was asked for. ``text_mix``: the text head's share of each score (``finetune.text_mix``)."""
    report, thresholds, more = validation_report(config, data, probs, model=str(out), split="validation")
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
              thresholds=thresholds, min_labels=data.min_labels, seconds=seconds, base_fingerprint=base_fingerprint,
              text_mix=text_mix)
    log.info("%s run written to %s: %s %.4f", config.task, out, config.metric, metrics[config.metric])
    return out
