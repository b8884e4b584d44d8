"""Choose the ask task's subject-word gate (prompts/ask.toml [grounding] min_coverage, and the data-driven
words of assistant/library.py _QUESTION_WORDS) on the "tune" half of TAT-QA dev; report both halves.

    .venv/bin/python scripts/tune-ask-gate.py [--data ../shared/data] [--library FILE]
                                              [--out docs/results/ask-gate.json]

Writes the figures as JSON and a chart beside them (the same name, .png).

1. Question words: the words of the tune half's questions (less scikit-learn's English stop words and the
   search's own) that appear in the question's own document less than half the time, in two questions or
   more (Porter stems compared, as the FTS5 index compares them): wording, not subject.
2. The gate: every question is searched in one library of all TAT-QA dev documents, as ``Assistant.ask``
   searches it, and again with its own document's passages left out (what the search would give were it
   not in the library: declining is then right). For each threshold, the share declined either way.
   The threshold is the highest that declines at most 3% of the tune half's (answerable) questions;
   the report half is never used to choose.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from collections import Counter
from pathlib import Path

from nltk.stem.porter import PorterStemmer
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from tqdm.auto import tqdm

from assistant import Assistant
from assistant.library import SEARCH_STOPWORDS
from finetune.data import load_records
from finetune.evaluation.report import new_figure, save_figure
from finetune.evaluation.retrieval import ABSENT_MARGIN, context_document, index_contexts, part_of, tatqa_document

THRESHOLDS = [round(0.3 + 0.05 * i, 2) for i in range(9)]
#: The most answerable questions of the tune half the gate may decline.
MAX_DECLINED = 0.03


def question_words(records: list[dict]) -> list[str]:
    stem = PorterStemmer(mode=PorterStemmer.ORIGINAL_ALGORITHM).stem
    letters = re.compile(r"[^\W\d_]+")
    own: dict[str, set[str]] = {}
    asked, found = Counter(), Counter()
    for record in records:
        if part_of(record["context_uid"]) != "tune":
            continue
        uid = record["context_uid"]
        if uid not in own:
            own[uid] = {stem(w) for w in letters.findall(tatqa_document(record).lower())}
        for word in dict.fromkeys(letters.findall(record["question"].lower())):
            if len(word) > 2 and word not in ENGLISH_STOP_WORDS and word not in SEARCH_STOPWORDS:
                asked[word] += 1
                found[word] += stem(word) in own[uid]
    return sorted(w for w, n in asked.items() if n >= 2 and found[w] / n < 0.5)


def chart(table: dict, chosen: float, path: Path) -> None:
    """Declined answerable (x) against declined with the document absent (y), one line per half,
    each point a threshold: the trade the threshold makes."""
    fig = new_figure(6, 4)
    ax = fig.add_subplot()
    for part, style in (("tune", "o-"), ("report", "s--")):
        xs = [100 * table[part][str(t)]["declined"] for t in THRESHOLDS]
        ys = [100 * table[part][str(t)]["declined_absent"] for t in THRESHOLDS]
        ax.plot(xs, ys, style, label=f"{part} half")
        for t, x, y in zip(THRESHOLDS, xs, ys):
            if part == "tune":
                ax.annotate(f"{t:g}" + (" (shipped)" if t == chosen else ""), (x, y), textcoords="offset points",
                            xytext=(4, -10), fontsize=8)
    ax.set_xlabel("answerable questions declined (%)")
    ax.set_ylabel("declined with the own document absent (%)")
    ax.set_title("Subject-word gate, TAT-QA dev: min_coverage")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--library", default=None, help="build the library in this file and keep it")
    parser.add_argument("--out", default="docs/results/ask-gate.json")
    args = parser.parse_args()
    records = load_records(str(Path(args.data) / "qa" / "tatqa" / "dev.jsonl"), required=("question", "context_uid"))
    words = question_words(records)
    print(f"question words ({len(words)}): {' '.join(words)}")
    with tempfile.TemporaryDirectory(prefix="finassist-gate-") as work:
        assistant = Assistant(documents=args.library or Path(work) / "library.sqlite", audit=False)
        store = assistant.documents
        index_contexts(records, Path(work), store)
        shown = assistant.pipeline("ask").grounding["passages"]
        rows = []
        for record in tqdm(records, desc="searching", unit="question"):
            found = store.search(record["question"], k=shown + ABSENT_MARGIN)
            own = context_document(record)
            absent = [p for p in found if p.document != own][:shown]
            rows.append((part_of(record["context_uid"]), max(p.coverage for p in found[:shown]),
                         max(p.coverage for p in absent)))
        store.close()
    table = {}
    for part in ("tune", "report"):
        chosen = [r for r in rows if r[0] == part]
        table[part] = {str(t): {"declined": sum(r[1] < t for r in chosen) / len(chosen),
                                "declined_absent": sum(r[2] < t for r in chosen) / len(chosen)} for t in THRESHOLDS}
    best = max(t for t in THRESHOLDS if table["tune"][str(t)]["declined"] <= MAX_DECLINED)
    print("min_coverage | tune: declined, declined absent | report: declined, declined absent")
    for t in THRESHOLDS:
        tune, report = table["tune"][str(t)], table["report"][str(t)]
        print(f"{t:.2f}{' *' if t == best else '  '} | {tune['declined']:.3f}, {tune['declined_absent']:.3f} | "
              f"{report['declined']:.3f}, {report['declined_absent']:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"question_words": words, "chosen": best, "max_declined": MAX_DECLINED,
                                          "thresholds": table}, indent=1) + "\n", encoding="utf-8")
    chart(table, best, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
