"""How the zero-shot label sets were checked (docs/zero-shot.md). Run from the repository root:

    python docs/zero_shot_check.py

It checks the label-set design rules (dev set, top-k, threshold vs margin); plain
scoring of a label set is `finassist eval classify --model minilm-l6 ...` (docs/zero-shot.md)."""
import collections, json, random
from assistant import Assistant

data = "../shared/data"
a = Assistant()

# Sentiment dev set: 66agree sentences NOT in allagree (allagree is what the tests report on), 100 per class.
allagree = {json.loads(l)["sentence"] for l in open(f"{data}/sentiment/financial_phrasebank/allagree.jsonl")}
rows = [r for r in map(json.loads, open(f"{data}/sentiment/financial_phrasebank/66agree.jsonl")) if r["sentence"] not in allagree]
random.seed(0)
by = collections.defaultdict(list)
for r in rows:
    by[r["label"]].append(r)
dev = [r for label in by for r in random.sample(by[label], min(100, len(by[label])))]
pred = a.classify([r["sentence"] for r in dev], task="sentiment")
print("sentiment dev (66agree minus allagree, balanced, n=%d): accuracy %.3f"
      % (len(dev), sum(p.label == r["label"] for p, r in zip(pred, dev)) / len(dev)))

# Contract clauses: 400 random CUAD *train* clauses; micro-F1 of the label set's rule vs a threshold alone.
rows = [json.loads(l) for l in open(f"{data}/legal/cuad/train.jsonl")]
random.seed(1)
sample = random.sample(rows, 400)
scored = a.classify([r["text"] for r in sample], task="contract-clause", threshold=-1.0)  # all scores
def micro_f1(threshold, margin):
    tp = fp = fn = 0
    for res, r in zip(scored, sample):
        top = res.scores[0].score
        pred = {s.label for s in res.scores if s.score >= threshold and (margin is None or s.score >= top - margin)}
        gold = set(r["labels"])
        tp, fp, fn = tp + len(pred & gold), fp + len(pred - gold), fn + len(gold - pred)
    p, rc = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    return 2 * p * rc / max(p + rc, 1e-9)
print("contract-clause, CUAD train (400): top-1 %.2f, top-5 %.2f" % (
    sum(res.scores[0].label in r["labels"] for res, r in zip(scored, sample)) / 400,
    sum(any(s.label in r["labels"] for s in res.scores[:5]) for res, r in zip(scored, sample)) / 400))
print("  micro-F1, threshold 0.30 + margin 0.02 (the label set's rule): %.3f" % micro_f1(0.30, 0.02))
print("  micro-F1, best threshold alone (0.20..0.50): %.3f" % max(micro_f1(t / 100, None) for t in range(20, 51, 5)))
