"""Choose how many sentences the summariser picks and how close two may be (prompts/summarize.toml
[extract] max_bullets, redundancy) on the first half of ECTSum val; report both halves.

    .venv/bin/python scripts/tune-summary-picks.py [--data ../shared/data] [--limit N] [--out docs/results/summary-picks.json]

Scores every sentence once with the shipped scorer (through the summariser's own pipeline), then
replays the pick rule for each setting: the ROUGE of the picked sentences (before rewriting)
against the reference summary. The second half is never used to choose.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from rouge_score import rouge_scorer

from assistant import Assistant
from assistant.sentences import sentence_spans
from assistant.tasks.summarize import select_diverse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="docs/results/summary-picks.json")
    parser.add_argument("--limit", type=int, default=None, help="the first N val calls only")
    parser.add_argument("--rewrite", type=int, default=0, metavar="N",
                        help="also rewrite the 9 best picks of the first N calls of the tuning half with the shipped "
                             "rewriter and score the best k of those bullets for each k (the bullets are shorter "
                             "than their sentences, so the best k differs)")
    args = parser.parse_args()
    records = [json.loads(line) for line in open(Path(args.data) / "summarization/ectsum/val.jsonl", encoding="utf-8")]
    records = records[: args.limit]
    pipeline = Assistant().pipeline("summarize")
    cfg = pipeline.config["extract"]
    scorer = pipeline.engine.summary_scorer
    assert scorer is not None, "no shipped scorer for the default encoder"
    cached = []
    from tqdm.auto import tqdm

    for r in tqdm(records, desc="scoring sentences", unit="call"):
        sentences = [s.text for s in sentence_spans(r["transcript"]) if len(s.text.split()) >= cfg["min_words"]]
        emb = scorer.sentence_encoder.encode(sentences)
        scores = scorer.predict_scores(sentences, embeddings=emb)[:, scorer.labels.index(cfg["key_label"])]
        cached.append((sentences, emb, scores, r["summary"]))
    rouge = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    half = len(cached) // 2

    def picks(sentences, emb, scores, k, redundancy):
        return "\n".join(sentences[i] for i in sorted(select_diverse(scores, emb, k, redundancy)))

    results = []
    for k in range(2, 10):
        for redundancy in (0.7, 0.8, 0.85, 0.9, 1.01):
            row = {"k": k, "redundancy": redundancy}
            for name, part in (("tune", cached[:half]), ("report", cached[half:])):
                s = [rouge.score(ref, picks(sent, emb, sc, k, redundancy)) for sent, emb, sc, ref in part]
                row[name] = {m: round(statistics.mean(x[m].fmeasure for x in s), 4) for m in ("rouge1", "rouge2", "rougeL")}
            results.append(row)
            print(row)
    best = max(results, key=lambda r: r["tune"]["rouge1"] + r["tune"]["rouge2"])
    print("best on the tuning half:", best)
    rewritten = _rewrite_grid(pipeline, cached[: min(args.rewrite, half)], rouge) if args.rewrite else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tuning_half": half, "report_half": len(cached) - half, "best": best,
                               "grid": results, "rewritten": rewritten}, indent=2) + "\n")


def _rewrite_grid(pipeline, part, rouge) -> list[dict]:
    """ROUGE of the best k rewritten bullets (by their sentence's score), k = 2..9, redundancy as configured."""
    from tqdm.auto import tqdm

    cfg = pipeline.config["extract"]
    per_k: dict[int, list] = {k: [] for k in range(2, 10)}
    for sentences, emb, scores, reference in tqdm(part, desc="rewriting", unit="call"):
        cfg["max_bullets"] = 9
        cfg["min_key_probability"] = 0.0  # all 9, however sure the scorer is (scripts/tune-summary-count.py chose that rule)
        summary = pipeline("\n".join(sentences), max_words=1000)
        rank = {sentences[i]: r for r, i in enumerate(torch.argsort(scores, descending=True).tolist())}
        ordered = sorted(summary.bullets, key=lambda b: rank.get(b.sources[0].text, 10**6))
        for k in per_k:
            best = sorted(ordered[:k], key=lambda b: b.sources[0].index)
            per_k[k].append(rouge.score(reference, "\n".join(b.text for b in best)))
    rows = [{"k": k, "calls": len(part), **{m: round(statistics.mean(x[m].fmeasure for x in v), 4)
                                            for m in ("rouge1", "rouge2", "rougeL")}} for k, v in per_k.items()]
    for row in rows:
        print("rewritten", row)
    return rows


if __name__ == "__main__":
    main()
