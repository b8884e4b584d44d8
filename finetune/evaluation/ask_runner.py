"""``finassist eval ask``: grounded answers on TAT-QA dev, scored with TAT-QA's exact match and F1.

Every distinct TAT-QA context (a table and its paragraphs) is one small document in one library, as
``finassist eval retrieval`` builds it. Each question of the chosen half of the documents (default
"report": the answerer adapter trained on the "tune" half, ``finetune/answer_data.py``) is searched
and answered as ``Assistant.ask`` answers it, and scored with ``tatqa_metric.em_f1``. The same
question is then answered once more with its own document left out of the passages: the documents
no longer hold the answer, and the right answer is to decline.

Reported: exact match and F1 (all, and by answer type), the share of answers citing a passage of the
question's own document among those where that document was found, the share of answerable
questions declined, the share of questions declined when their document is absent, and seconds per
answer. ``baseline`` answers the same questions with the answer written freely from the passages
(no answerer adapter) in the same run.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.errors import InvalidParameterError
from assistant.tasks.ask import ShortAnswer

from ..data import load_records
from .report import markdown_table, new_figure, save_figure, write_json, write_markdown
from .retrieval import ABSENT_MARGIN, PARTS, context_document, index_contexts, part_of
from .tatqa_metric import em_f1

#: Published for comparison (TAT-QA test set, a RoBERTa-large model with operator heads).
TAGOP = {"em": 50.1, "f1": 58.0}


@dataclass
class AskScores:
    """One way of answering (the answerer, or the free-form baseline) on the same questions."""

    name: str
    questions: int
    em: float
    f1: float
    #: answer type -> {"questions", "em", "f1"}
    by_type: dict[str, dict]
    #: Of the answers whose question's own document was among the passages: the share citing one of its passages.
    cited_own_document: float | None
    #: The same share counting the passages the answerer named, before they are checked against the text.
    named_own_document: float | None
    #: Share of the (answerable) questions declined.
    declined: float
    #: Share declined when each question's own document is left out of the passages (declining is right).
    declined_absent: float | None
    seconds_per_answer: float
    #: Share of the questions answered by reading a table (``assistant.table_reader``), and the exact
    #: match of those answers (None when none was).
    read_from_table: float = 0.0
    read_from_table_em: float | None = None
    #: Share of the questions whose copied answer was snapped to the passages' words (``ask.snapped``),
    #: and EM / F1 with every copied answer scored as the answerer wrote it: the same run without snapping.
    snapped: float = 0.0
    as_written_em: float | None = None
    as_written_f1: float | None = None
    #: Share of the questions whose answer says that other documents answer them otherwise
    #: (``Answer.also_answered_by``), and the exact match of those answers and of the other table readings.
    other_documents_answer: float = 0.0
    other_documents_answer_em: float | None = None
    read_alone_em: float | None = None


@dataclass
class AskReport:
    data: str
    part: str
    documents: int
    scores: list[AskScores]
    #: Share of questions whose own document is among the passages the answer reads.
    own_document_found: float
    examples: list[dict] = field(default_factory=list)
    machine: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        head = ["answers", "questions", "EM", "F1", "(as written)", "snapped", "cites own document", "(as named)",
                "declined (answerable)", "declined (document absent)", "read from a table", "(their EM)",
                "says others answer otherwise", "(their EM)", "(EM of the other readings)", "s / answer"]
        rows = [[s.name, s.questions, 100 * s.em, 100 * s.f1,
                 None if s.as_written_em is None else f"{100 * s.as_written_em:.1f} / {100 * s.as_written_f1:.1f}",
                 100 * s.snapped,
                 None if s.cited_own_document is None else 100 * s.cited_own_document,
                 None if s.named_own_document is None else 100 * s.named_own_document, 100 * s.declined,
                 None if s.declined_absent is None else 100 * s.declined_absent, 100 * s.read_from_table,
                 None if s.read_from_table_em is None else 100 * s.read_from_table_em,
                 100 * s.other_documents_answer,
                 None if s.other_documents_answer_em is None else 100 * s.other_documents_answer_em,
                 None if s.read_alone_em is None else 100 * s.read_alone_em, s.seconds_per_answer]
                for s in self.scores]
        types = sorted({t for s in self.scores for t in s.by_type})
        by_type = [[s.name, t, s.by_type[t]["questions"], 100 * s.by_type[t]["em"], 100 * s.by_type[t]["f1"]]
                   for s in self.scores for t in types if t in s.by_type]
        return (f"## Grounded answers: TAT-QA dev, {self.part} half ({self.scores[0].questions} questions, "
                f"{self.documents} documents in the library)\n\n"
                f"Data: `{self.data}`. The question's own document is among the passages read for "
                f"{100 * self.own_document_found:.1f}% of the questions. Percentages; TagOp (published, test set): "
                f"EM {TAGOP['em']}, F1 {TAGOP['f1']}.\n\n"
                + markdown_table(head, rows, digits=1) + "\n\n"
                + markdown_table(["answers", "answer type", "questions", "EM", "F1"], by_type, digits=1) + "\n")


def predicted(answer) -> tuple[list[str] | None, str]:
    """What an ``Answer`` predicts for TAT-QA's metric: its parts and scale (None when declined)."""
    if answer.declined:
        return None, ""
    short = answer.short
    if short is None:
        return [answer.text], ""
    if short.kind == "compute":
        if answer.computation is None:
            return None, ""
        return [f"{round(answer.computation.value, 2)}"], short.scale
    return list(short.parts), short.scale


