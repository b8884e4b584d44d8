"""Combining classifier runs into one (``finassist finetune ensemble``).

Runs that err on different texts, such as a LoRA-tuned encoder and a head over another, separately
adapted encoder, are better averaged than either alone (docs/results.md: sentiment). The ensemble
is a run directory of its own (kind ``classifier-ensemble``, read by ``assistant.runs``): a copy of
each member in a subfolder and the share of each member's probabilities, chosen on validation data
none of the members trained on. A grid over the shares, not a fitted stacker: with two or three
members and a thousand validation texts a grid is exact and cannot overfit much.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np

from assistant.errors import InvalidParameterError
from assistant.runs import ENSEMBLE, MODEL_FILES, RUN_FILE, RunInfo, is_run, member_problem, read_run

from .config import EnsembleConfig
from .data import check_labels, labels_of, load_records, text_of, weight_of
from .runs import config_command, write_run

log = logging.getLogger(__name__)

#: Texts a member scores at a time (the progress bar's step).
CHUNK = 256


def share_grid(members: int, step: float) -> list[tuple[float, ...]]:
    """Every split of 1 into ``members`` shares that are whole multiples of ``step`` (rounded to
    1/round(1/step)), each member getting at least one step."""
    units = max(round(1 / step), members)

    def splits(total: int, parts: int):
        if parts == 1:
            yield (total,)
            return
        for first in range(1, total - parts + 2):
            for rest in splits(total - first, parts - 1):
                yield (first, *rest)

    return [tuple(u / units for u in split) for split in splits(units, members)]


def weighted_accuracy(probs: np.ndarray, gold: np.ndarray, weights: np.ndarray | None) -> float:
    """The share of texts whose top label is their gold one, each weighted by ``weights`` (all 1 when None)."""
    right = probs.argmax(axis=1) == gold
    return float(np.average(right, weights=weights))


def choose_shares(scores: list[np.ndarray], gold: np.ndarray, weights: np.ndarray | None,
                  step: float) -> tuple[tuple[float, ...], dict[tuple[float, ...], float]]:
    """The shares whose averaged probabilities are most accurate on the validation texts (weighted by
    ``weights`` when given), and the accuracy of every split tried. A tie goes to the most even split:
    equal shares are the prior a near-tie should fall back on."""
    tried = {shares: weighted_accuracy(sum(share * s for share, s in zip(shares, scores)), gold, weights)
             for shares in share_grid(len(scores), step)}
    best = max(tried, key=lambda shares: (round(tried[shares], 10), -(max(shares) - min(shares))))
    return best, tried


def _check_members(specs: list[tuple[str, str]], out: Path) -> list[tuple[str, RunInfo]]:
    members = [(name, read_run(path)) for name, path in specs]
    first = members[0][1]
    for name, info in members:
        if info.multi_label:
            raise InvalidParameterError(f"{info.path} is multi-label: an ensemble of multi-label runs would need its "
                                        "thresholds chosen for the averaged scores, which this command does not do")
        problem = member_problem(info, first.task, first.labels, False)
        if problem:
            raise InvalidParameterError(f"{info.path} {problem}")
        if out.resolve() == info.path.resolve() or out.resolve() in info.path.resolve().parents:
            raise InvalidParameterError(f"--out {out} would overwrite the member {info.path}")
    return members


def _member_scores(members: list[tuple[str, RunInfo]], texts: list[str], device: str,
                   progress: bool) -> list[np.ndarray]:
    from tqdm.auto import tqdm

    from assistant.classifiers import FineTunedClassifier

    bar = tqdm(total=len(members) * len(texts), desc="members scoring the validation texts", unit="text",
               disable=not progress)
    scores = []
    for _, info in members:
        # The runtime's own precision (float32 on a CPU), not the CPU's fast path (int8, or bfloat16 on AMX
        # tiles): the shares then do not depend on which instruction set the build ran on.
        clf = FineTunedClassifier(info, device=device, int8=False)
        parts = []
        for start in range(0, len(texts), CHUNK):
            parts.append(clf.predict_scores(texts[start : start + CHUNK]).numpy())
            bar.update(len(parts[-1]))
        scores.append(np.concatenate(parts))
    bar.close()
    return scores


def _copy_member(info: RunInfo, target: Path) -> None:
    """The member's model files (``MODEL_FILES``: weights, vocabularies, tokenizer, an encoder copy), its
    run file and card; not its checkpoints or reports."""
    for pattern in (*MODEL_FILES, RUN_FILE, "README.md"):
        for source in info.path.glob(pattern):
            if source.is_file():
                (target / source.relative_to(info.path)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / source.relative_to(info.path))


def _plot_shares(tried: dict[tuple[float, ...], float], alone: dict[str, float], names: list[str], measure: str,
                 path: Path) -> None:
    """The validation measure against the first member's share (two members)."""
    from .evaluation.report import new_figure, save_figure

    fig = new_figure(6, 3.5)
    ax = fig.add_subplot()
    points = sorted((shares[0], value) for shares, value in tried.items())
    ax.plot([0.0, *(p[0] for p in points), 1.0], [alone[names[1]], *(p[1] for p in points), alone[names[0]]],
            marker="o")
    ax.set_xlabel(f"share of {names[0]} (the rest: {names[1]})")
    ax.set_ylabel(f"validation {measure}")
    ax.set_title("Ensemble accuracy by share")
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def build_ensemble(config: EnsembleConfig) -> Path:
    """Combine classifier runs into an ensemble run in ``config.out``; returns it."""
    started = time.perf_counter()
    config.validate()
    out = Path(config.out).expanduser()
    members = _check_members(config.member_specs(), out)
    if out.exists() and any(out.iterdir()) and not (is_run(out) and read_run(out).kind == ENSEMBLE):
        raise InvalidParameterError(f"{out} exists and is not an ensemble run: choose another --out")
    labels = members[0][1].labels
    required = (config.text_field, config.label_field, *((config.weight_field,) if config.weight_field else ()))
    records = load_records(config.val, split="validation", required=required)
    check_labels(records, config.label_field, False, labels)
    texts = [text_of(r, config.text_field) for r in records]
    gold = np.array([labels.index(labels_of(r, config.label_field, False)[0]) for r in records])
    weights = np.array([weight_of(r, config.weight_field) for r in records]) if config.weight_field else None
    scores = _member_scores(members, texts, config.device, config.progress)
    shares, tried = choose_shares(scores, gold, weights, config.share_step)
    names = [name for name, _ in members]
    measure = "weighted accuracy" if weights is not None else "accuracy"
    # each member alone, by the measure the shares were chosen by (the ends of the shares' curve)
    alone = {name: weighted_accuracy(s, gold, weights) for name, s in zip(names, scores)}
    mixed = sum(share * s for share, s in zip(shares, scores)).argmax(axis=1)
    from sklearn.metrics import f1_score

    metrics = {
        "accuracy": float(np.mean(mixed == gold)),
        "macro_f1": float(f1_score(gold, mixed, average="macro", labels=list(range(len(labels))), zero_division=0)),
        "validation_records": len(texts),
        "selected_by": f"validation {measure}, over every split of 1 in steps of {config.share_step:g}",
        f"members_alone_{measure.replace(' ', '_')}": alone,
    }
    if weights is not None:
        metrics["weighted_accuracy"] = tried[shares]
    if len(tried) <= 50:
        metrics["share_scores"] = {"/".join(f"{s:.2f}" for s in split): round(v, 4) for split, v in tried.items()}
    staging = out.parent / f".{out.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, info in members:
        _copy_member(info, staging / name)
    if len(members) == 2:
        _plot_shares(tried, alone, names, measure, staging / "eval" / "shares.png")
    bases = sorted({info.base_model for _, info in members})
    fingerprints = {info.base_fingerprint for _, info in members}
    data = [{"source": config.val, "role": f"validation: the shares chosen on it ({len(texts)} records)",
             "records": len(texts)}]
    for name, info in members:
        data += [{**d, "role": f"member {name}: {d.get('role', 'train')}"} for d in info.data]
    write_run(staging, kind=ENSEMBLE, task=members[0][1].task, base_model=" + ".join(bases), config=config, data=data,
              metrics=metrics, command=config_command("finassist finetune ensemble", config), labels=labels,
              seconds=time.perf_counter() - started,
              base_fingerprint=fingerprints.pop() if len(fingerprints) == 1 else None,
              members=[{"name": name, "share": share} for name, share in zip(names, shares)])
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    log.info("ensemble of %s in %s: shares %s, validation accuracy %.4f", ", ".join(names), out, shares,
             metrics["accuracy"])
    return out
