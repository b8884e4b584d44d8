"""Classification benchmark: texts/s of the shipped classifiers, for one, two and three tasks,
beside plain Hugging Face ``AutoModelForSequenceClassification`` forward passes in the same run.

The baseline is what a stack of fine-tuned Hugging Face classifiers costs: one plain forward
pass per task (float32, batches in the given order, padded to the longest text of each batch).
The assistant's path is ``Assistant.classify_tasks``: the sentiment model runs merged LoRA weights
on length-sorted batches in the CPU's fast precision (``assistant.classifiers.cpu_precision``:
bfloat16 on AMX tiles, else int8 linear layers), and the head classifiers embed with one pass per
encoder: contract clauses with the engine's own (shared with zero-shot tasks), unfair terms with its
LoRA-adapted copy (``--encoder-epochs``, in the same fast precision). Real texts: Financial PhraseBank
sentences, tweets, CLAUDETTE sentences and CUAD clauses from ``../shared/data``.

Run: ``finassist bench classify [--texts 512 --out docs/benchmarks]``.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from assistant.machine import machine_info

from .charts import classify_chart
from .common import command_line
from .reports import classify_markdown

#: (file under the data folder, text field): a mix of the kinds of text the tasks serve.
SOURCES = (
    ("sentiment/financial_phrasebank/allagree.jsonl", "sentence"),
    ("sentiment/twitter_financial_news/train.jsonl", "text"),
    ("legal/claudette_tos/train.jsonl", "text"),
    ("legal/cuad/val.jsonl", "text"),
)
#: Task sets measured, in this order: one, two and three tasks.
TASK_SETS = (("sentiment",), ("sentiment", "unfair-tos"), ("sentiment", "unfair-tos", "contract-clause"))
BATCH_SIZE = 32


def benchmark_texts(data: Path, n: int, seed: int = 0) -> list[str]:
    """``n`` texts drawn evenly from ``SOURCES`` (seeded), shuffled together."""
    from finetune.data import load_records

    rng = random.Random(seed)
    texts: list[str] = []
    for name, field in SOURCES:
        rows = load_records(data / name)
        texts += [r[field] for r in rng.sample(rows, min(len(rows), n // len(SOURCES)))]
    rng.shuffle(texts)
    return texts


def plain_forward_seconds(location: str, texts: list[str], max_length: int, labels: int) -> float:
    """Seconds for plain ``AutoModelForSequenceClassification`` forward passes over ``texts``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(location)
    model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=labels).eval()
    started = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(texts), BATCH_SIZE):
            batch = tok(texts[i : i + BATCH_SIZE], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
            model(**batch)
    return time.perf_counter() - started


def run_classify_benchmark(data: str = "../shared/data", texts: int = 512, out_dir: str = "docs/benchmarks",
                           repeats: int = 2) -> dict:
    """Run the classification benchmark; print its table and write ``classify.{json,md,png}`` to ``out_dir``."""
    from assistant import Assistant
    from assistant.models import ENCODER, resolve_model

    torch.manual_seed(0)
    sample = benchmark_texts(Path(data), texts)
    assistant = Assistant(device="cpu")
    clf = assistant.engine.classifier("sentiment")
    if clf is None:
        raise RuntimeError("no shipped sentiment classifier: the benchmark measures the shipped models")
    base = resolve_model(clf.info.base_model, ENCODER).location
    # the plain passes read the window the shipped model reads (an ensemble's: its members' widest)
    max_length = max(int(info.config.get("max_length") or 128) for info in [m.info for m in clf.info.members]
                     or [clf.info])
    for task in TASK_SETS[-1]:  # load (and warm up) every model before timing
        assistant.classify_tasks(sample[:8], [task])
    plain_forward_seconds(base, sample[:8], max_length, len(clf.labels))

    rows = []
    plain_one = min(plain_forward_seconds(base, sample, max_length, len(clf.labels)) for _ in range(repeats))
    for tasks in TASK_SETS:
        ours = []
        for _ in range(repeats):
            started = time.perf_counter()
            assistant.classify_tasks(sample, tasks)
            ours.append(time.perf_counter() - started)
        plain = plain_one * len(tasks)  # one plain classifier per task
        rows.append({"tasks": list(tasks), "texts": len(sample), "assistant_seconds": round(min(ours), 3),
                     "assistant_texts_per_s": round(len(sample) / min(ours), 1),
                     "plain_seconds": round(plain, 3), "plain_texts_per_s": round(len(sample) / plain, 1),
                     "speedup": round(plain / min(ours), 2)})
    result = {
        "benchmark": "classify",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "machine": machine_info(torch.device("cpu")),
        "texts": len(sample),
        "sources": [name for name, _ in SOURCES],
        "batch_size": BATCH_SIZE,
        "baseline": f"plain AutoModelForSequenceClassification ({base}), float32, one forward pass per task",
        # what each shipped classifier ran as: its form and precision (the CPU's fast path differs by CPU)
        "models": {task: f"{row['architecture']}; {row['dtype']}" for task, row in
                   ((t, assistant.engine.classifier(t).describe()) for t in TASK_SETS[-1])},
        "rows": rows,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classify.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "classify.md").write_text(classify_markdown(result))
    skipped = classify_chart(result, out / "classify.png")
    print(classify_markdown(result))
    if skipped:
        print(skipped)
    return result
