"""Sentiment scores mixed from two sources, on the held-out sets of the sentiment recipe: what a
second model could add to the shipped one (docs/results.md, "Shipped classifiers", the sixth
session of 2026-12-07). Exploratory: nothing here is shipped.

    .venv/bin/python scripts/compare-sentiment-mixes.py members SHIPPED OTHER [--data runs/shipped/data]
    .venv/bin/python scripts/compare-sentiment-mixes.py own-embeddings SHIPPED [--data runs/shipped/data]

members: SHIPPED's probabilities (as served: int8 on the CPU) averaged with OTHER's, at OTHER's
share 0, 0.3, 0.5, 0.7 and 1.
own-embeddings: SHIPPED in float32 (no int8) mixed with a logistic regression (C 1 and 10, FPB
agreement weights) over the mean-pooled last hidden states of SHIPPED's own fine-tuned encoder, fitted
on the recipe's training file: what a head over the run's own embeddings adds without a second pass.
The held-out files are those ``finassist finetune shipped --task sentiment`` carves (``--data``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from assistant.classifiers import FineTunedClassifier

SETS = ("fpb-allagree-heldout", "tweets-heldout")


def _rows(data: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in open(data / f"{name}.jsonl", encoding="utf-8")]


def members(shipped: str, other: str, data: Path) -> None:
    a = FineTunedClassifier(shipped, device="cpu")
    b = FineTunedClassifier(other, device="cpu")
    assert a.labels == b.labels, (a.labels, b.labels)
    for name in SETS:
        rows = _rows(data, name)
        texts, gold = [r["text"] for r in rows], np.array([a.labels.index(r["label"]) for r in rows])
        pa, pb = a.predict_scores(texts).numpy(), b.predict_scores(texts).numpy()
        for share in (0, 0.3, 0.5, 0.7, 1):
            mixed = (1 - share) * pa + share * pb
            print(name, share, round(float((mixed.argmax(1) == gold).mean()), 4))


def own_embeddings(shipped: str, data: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    clf = FineTunedClassifier(shipped, device="cpu", int8=False).load()
    model, tok = clf._model, clf._tokenizer
    encoder = model.base_model

    def embed(texts: list[str], batch: int = 64) -> np.ndarray:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        parts = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch):
                chunk = [texts[i] for i in order[start : start + batch]]
                features = tok(chunk, truncation=True, max_length=96, padding=True, return_tensors="pt")
                hidden = encoder(**{k: v for k, v in features.items() if k in tok.model_input_names}).last_hidden_state
                mask = features["attention_mask"].unsqueeze(-1).float()
                parts.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        out = torch.cat(parts).numpy()
        result = np.empty_like(out)
        result[order] = out
        return result

    train = _rows(data, "sentiment-train")
    x = embed([r["text"] for r in train])
    y = np.array([clf.labels.index(r["label"]) for r in train])
    weights = np.array([r["weight"] for r in train])
    for c in (1, 10):
        head = LogisticRegression(C=c, max_iter=3000).fit(x, y, sample_weight=weights)
        for name in SETS:
            rows = _rows(data, name)
            texts, gold = [r["text"] for r in rows], np.array([clf.labels.index(r["label"]) for r in rows])
            pa, pe = clf.predict_scores(texts).numpy(), head.predict_proba(embed(texts))
            print(c, name, [round(float((((1 - m) * pa + m * pe).argmax(1) == gold).mean()), 4) for m in (0, 0.3, 0.5, 1)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["members", "own-embeddings"])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--data", default="runs/shipped/data")
    args = parser.parse_args()
    if args.mode == "members":
        members(args.runs[0], args.runs[1], Path(args.data))
    else:
        own_embeddings(args.runs[0], Path(args.data))


if __name__ == "__main__":
    main()
