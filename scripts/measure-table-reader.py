"""Measure the table reader (assistant/table_reader.py) on TAT-QA dev, no generation: how many questions it
reads and how many of those exactly right (TAT-QA's exact match), per form, in two settings:

1. each question's own table, with the unit its document states (what the reader can do at best);
2. the passages ``Assistant.ask`` finds for it in one library of all 278 dev documents, read from the first
   3 passages (the answerer's), from all 5 found, or from those of the 5 that hold the question's subject
   words as the ask task's gate asks (``min_coverage``: what ships, prompts/answer.toml ``read_tables``).
   Each question is searched again with its own document left out: a question read then is answered
   from another document (declining would be right).

    .venv/bin/python scripts/measure-table-reader.py [--data ../shared/data] [--part tune] [--library FILE]
                                                     [--out docs/results/table-reader-tune.json]

The reader's forms and the passages it reads were chosen on the "tune" half only; ``--part report``
reports the other half. Writes JSON and a chart beside it (the same name, .png).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

from tqdm.auto import tqdm

from assistant import Assistant
from assistant.documents import table_text
from assistant.figures import stated_unit
from assistant.table_reader import read
from finetune.data import load_records
from finetune.evaluation.report import new_figure, save_figure
from finetune.evaluation.retrieval import ABSENT_MARGIN, context_document, index_contexts, part_of, tatqa_document
from finetune.evaluation.tatqa_metric import em_f1


def predicted(reading) -> list[str]:
    return list(reading.answer())


def form(reading) -> str:
    if reading.kind == "answer":
        if len(reading.parts) > 1:
            return "years shown"
        return "year" if reading.parts[0].isdigit() and len(reading.parts[0]) == 4 else "cell"
    expression = reading.expression
    return "percentage change" if expression.endswith("* 100") else "average" if "+" in expression else "change"


def score(records: list[dict], passages_of, absent_of=None) -> dict:
    read_by, exact_by = Counter(), Counter()
    own = 0
    read_absent = sum(read(r["question"], [(t, u) for t, u, _ in absent_of(r)]) is not None
                      for r in records) if absent_of else None
    for record in records:
        passages = passages_of(record)
        reading = read(record["question"], [(text, unit) for text, unit, _ in passages])
        if reading is None:
            continue
        kind = form(reading)
        read_by[kind] += 1
        exact_by[kind] += em_f1(record, predicted(reading), reading.scale)[0]
        own += passages[reading.source - 1][2] == context_document(record)
    read_n, exact_n = sum(read_by.values()), sum(exact_by.values())
    return {"questions": len(records), "read": read_n, "exact": exact_n, "read_share": read_n / len(records),
            "exact_of_read": exact_n / max(read_n, 1), "exact_of_all": exact_n / len(records),
            "read_from_own_document": own / max(read_n, 1),
            "read_with_own_document_absent": read_absent,
            "by_form": {k: {"read": read_by[k], "exact": exact_by[k]} for k in sorted(read_by)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--part", default="tune", choices=("tune", "report"))
    parser.add_argument("--library", help="a library of TAT-QA dev's documents to reuse (built when missing)")
    parser.add_argument("--out", help="default: docs/results/table-reader-PART.json")
    args = parser.parse_args()
    records = load_records(str(Path(args.data, "qa", "tatqa", "dev.jsonl")))
    chosen = [r for r in records if part_of(r["context_uid"]) == args.part]
    with tempfile.TemporaryDirectory() as work:
        library = Path(args.library) if args.library else Path(work, "library.sqlite")
        fresh = not library.exists()
        assistant = Assistant(documents=library, audit=False)
        if fresh:
            index_contexts(records, library.parent, assistant.documents)
        ask = assistant.pipeline("ask")
        shown, read_first = ask.grounding["passages"], ask.answerer["passages"]
        min_coverage = ask.grounding["min_coverage"]
        found = {r["id"]: assistant.documents.search(r["question"], k=shown + ABSENT_MARGIN)
                 for r in tqdm(chosen, desc="searching", unit="question")}
        assistant.documents.close()

    def passages(record: dict, absent: bool = False, subject: bool = False, first: int = shown) -> list:
        own = context_document(record)
        kept = [p for p in found[record["id"]] if not (absent and p.document == own)][:shown][:first]
        return [(p.text, p.unit, p.document) for p in kept if not subject or p.coverage >= min_coverage]

    results = {
        "part": args.part,
        "own table": score(chosen, lambda r: [(table_text(r["table"]), stated_unit(tatqa_document(r)),
                                               context_document(r))]),
        f"first {read_first} passages found": score(chosen, lambda r: passages(r, first=read_first),
                                                    lambda r: passages(r, True, first=read_first)),
        f"all {shown} passages found": score(chosen, passages, lambda r: passages(r, True)),
        f"those of the {shown} holding the subject (shipped)": score(
            chosen, lambda r: passages(r, subject=True), lambda r: passages(r, True, subject=True)),
    }
    out = Path(args.out or f"docs/results/table-reader-{args.part}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    settings = [k for k in results if k != "part"]
    for k in settings:
        r = results[k]
        print(f"{k}: read {r['read']} of {r['questions']}, {r['exact']:.0f} exactly right "
              f"({100 * r['exact_of_read']:.1f}% of those read; from the own document "
              f"{100 * r['read_from_own_document']:.1f}%); "
              f"read with the own document absent: {r['read_with_own_document_absent']}")
    fig = new_figure(8, 3.6)
    ax = fig.subplots()
    rows = range(len(settings))
    ax.barh([y + 0.2 for y in rows], [results[k]["read"] for k in settings], 0.4, color="#c8d6e5", label="read")
    ax.barh([y + 0.2 for y in rows], [results[k]["exact"] for k in settings], 0.4, color="#2e86de",
            label="read exactly right")
    ax.barh([y - 0.2 for y in rows], [results[k]["read_with_own_document_absent"] or 0 for k in settings], 0.4,
            color="#ee5253", label="read with the own document absent (wrong)")
    ax.set_yticks(list(rows), settings, fontsize=8)
    ax.set_xlim(0, len(chosen))
    ax.set_xlabel(f"questions of the {args.part} half ({len(chosen)})")
    ax.set_title("The table reader on TAT-QA dev")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(fig, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
