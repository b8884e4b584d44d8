"""Training pairs for the grounded answerer (``prompts/answer.toml``), from TAT-QA dev.

Each TAT-QA context (a table and its paragraphs) becomes one small document in one library, as
``finassist eval retrieval`` builds it, and each question of the "tune" half of the documents is
searched as ``Assistant.ask`` searches it. The pair's input is the grounded user message the ask task
would send for those passages (``framed_question``); its target is the answer in the answerer's
form:

- a span question: ``answer: <span>`` (several spans joined by `` | ``), copied from the passages;
- an arithmetic question: ``compute: <expression>``, TAT-QA's ``derivation`` in the variant that
  gives the annotated answer (as written, or times 100 for a percentage), checked with
  ``assistant.calculator``;
- then ``scale: <scale>`` when the answer has one, and ``sources: [n]`` for the passages that hold
  the answer's text or figures.

A question whose evidence is not among the passages found is left out (a target would teach the
model to guess). A share of the questions is searched again with its own document left out of the
results: the target is then ``not found``, so the model learns to decline when the passages do not
hold the answer. Questions of the "report" half are never used here: ``finassist eval ask`` reports
on them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from assistant.calculator import InvalidExpressionError, compute
from assistant.figures import FIGURE_DIGITS
from assistant.tasks.ask import ShortAnswer

from .data import load_records

#: Tolerance when checking a derivation against the annotated answer (TAT-QA rounds to 2 decimals).
_TOLERANCE = 0.006

NOT_FOUND = "not found"


def figures_in(text: str) -> set[str]:
    """The figures a text states, as plain digits ("$ 1,452.4" -> "1452.4")."""
    return {m.group(0).replace(",", "").rstrip(".") for m in FIGURE_DIGITS.finditer(text)}


def _folded(text: str) -> str:
    return " ".join(str(text).lower().split())


def expression_for(record: dict) -> str | None:
    """The arithmetic expression that gives a TAT-QA record's answer: its ``derivation`` as written
    (a "%" in it is a hundredth) or without its "%" signs, or either times 100 when the answer is the
    percentage of a ratio; None when no variant gives the answer (a handful of dev records)."""
    derivation = " ".join(str(record.get("derivation") or "").split())
    try:
        answer = float(record["answer"])
    except (TypeError, ValueError, KeyError):
        return None
    if not derivation:
        return None
    plain = derivation.replace("%", "")
    for candidate in dict.fromkeys((derivation, plain, f"({derivation}) * 100", f"({plain}) * 100")):
        try:
            value = compute(candidate).value
        except InvalidExpressionError:
            continue
        if abs(round(value, 2) - answer) < _TOLERANCE:
            return candidate
    return None


def _sources(passages: Sequence, spans: Sequence[str] = (), figures: Sequence[str] = ()) -> list[int] | None:
    """The numbers (1-based) of the passages that hold the spans and figures; None when some span or
    figure is in none of them."""
    used: list[int] = []
    for span in spans:
        at = next((n for n, p in enumerate(passages, 1) if _folded(span) in _folded(p.text)), None)
        if at is None:
            return None
        used.append(at)
    for figure in figures:
        at = next((n for n, p in enumerate(passages, 1) if figure in figures_in(p.text)), None)
        if at is None:
            return None
        used.append(at)
    return sorted(set(used))


def answer_target(record: dict, passages: Sequence) -> str | None:
    """The answerer's target for a TAT-QA record answered from ``passages``; None when the passages do
    not hold its evidence or the record cannot be written in the answerer's form."""
    kind, scale = record.get("answer_type"), record.get("scale") or ""
    if kind == "arithmetic":
        expression = expression_for(record)
        if expression is None:
            return None
        sources = _sources(passages, figures=sorted(figures_in(expression.replace(" * 100", "")), key=len))
        first = f"compute: {expression}"
    elif kind in ("span", "multi-span"):
        spans = [str(a) for a in record.get("answer") or [] if str(a).strip()]
        if not spans:
            return None
        sources = _sources(passages, spans=spans)
        first = "answer: " + " | ".join(" ".join(s.split()) for s in spans)
    elif kind == "count":
        # The items counted are listed in the derivation ("2018##2017"); the answer is their number.
        items = [i.strip() for i in str(record.get("derivation") or "").split("##") if i.strip()]
        sources = _sources(passages, spans=items)
        first = f"answer: {record.get('answer')}"
    else:
        return None
    if not sources:
        return None
    lines = [first] + ([f"scale: {scale}"] if scale else []) + ["sources: " + " ".join(f"[{n}]" for n in sources)]
    return "\n".join(lines)


def _shown(passages: Sequence, record: dict, count: int) -> list:
    """The ``count`` passages a pair shows: those holding the record's evidence, then the best-ranked
    others, in their ranking order (the answerer reads the first ``count`` passages found, and a CPU
    trains on short prompts far faster than on the whole ``[grounding] passages``)."""
    target = answer_target(record, passages)
    if target is None:
        return list(passages[:count])
    keep = sorted(set(ShortAnswer.parse(target).sources))[:count]
    keep += [n for n in range(1, len(passages) + 1) if n not in keep][:count - len(keep)]
    return [passages[n - 1] for n in sorted(keep)]


def answer_pairs(data: str, out: str | Path, negatives: float = 0.3, seed: int = 0, limit: int | None = None,
                 encoder: str | None = None, passages: int | None = None) -> dict:
    """Write the answerer's training pairs (``input``, ``target``, ``id``, ``kind``) of the "tune"
    half of TAT-QA ``data`` to ``out`` (JSON lines); the counts written and left out. ``passages``:
    how many passages a pair shows (default: prompts/answer.toml ``passages``)."""
    import tempfile

    from tqdm.auto import tqdm

    from assistant import Assistant
    from assistant.prompts import load_prompt
    from assistant.tasks.ask import framed_question

    from .evaluation.retrieval import ABSENT_MARGIN, context_document, index_contexts, part_of

    records = load_records(data, required=("question", "context_uid", "answer_type"))[:limit]
    rng = random.Random(seed)
    counts = {"positive": 0, "not_found": 0, "evidence_not_found": 0, "not_writable": 0}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="finassist-answer-data-") as work:
        assistant = Assistant(encoder=encoder, documents=Path(work) / "library.sqlite", audit=False)
        store = assistant.documents
        index_contexts(records, Path(work), store)
        grounding = assistant.pipeline("ask").grounding
        searched = grounding["passages"]
        shown = passages or load_prompt("answer")["passages"]
        for record in tqdm([r for r in records if part_of(r["context_uid"]) == "tune"], desc="pairs", unit="question"):
            found = store.search(record["question"], k=searched + ABSENT_MARGIN)
            own = context_document(record)
            passages = _shown(found[:searched], record, shown)
            target = answer_target(record, passages)
            if target is None:
                counts["not_writable" if expression_for(record) is None and record["answer_type"] == "arithmetic"
                       else "evidence_not_found"] += 1
            else:
                counts["positive"] += 1
                rows.append({"id": record["id"], "kind": record["answer_type"],
                             "input": framed_question(grounding, record["question"], passages), "target": target})
            if rng.random() < negatives:
                others = [p for p in found if p.document != own][:shown]
                counts["not_found"] += 1
                rows.append({"id": record["id"] + "-absent", "kind": "absent",
                             "input": framed_question(grounding, record["question"], others), "target": NOT_FOUND})
        store.close()
    rng.shuffle(rows)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return counts