def _as_written(answer) -> list[str] | None:
    """A copied answer's parts as the answerer wrote them, where snapping changed them (else None)."""
    if answer.declined or answer.short is None or answer.short.kind != "answer":
        return None
    raw = ShortAnswer.parse(answer.generation.text)
    return list(raw.parts) if raw is not None and raw.parts != answer.short.parts else None


def _cites_own(answer, own: str, named: bool = False) -> bool:
    """Whether the answer cites a passage of ``own``: its sources (``Answer.sources``; with ``named``,
    those the answerer named), or every passage it was written from when it names none."""
    numbers = set(answer.sources if not named else answer.short.sources if answer.short else ()) or None
    return any(c.document == own for c in answer.citations if numbers is None or c.number in numbers)


def evaluate_ask(data: str, part: str = "report", limit: int | None = None, absent: bool = True,
                 baseline: bool = False, without_tables: bool = False, scoped: bool = False, adapter: str | None = None,
                 generator: str | None = None, backend: str = "auto", examples: int = 20,
                 out: str | None = None) -> AskReport:
    """Exact match and F1 of grounded answers on TAT-QA questions (see the module's docstring).

    data: a TAT-QA JSONL file (e.g. ../shared/data/qa/tatqa/dev.jsonl)
    part: report (default), tune, or all: the questions of that half of the documents (the library holds them all)
    limit: the first N questions of the part only
    absent: also answer each question with its own document left out, and report how often it is declined
    baseline: also answer the questions freely from the passages (no answerer adapter), in the same run
    without_tables: also answer them through the answerer with no question read from a table
        (prompts/answer.toml ``read_tables`` off), in the same run
    scoped: also answer each question asked of its own document only (``Assistant.ask(documents=[...])``,
        as an analyst who names the report does), in the same run: what the search across the whole
        library costs
    adapter: the answerer's LoRA adapter: a run directory (default: the one shipped with the package)
    generator: the generator (default the assistant's)
    backend: how the generator decodes: auto (default), onnx, dynamic, ...
    examples: questions kept in the report with their answers
    out: write ask.json and ask.md to this folder
    """
    from tqdm.auto import tqdm

    from assistant import Assistant
    from assistant.machine import machine_info
    from assistant.settings import BatchSettings

    if part not in (*PARTS, "all"):
        raise InvalidParameterError(f"part must be one of {', '.join(PARTS)} or all; got {part!r}")
    if limit is not None and limit < 1:
        raise InvalidParameterError(f"limit must be at least 1, got {limit}")
    if adapter is not None and not Path(adapter, "adapter_model.safetensors").is_file():
        raise InvalidParameterError(f"no LoRA adapter in {adapter} (adapter_model.safetensors is missing)")
    records = load_records(data, required=("question", "context_uid", "answer_type", "answer"))
    chosen = [r for r in records if part == "all" or part_of(r["context_uid"]) == part][:limit]
    with tempfile.TemporaryDirectory(prefix="finassist-eval-ask-") as work:
        assistant = Assistant(generator=generator, documents=Path(work) / "library.sqlite", audit=False,
                              batch_settings=BatchSettings(backend=backend))
        if adapter is not None:
            assistant.engine.answerer_adapter = Path(adapter)
        if assistant.engine.answerer_adapter is None:
            raise InvalidParameterError("no answerer adapter for this generator: give --adapter RUN")
        store = assistant.documents
        contexts = index_contexts(records, Path(work), store)
        pipeline = assistant.pipeline("ask")
        shown = pipeline.grounding["passages"]
        found_for = {}
        for record in tqdm(chosen, desc="searching", unit="question"):
            found = store.search(record["question"], k=shown + ABSENT_MARGIN)
            own = context_document(record)
            found_for[record["id"]] = (found[:shown], [p for p in found if p.document != own][:shown],
                                       store.search(record["question"], k=shown, documents=[own]) if scoped else None)
        read = pipeline.answerer["passages"]
        own_found = sum(any(p.document == context_document(r) for p in found_for[r["id"]][0][:read])
                        for r in chosen) / max(len(chosen), 1)
        modes = ([("answerer", True, True, False)]
                 + ([("answerer, asked of its own document", True, True, True)] if scoped else [])
                 + ([("answerer, no table read", True, False, False)] if without_tables else [])
                 + ([("free-form (baseline)", False, False, False)] if baseline else []))
        scores, kept = [], []
        configured = pipeline.answerer
        for name, answerer, tables, of_own in modes:
            # The reader is switched in the task's own settings, so each mode answers as Assistant.ask would.
            pipeline.answerer = {**configured, "read_tables": tables and configured["read_tables"]}
            em: list[float] = []
            f1: list[float] = []
            by_type: dict[str, list[tuple[float, float]]] = defaultdict(list)
            cited: list[bool] = []
            named: list[bool] = []
            declined: list[bool] = []
            declined_absent: list[bool] = []
            from_table: list[float] = []
            others_answer: list[float] = []  # EM of the answers saying other documents answer otherwise
            read_alone: list[float] = []  # EM of the other table readings
            written: list[tuple[float, float]] = []
            snapped: list[bool] = []
            started = time.perf_counter()
            for record in tqdm(chosen, desc=name, unit="question"):
                present, missing, own_only = found_for[record["id"]]
                own = context_document(record)
                answer = _answer(pipeline, record["question"], own_only if of_own else present, answerer)
                parts, scale = predicted(answer)
                e, f = em_f1(record, parts, scale)
                em.append(e)
                f1.append(f)
                as_written = _as_written(answer)
                snapped.append(as_written is not None)
                written.append(em_f1(record, as_written, scale) if as_written is not None else (e, f))
                by_type[record["answer_type"]].append((e, f))
                declined.append(answer.declined)
                if answer.read_from_table:
                    from_table.append(e)
                    (others_answer if answer.also_answered_by else read_alone).append(e)
                if not answer.declined and any(c.document == own for c in answer.citations):
                    cited.append(_cites_own(answer, own))
                    named.append(_cites_own(answer, own, named=True))
                if absent and not of_own:  # asked of its own document, the document is never absent
                    declined_absent.append(_answer(pipeline, record["question"], missing, answerer).declined)
                if len(kept) < examples and answerer and tables and not of_own:
                    kept.append({"id": record["id"], "question": record["question"], "gold": record["answer"],
                                 "gold_scale": record.get("scale") or "", "answer": answer.text,
                                 "short": answer.short.to_dict() if answer.short else None, "em": e, "f1": f})
            seconds = time.perf_counter() - started
            n = max(len(chosen), 1)
            scores.append(AskScores(
                name=name, questions=len(chosen), em=sum(em) / n, f1=sum(f1) / n,
                by_type={t: {"questions": len(v), "em": statistics.fmean(x for x, _ in v),
                             "f1": statistics.fmean(y for _, y in v)} for t, v in sorted(by_type.items())},
                cited_own_document=sum(cited) / len(cited) if cited else None,
                named_own_document=sum(named) / len(named) if named else None, declined=sum(declined) / n,
                declined_absent=sum(declined_absent) / n if declined_absent else None,
                seconds_per_answer=round(seconds / (n * (2 if declined_absent else 1)), 3),
                read_from_table=len(from_table) / n,
                read_from_table_em=statistics.fmean(from_table) if from_table else None,
                other_documents_answer=len(others_answer) / n,
                other_documents_answer_em=statistics.fmean(others_answer) if others_answer else None,
                read_alone_em=statistics.fmean(read_alone) if read_alone else None,
                snapped=sum(snapped) / n, as_written_em=sum(x for x, _ in written) / n,
                as_written_f1=sum(y for _, y in written) / n))
        pipeline.answerer = configured
        store.close()
    report = AskReport(data=str(data), part=part, documents=len(contexts), scores=scores,
                       own_document_found=own_found, examples=kept,
                       machine=machine_info(assistant.engine.runtime.device))
    if out:
        write_json(report.to_dict(), Path(out) / "ask.json")
        write_markdown(report.to_markdown(), Path(out) / "ask.md")
        _chart(report, Path(out) / "ask.png")
    return report


