"""Grounded-answer latency: seconds from a question to its answer, with a document library of 1,000
documents, on real data.

The library holds every TAT-QA dev context (a table and its paragraphs: 278 documents) and Reuters
news articles up to ``documents`` in all, added through ``Assistant.documents`` as a user adds
files. Questions are TAT-QA dev questions of the "report" half (their documents are in the library).
Each is asked with ``Assistant.ask`` (search, then the answer, audit off), timed end to end:

- **answerer**: the default path, the shipped answerer adapter reading the first passages found;
- **free-form (baseline)**: the same questions answered freely from the passages by the generator
  without the adapter (what any other generator does), in the same run.

One untimed question per path first (model loading, the ONNX export when not cached). The search
time alone is reported too.

Run: ``finassist bench ask [--documents 1000 --questions 30 --out docs/benchmarks]``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from assistant.machine import machine_info

from .charts import ask_chart
from .common import command_line, git_commit, percentile
from .reports import ask_markdown

#: TAT-QA dev's contexts are the documents questions are asked about; the rest of the library is news.
TATQA = "qa/tatqa/dev.jsonl"
NEWS = "summarization/reuters_headlines/train.jsonl"


def _library(assistant, data: Path, documents: int, folder: Path) -> tuple[list[dict], float]:
    """Fill the library; the TAT-QA records and the seconds it took."""
    from tqdm.auto import tqdm

    from finetune.data import load_records
    from finetune.evaluation.retrieval import index_contexts

    records = load_records(data / TATQA)
    started = time.perf_counter()
    index_contexts(records, folder, assistant.documents)
    store = assistant.documents
    with tqdm(total=max(0, documents - store.count()), desc="indexing news", unit="doc") as bar:
        for row in load_records(data / NEWS):
            if store.count() >= documents:
                break
            path = folder / f"reuters-{row['id']}.txt"
            path.write_text(row["text"], encoding="utf-8")
            if store.add(path).created:  # a text already in the library (a repeated article) adds nothing
                bar.update()
    return records, time.perf_counter() - started


def _timed(assistant, questions: list[str]) -> list[float]:
    seconds = []
    for question in questions:
        started = time.perf_counter()
        assistant.ask(question)
        seconds.append(time.perf_counter() - started)
    return seconds


def run_ask_benchmark(data: str = "../shared/data", documents: int = 1000, questions: int = 30,
                      backend: str | None = None, out_dir: str = "docs/benchmarks", echo=print) -> dict:
    """Run the benchmark; print its table and write ``ask.{json,md,png}`` to ``out_dir``."""
    from assistant import Assistant
    from assistant.settings import BatchSettings
    from finetune.evaluation.retrieval import part_of

    with tempfile.TemporaryDirectory(prefix="finassist-bench-ask-") as work:
        folder = Path(work)
        assistant = Assistant(documents=folder / "library.sqlite", audit=False,
                              batch_settings=BatchSettings(backend=backend or "auto"))
        if assistant.engine.answerer_adapter is None:
            raise RuntimeError("no answerer adapter for the default generator: the benchmark measures the shipped one")
        records, indexing = _library(assistant, Path(data), documents, folder)
        asked = [r["question"] for r in records if part_of(r["context_uid"]) == "report"][: questions + 1]
        store = assistant.documents
        started = time.perf_counter()
        for question in asked[1:]:
            store.search(question, k=assistant.pipeline("ask").grounding["passages"])
        search_s = (time.perf_counter() - started) / max(len(asked) - 1, 1)
        adapter = assistant.engine.answerer_adapter
        rows = []
        for name, answerer in (("answerer", adapter), ("free-form (baseline)", None)):
            assistant.engine.answerer_adapter = answerer
            _timed(assistant, asked[:1])  # loads the models (and exports them for ONNX when not cached)
            seconds = _timed(assistant, asked[1:])
            rows.append({"path": name, "questions": len(seconds), "median_s": round(statistics.median(seconds), 3),
                         "p95_s": round(percentile(seconds, 0.95), 3), "mean_s": round(statistics.fmean(seconds), 3),
                         "seconds": [round(s, 3) for s in seconds]})
            echo(f"{name}: median {rows[-1]['median_s']:.2f} s over {len(seconds)} questions")
        library = {"documents": store.count(), "passages": sum(d.chunks for d in store.list()),
                   "indexing_s": round(indexing, 1), "search_ms": round(1000 * search_s, 1)}
        backend_name = assistant.engine.backend_name
        store.close()
    result = {
        "benchmark": "ask",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "commit": git_commit(),
        "machine": machine_info(None),
        "backend": backend_name,
        "library": library,
        "rows": rows,
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ask.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (out / "ask.md").write_text(ask_markdown(result), encoding="utf-8")
    skipped = ask_chart(result, out / "ask.png")
    echo(ask_markdown(result))
    if skipped:
        echo(skipped)
    return result
