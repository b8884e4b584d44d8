"""``finassist eval retrieval``: how often the document library finds a question's own document.

TAT-QA (Zhu et al., ACL 2021) pairs each question with one table and its paragraphs from an annual
report. Every distinct table-and-paragraphs context becomes one small document (the table as text,
one row a line, cells joined by ``|``, then the paragraphs), all of them in one library, added
through ``Assistant.documents`` as a user adds files. Each question is then searched as
``Assistant.ask`` searches it, and recall@k is the share of questions whose own document is among
the first k passages. The best passage's cosine similarity is reported too, and how often the "not in
your documents" gate of the ask task (``AskPipeline.answerable``: similarity and subject-word coverage)
would decline the question, with its own document in the library and left out. Settings were chosen
on the questions of one half of the documents (``part="tune"``) and are reported on the other
(``part="report"``).
"""

from __future__ import annotations

import hashlib
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant.documents import table_text
from assistant.errors import InvalidParameterError

from ..data import load_records, text_of
from .report import markdown_table, write_json, write_markdown


def tatqa_document(record: dict) -> str:
    """One TAT-QA context (its ``table`` and ``paragraphs``) as the text of a document."""
    table = record.get("table") or []
    paragraphs = [p for p in record.get("paragraphs") or [] if isinstance(p, str) and p.strip()]
    return "\n\n".join(part for part in (table_text(table), *paragraphs) if part)


@dataclass
class RetrievalReport:
    data: str
    documents: int
    passages: int
    questions: int
    #: k -> share of questions whose own document is among the first k passages.
    recall: dict[int, float]
    #: Mean reciprocal rank of the question's document among the passages searched (0 when absent).
    mrr: float
    #: Percentiles (5, 25, 50) of the best cosine similarity to the question among the passages an
    #: answer is written from (the ask task's ``[grounding] passages``).
    best_similarity: dict[str, float]
    #: The ask task's ``min_similarity`` and ``min_coverage``, and the share of these (answerable)
    #: questions its gate would decline.
    min_similarity: float
    min_coverage: float
    declined: float
    #: The share it would decline were each question's own document not in the library (the answer
    #: then is not in the documents: declining is right).
    declined_absent: float
    encoder: str
    seconds_indexing: float
    seconds_per_question: float
    machine: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        rows = [[f"recall@{k}", value] for k, value in sorted(self.recall.items())]
        rows += [["MRR", self.mrr]] + [[f"best-passage similarity, {name}", value]
                                       for name, value in self.best_similarity.items()]
        gate = f"similarity < {self.min_similarity:g} or coverage < {self.min_coverage:g}"
        rows += [[f"declined as not in the documents ({gate})", self.declined],
                 ["declined, each question's own document left out", self.declined_absent]]
        return (f"## Retrieval: {self.questions} questions, {self.documents} documents ({self.passages} passages)\n\n"
                f"Data: `{self.data}`; encoder `{self.encoder}`; indexing {self.seconds_indexing:.1f} s, "
                f"{self.seconds_per_question * 1000:.0f} ms a question.\n\n"
                + markdown_table(["measure", "value"], rows, digits=3) + "\n")


def _ks(k: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in str(k).split(",") if part.strip()})
    except ValueError:
        raise InvalidParameterError(f"k must be comma-separated whole numbers like 1,5; got {k!r}") from None
    if not ks or ks[0] < 1:
        raise InvalidParameterError(f"k must be comma-separated whole numbers of at least 1; got {k!r}")
    return ks


#: The two halves of a data set's documents (by a hash of their context id): retrieval settings are
#: chosen on "tune" and figures reported on "report", so they are not measured where they were fitted.
PARTS = ("tune", "report")


#: Passages searched beyond those reported, so that a question's own document can be left out (the longest
#: TAT-QA dev context, 9,400 characters, is about 30 passages of 400; most are 3-8).
ABSENT_MARGIN = 30


def part_of(context_uid: str) -> str:
    """Which half of the documents a TAT-QA context belongs to (stable: a hash of its id)."""
    return PARTS[int(hashlib.sha256(context_uid.encode()).hexdigest(), 16) % 2]


def context_document(record: dict) -> str:
    """The library's name for a TAT-QA record's own document (``index_contexts`` adds it so)."""
    return f"{record['context_uid']}.txt"