def _answer(pipeline, question: str, passages: list, answerer: bool):
    """The ask task's answer to ``question`` from ``passages`` (as ``Assistant.ask`` answers it, without
    the audit log); ``answerer``: through the answerer adapter, else written freely."""
    return pipeline.postprocess(pipeline.forward(pipeline.preprocess(question, evidence=passages, answerer=answerer)))


def _chart(report: AskReport, path: Path) -> None:
    """EM and F1 by answer type, one group of bars per way of answering."""
    types = sorted({t for s in report.scores for t in s.by_type})
    fig = new_figure(8, 3.6)
    ax = fig.subplots()
    width = 0.8 / (2 * len(report.scores))
    for i, s in enumerate(report.scores):
        for j, metric in enumerate(("em", "f1")):
            offset = (2 * i + j) * width - 0.4 + width / 2
            ax.bar([k + offset for k in range(len(types) + 1)],
                   [100 * s.by_type.get(t, {}).get(metric, 0) for t in types] + [100 * getattr(s, metric)],
                   width, label=f"{s.name} {metric.upper()}")
    ax.axhline(TAGOP["em"], color="grey", linestyle="--", linewidth=1, label=f"TagOp EM {TAGOP['em']} (test)")
    ax.set_xticks(range(len(types) + 1), [*types, "all"])
    ax.set_ylabel("%")
    ax.set_title(f"TAT-QA dev, {report.part} half: grounded answers")
    ax.legend(fontsize=7, loc="upper right")
    save_figure(fig, path)
