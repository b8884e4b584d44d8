"""Compare the two multi-label decisions for data where every text has a label (CUAD clauses), on
out-of-fold scores of the shipped recipe's head over CUAD train, so CUAD val chooses nothing:

* per-label thresholds, each tuned for its label's F1, and the best label where none passes (the
  decision until 2026-12-08);
* the best label always, and any other over one threshold shared by all labels, tuned for the
  micro-F1 of that decision (``tune_thresholds(..., min_labels=1)``, the decision since).

The training contracts are halved at random 20 times; each decision is tuned on one half and
measured on the other. Writes ``docs/results/cuad-label-rule.json`` and ``.png``.

    .venv/bin/python scripts/compare-label-rules.py [--data ../shared/data] [--halvings 20]

The out-of-fold scores (5 folds by contract, the C the shipped run chose) take about 8 minutes on a
2-core CPU and are kept in ``runs/exp/label-rules/oof.npy`` for a second run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from assistant.runs import read_run
from assistant.shipped import SHIPPED_DIR
from finetune.classification_data import load_classification_data
from finetune.evaluation import ClassificationEvaluator, apply_thresholds, tune_thresholds
from finetune.evaluation.report import new_figure, save_figure
from finetune.recipes import RECIPES, prepare_contract_clause, training_config

OUT = Path("docs/results/cuad-label-rule")


def out_of_fold(config, data, c: float, cache: Path) -> np.ndarray:
    if cache.is_file():
        return np.load(cache)
    from tqdm.auto import tqdm

    from assistant.engine import Engine
    from finetune.train_head import HeadFitter, _cv_folds, _encode

    engine = Engine(encoder=config.model, device="cpu")
    x = _encode(engine.sentence_encoder, data.train_texts, True, "embedding")
    fitter = HeadFitter(config, data, x)
    scores = np.zeros((len(x), len(data.labels)), dtype=np.float32)
    for fit_rows, held in tqdm(_cv_folds(config, data), desc="folds", unit="fold"):
        head = fitter.fit(fitter.inputs(fit_rows), fit_rows, c)
        scores[held] = fitter.probs(head, x[held], [data.train_texts[i] for i in held])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, scores)
    return scores


def per_label_rule(gold, scores, labels):
    """The earlier decision: labels over their own thresholds; the best label where none is."""
    thresholds = tune_thresholds(gold, scores, labels)
    return lambda s: [chosen or [labels[int(row.argmax())]]
                      for chosen, row in zip(apply_thresholds(s, labels, thresholds), s, strict=True)]


def shared_rule(gold, scores, labels):
    thresholds = tune_thresholds(gold, scores, labels, min_labels=1)
    return lambda s: apply_thresholds(s, labels, thresholds, min_labels=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--halvings", type=int, default=20)
    parser.add_argument("--cache", default="runs/exp/label-rules/oof.npy")
    args = parser.parse_args()
    recipe = RECIPES["contract-clause"]
    files = prepare_contract_clause(Path(args.data), Path("unused"))
    config = training_config(recipe, recipe.options, files, Path("unused"), progress=False)
    data = load_classification_data(config)
    c = read_run(SHIPPED_DIR / "contract-clause").metrics["head_C"]
    scores = out_of_fold(config, data, c, Path(args.cache))
    labels, gold = data.labels, data.train_labels
    evaluate = ClassificationEvaluator(labels, multi_label=True, task="contract-clause")
    groups = np.array(data.train_groups)
    contracts = sorted(set(groups))
    rows = []
    for seed in range(args.halvings):
        order = list(contracts)
        np.random.default_rng(seed).shuffle(order)
        tune = np.isin(groups, order[: len(order) // 2])
        measured = {}
        for name, rule in (("per-label", per_label_rule), ("shared", shared_rule)):
            decide = rule([gold[i] for i in np.flatnonzero(tune)], scores[tune], labels)
            report = evaluate([gold[i] for i in np.flatnonzero(~tune)], decide(scores[~tune]))
            measured[name] = {"micro_f1": report.micro_f1, "macro_f1": report.macro_f1, "exact": report.accuracy}
        rows.append({"seed": seed, **measured})
        print(seed, {k: {m: round(v, 4) for m, v in d.items()} for k, d in measured.items()}, flush=True)
    gains = {m: [r["shared"][m] - r["per-label"][m] for r in rows] for m in ("micro_f1", "macro_f1", "exact")}
    summary = {m: {"mean_gain": float(np.mean(g)), "halvings_better": int(np.sum(np.array(g) > 0)),
                   "of": len(g)} for m, g in gains.items()}
    print(json.dumps(summary, indent=1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps({"C": c, "halvings": rows, "summary": summary}, indent=1) + "\n")
    fig = new_figure(7, 3.6)
    ax = fig.add_subplot()
    for k, metric in enumerate(("micro_f1", "macro_f1", "exact")):
        ax.scatter(np.full(len(rows), k) + np.linspace(-0.2, 0.2, len(rows)), gains[metric], s=18)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xticks(range(3), ["micro-F1", "macro-F1", "exact match"])
    ax.set_ylabel("shared threshold minus per-label")
    ax.set_title(f"CUAD train, out of fold: {len(rows)} halvings by contract, tuned on one half, measured on the other",
                 fontsize=9)
    save_figure(fig, OUT.with_suffix(".png"))


if __name__ == "__main__":
    main()