def index_contexts(records: list[dict], folder: Path, store) -> dict[str, str]:
    """Add each distinct context of TAT-QA ``records`` to ``store`` as a document named by
    ``context_document`` (written in ``folder``), as a user adds files; the contexts' texts by id."""
    from tqdm.auto import tqdm

    contexts: dict[str, str] = {}
    for record in records:
        contexts.setdefault(text_of(record, "context_uid"), tatqa_document(record))
    for uid, text in tqdm(contexts.items(), desc="indexing", unit="doc"):
        path = folder / context_document({"context_uid": uid})
        path.write_text(text, encoding="utf-8")
        store.add(path)
    return contexts


def evaluate_retrieval(data: str, k: str = "1,5,10", part: str | None = None, limit: int | None = None,
                       library: str | None = None, encoder: str | None = None, device: str | None = None,
                       out: str | None = None) -> RetrievalReport:
    """Recall@k of the document library on TAT-QA-style records (``table``, ``paragraphs``, ``question``).

    data: a TAT-QA JSONL file (e.g. ../shared/data/qa/tatqa/dev.jsonl)
    k: the cut-offs to report, comma-separated
    part: tune or report: only the questions of that half of the documents (the library holds them all); default all
    limit: the first N records only (their documents only, too)
    library: build the library in this file and keep it (default: a temporary file, removed after)
    encoder: the encoder that embeds passages and questions (default the assistant's, minilm-l6)
    device: auto (default), cpu, cuda
    out: write retrieval.json and retrieval.md to this folder
    """
    from tqdm.auto import tqdm

    from assistant import Assistant
    from assistant.machine import machine_info

    ks = _ks(k)
    if limit is not None and limit < 1:
        raise InvalidParameterError(f"limit must be at least 1, got {limit}")
    if part is not None and part not in PARTS:
        raise InvalidParameterError(f"part must be one of {', '.join(PARTS)}; got {part!r}")
    records = load_records(data, required=("question", "context_uid"))[:limit]
    with tempfile.TemporaryDirectory(prefix="finassist-retrieval-") as work:
        folder = Path(work)
        assistant = Assistant(encoder=encoder, device=None if device in (None, "", "auto") else device,
                              documents=library or folder / "library.sqlite", audit=False)
        store = assistant.documents
        started = time.perf_counter()
        contexts = index_contexts(records, folder, store)
        indexing = time.perf_counter() - started
        records = [r for r in records if part is None or part_of(r["context_uid"]) == part]
        passages = sum(d.chunks for d in store.list())
        depth = max(ks)
        pipeline = assistant.pipeline("ask")
        shown = pipeline.grounding["passages"]
        ranks: list[int | None] = []
        best: list[float] = []
        declined: list[bool] = []
        declined_absent: list[bool] = []
        started = time.perf_counter()
        for record in tqdm(records, desc="searching", unit="question"):
            # Deep enough that, without the question's own document's passages, `shown` are left: what
            # the search would give were that document not in the library (its passages out of both rankings).
            found = store.search(text_of(record, "question"), k=max(depth, shown) + ABSENT_MARGIN)
            own = context_document(record)
            ranks.append(next((i for i, p in enumerate(found[:depth], 1) if p.document == own), None))
            best.append(max((p.similarity for p in found[:shown]), default=0.0))
            declined.append(not pipeline.answerable(found[:shown]))
            declined_absent.append(not pipeline.answerable([p for p in found if p.document != own][:shown]))
        searching = time.perf_counter() - started
        store.close()
    n = len(records)
    cuts = statistics.quantiles(best, n=20, method="inclusive") if n > 1 else best * 19
    report = RetrievalReport(
        data=str(data), documents=len(contexts), passages=passages, questions=n,
        recall={cut: sum(1 for r in ranks if r is not None and r <= cut) / n for cut in ks},
        mrr=sum(1 / r for r in ranks if r is not None) / n,
        best_similarity={"5th percentile": cuts[0], "25th percentile": cuts[4], "median": cuts[9]},
        min_similarity=pipeline.grounding["min_similarity"], min_coverage=pipeline.grounding["min_coverage"],
        declined=sum(declined) / n, declined_absent=sum(declined_absent) / n,
        encoder=assistant.engine.encoder_spec, seconds_indexing=round(indexing, 1),
        seconds_per_question=round(searching / max(n, 1), 4), machine=machine_info(assistant.engine.runtime.device),
    )
    if out:
        write_json(report.to_dict(), Path(out) / "retrieval.json")
        write_markdown(report.to_markdown(), Path(out) / "retrieval.md")
    return report
