"""Compare key-sentence scorers of the summariser on the first ECTSum val calls: the ROUGE of the
sentences each one picks (alone, not rewritten) and the share of the reference lines' source
sentences (aligned as for training, ``finetune/summary_data.py``) among the picks.

    .venv/bin/python scripts/compare-summary-scorers.py RUN [RUN ...] [--limit 120] [--data ../shared/data]

The shipped scorer is always in the comparison; each RUN is another summary-sentence run (a head or
a LoRA run). Picks follow the summariser's own rule (``select_diverse`` with ``[extract]
redundancy``), k = 3 and 4. The first half of the calls is the tuning half (choose there), the
second half is reported beside it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from rouge_score import rouge_scorer
from tqdm.auto import tqdm

from assistant import Assistant
from assistant.sentences import sentence_spans
from assistant.tasks.summarize import select_diverse
from finetune.summary_data import align


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="summary-sentence runs to compare with the shipped scorer")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--limit", type=int, default=120, help="the first N val calls")
    args = parser.parse_args()
    path = Path(args.data) / "summarization/ectsum/val.jsonl"
    records = [json.loads(line) for line in open(path, encoding="utf-8")][: args.limit]
    pipeline = Assistant().pipeline("summarize")
    cfg, engine = pipeline.config["extract"], pipeline.engine
    scorers = {"shipped": engine.summary_scorer, **{run: engine.add_classifier(run, task="summary-sentence")
                                                    for run in args.runs}}
    rouge = rouge_scorer.RougeScorer(["rouge1", "rouge2"], use_stemmer=True)
    half = len(records) // 2
    rows = {name: {"tune": [], "report": []} for name in scorers}
    seconds = dict.fromkeys(scorers, 0.0)
    for number, record in enumerate(tqdm(records, desc="scoring calls", unit="call")):
        texts = [s.text for s in sentence_spans(record["transcript"]) if len(s.text.split()) >= cfg["min_words"]]
        embeddings = engine.sentence_encoder.encode(texts)  # the redundancy check's, and a shared head's input
        alignment = align(record["transcript"], record["summary"])
        key = {alignment.sentences[i] for i in alignment.key}
        for name, scorer in scorers.items():
            started = time.perf_counter()
            # The embeddings above serve a head run that embeds with the engine's encoder; any other run
            # (a LoRA run, a head with its own copy of an encoder) reads the texts itself.
            shared = scorer.sentence_encoder is engine.sentence_encoder
            scores = scorer.predict_scores(texts, embeddings=embeddings if shared else None)
            seconds[name] += time.perf_counter() - started
            scores = scores[:, scorer.labels.index(cfg["key_label"])]
            row = {}
            for k in (3, 4):
                picked = sorted(select_diverse(scores, embeddings, k, cfg["redundancy"]))
                score = rouge.score(record["summary"], "\n".join(texts[i] for i in picked))
                row[f"rouge1@{k}"], row[f"rouge2@{k}"] = score["rouge1"].fmeasure, score["rouge2"].fmeasure
                if key:
                    row[f"sources@{k}"] = len({texts[i] for i in picked} & key) / len(key)
            rows[name]["tune" if number < half else "report"].append(row)
    for name in scorers:
        for part, found in rows[name].items():
            means = {m: round(statistics.mean(r[m] for r in found if m in r), 4) for m in found[0]}
            print(json.dumps({"scorer": name, "calls": part, "n": len(found), **means}))
        print(json.dumps({"scorer": name, "scoring_seconds": round(seconds[name], 1)}))


if __name__ == "__main__":
    main()
